"""The background work of a running node: apply inbox, publish changes, deliver.

Each loop works on rows with states in SQLite, so a crash or restart at any
point leaves work that is simply picked up again.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging

from federation import store
from federation.context import Federation
from federation.delivery import DeliveryWorker
from federation.handlers import apply
from federation.local import key_id_for
from federation.publisher import publish_pending

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
INBOX_ATTEMPTS = 8


async def process_inbox(fed: Federation) -> int:
    """Apply due inbox items once; how many were handled."""
    items = await store.claim_inbox_items(fed.db)
    for item in items:
        try:
            applied = await apply(fed, item.activity, item.actor, item.host)
        except Exception as e:  # a bug or a peer's outage: retry later, never lose it
            log.warning("applying %s failed (attempt %d): %s", item.type, item.attempts,
                        type(e).__name__)
            if item.attempts >= INBOX_ATTEMPTS:
                await store.finish_inbox_item(fed.db, item.activity_id, "failed", repr(e)[:300])
            else:
                await store.finish_inbox_item(fed.db, item.activity_id, "received",
                                              repr(e)[:300], retry_in=30 * 2 ** item.attempts)
            continue
        await store.finish_inbox_item(fed.db, item.activity_id,
                                      "applied" if applied else "ignored")
    return len(items)


async def _loop(name: str, step, wake: asyncio.Event | None) -> None:
    while True:
        try:
            busy = await step()
        except Exception:
            log.exception("%s loop step failed", name)
            busy = 0
        if busy:
            continue
        if wake is None:
            await asyncio.sleep(POLL_SECONDS)
            continue
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(wake.wait(), POLL_SECONDS)
        wake.clear()


def start(fed: Federation) -> list[asyncio.Task]:
    worker = DeliveryWorker(fed.db, fed.fetcher, lambda owner: key_id_for(fed, owner))
    return [
        asyncio.create_task(_loop("inbox", lambda: process_inbox(fed), fed.wake_inbox)),
        asyncio.create_task(_loop("publisher", lambda: publish_pending(fed), None)),
        asyncio.create_task(worker.run_forever(fed.wake_delivery)),
    ]


async def stop(tasks: list[asyncio.Task]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
