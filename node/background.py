"""The loop every background worker of a running node runs: a step repeated at once
while it finds work, otherwise after a wake-up or a pause, until asked to stop."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def repeat(name: str, step: Callable[[], Awaitable[int]], wake: asyncio.Event | None,
                 stopping: asyncio.Event, poll_seconds: float) -> None:
    """Run ``step`` (which returns how much it found) until ``stopping`` is set.

    Whoever sets ``stopping`` sets ``wake`` too, so an idle loop notices at once.
    """
    while not stopping.is_set():
        try:
            busy = await step()
        except Exception:
            log.exception("%s loop step failed", name)
            busy = 0
        if busy:
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for((wake or stopping).wait(), poll_seconds)
        if wake is not None:
            wake.clear()
