"""The loop every background worker of a running node runs: a step repeated at once
while it finds work, otherwise after a wake-up or a pause, until asked to stop.

Each loop records when it last moved in the running node's ``Heartbeats`` (made in
the lifespan and set in ``heartbeats`` before the workers start, so every loop it
starts reports there); readiness reads them.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass

log = logging.getLogger(__name__)

# A step may take this long (SMTP and HTTP timeouts bound each exchange in it) before
# its loop counts as stuck; an idle loop, three of its pauses and `IDLE_GRACE_SECONDS`.
STEP_LIMIT_SECONDS = 600.0
IDLE_GRACE_SECONDS = 5.0


@dataclass(slots=True)
class Beat:
    poll_seconds: float
    moved_at: float         # event loop time the loop last started or finished a step
    stepping: bool = False
    stopped: bool = False

    def state(self, now: float) -> str:
        """One of ok, stopped, or stale (no step begun or ended for too long)."""
        if self.stopped:
            return "stopped"
        limit = STEP_LIMIT_SECONDS if self.stepping else \
            3 * self.poll_seconds + IDLE_GRACE_SECONDS
        return "stale" if now - self.moved_at > limit else "ok"


class Heartbeats:
    """Each named loop of one running node and when it last moved."""

    def __init__(self) -> None:
        self.beats: dict[str, Beat] = {}

    def beat(self, name: str, poll_seconds: float) -> Beat:
        beat = self.beats[name] = Beat(poll_seconds, asyncio.get_running_loop().time())
        return beat


heartbeats: ContextVar[Heartbeats | None] = ContextVar("heartbeats", default=None)


async def repeat(name: str, step: Callable[[], Awaitable[int]], wake: asyncio.Event | None,
                 stopping: asyncio.Event, poll_seconds: float) -> None:
    """Run ``step`` (which returns how much it found) until ``stopping`` is set.

    Whoever sets ``stopping`` sets ``wake`` too, so an idle loop notices at once.
    """
    loop = asyncio.get_running_loop()
    beat = (heartbeats.get() or Heartbeats()).beat(name, poll_seconds)
    try:
        while not stopping.is_set():
            beat.stepping, beat.moved_at = True, loop.time()
            try:
                busy = await step()
            except Exception:
                log.exception("%s loop step failed", name)
                busy = 0
            beat.stepping, beat.moved_at = False, loop.time()
            if busy:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for((wake or stopping).wait(), poll_seconds)
            if wake is not None:
                wake.clear()
    finally:
        beat.stopped = True
