"""The background work of a running node: apply inbox, publish changes, deliver,
recheck quiet federated copies.

Each loop works on rows with states in the database, so a crash or restart at
any point leaves work that is simply picked up again: a runner that is the only
process on its database first releases what a killed one had claimed. Stopping
is graceful: nothing new is claimed, the applications and POSTs under way
finish (for at most ``STOP_GRACE_SECONDS``, then they are cancelled and redone
idempotently on the next start), and claimed rows not tried are released.

Several worker processes may share one PostgreSQL database (``shared``): each
applies the inbox and delivers, claiming rows others have not; what a killed one
claimed is due again when its lease ends, and none releases another's. The loops
that look for work rather than claim it (publishing changes, rechecking quiet
copies) run in one of them at a time (``lead``).
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from federation import store
from federation.context import Federation
from federation.delivery import DeliveryWorker
from federation.freshness import refresh_listings
from federation.handlers import apply, stop_backfills
from federation.local import key_id_for
from federation.publisher import publish_pending
from node.background import repeat

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
INBOX_ATTEMPTS = 8
STOP_GRACE_SECONDS = 10.0
BUSY_SECONDS = 0.5       # the inbox is busy when it accepted something this recently
BUSY_APPLY_SHARE = 0.1
LATE_SECONDS = 5          # applying no longer gives way once what it claims waited this long
FRESHNESS_SECONDS = 60.0  # how often quiet federated copies are looked for


async def process_inbox(fed: Federation, stopping: asyncio.Event | None = None) -> int:
    """Apply due inbox items once, until ``stopping`` is set; how many were claimed.

    While activities are arriving, applying takes at most `BUSY_APPLY_SHARE` of
    the time: answering the inbox comes first, and what it stored waits its turn,
    unless its turn is late (`LATE_SECONDS`): under a sustained load applying
    must keep up, or the backlog only grows.
    """
    loop = asyncio.get_running_loop()
    items = await store.claim_inbox_items(fed.db)
    await store.note_inbound(fed.db, {item.host for item in items})
    late = bool(items) and items[0].received_at <= store.later(-LATE_SECONDS)
    for item in items:
        if stopping is not None and stopping.is_set():
            break  # the rest stay claimed until the runner releases them
        started = loop.time()
        await _apply_item(fed, item)
        if not late and loop.time() - fed.arrived_at < BUSY_SECONDS:
            await asyncio.sleep((loop.time() - started) * (1 / BUSY_APPLY_SHARE - 1))
    return len(items)


async def _apply_item(fed: Federation, item: store.InboxItem) -> None:
    # Applied and marked so in one transaction when the handler's last write takes the mark.
    done = store.Finish(item.activity_id)
    try:
        applied = await apply(fed, item.activity, item.actor, item.host, done)
    except Exception as e:  # a bug or a peer's outage: retry later, never lose it
        log.warning("applying %s failed (attempt %d): %s", item.type, item.attempts,
                    type(e).__name__)
        if item.attempts >= INBOX_ATTEMPTS:
            await store.finish_inbox_item(fed.db, item.activity_id, "failed", repr(e)[:300])
        else:
            await store.finish_inbox_item(fed.db, item.activity_id, "received",
                                          repr(e)[:300], retry_in=30 * 2 ** item.attempts)
        return
    if not (applied and done.done):
        await store.finish_inbox_item(fed.db, item.activity_id,
                                      "applied" if applied else "ignored")


@dataclass(slots=True)
class Runner:
    """The running loops and what asks them to stop."""

    fed: Federation
    worker: DeliveryWorker
    stopping: asyncio.Event
    shared: bool
    tasks: list[asyncio.Task[None]]


def _at_most_every(seconds: float, step: Callable[[], Awaitable[int]]
                   ) -> Callable[[], Awaitable[int]]:
    """``step`` run again at once while it finds work, otherwise once per ``seconds``."""
    last = -seconds

    async def gated() -> int:
        nonlocal last
        loop = asyncio.get_running_loop()
        if loop.time() - last < seconds:
            return 0
        busy = await step()
        last = -seconds if busy else loop.time()
        return busy
    return gated


async def start(fed: Federation, *, shared: bool = False, leading: bool = True) -> Runner:
    """The loops, running. ``shared``: other processes work the same database, so no
    claim is released here; ``leading``: this one publishes and rechecks (``lead`` later)."""
    if not shared:
        # Claims still held were a previous process's: it is gone.
        await store.release_leases(fed.db)
    worker = DeliveryWorker(fed.db, fed.fetcher, lambda owner: key_id_for(fed, owner),
                            events=fed.events)
    stopping = asyncio.Event()
    runner = Runner(fed, worker, stopping, shared, [
        asyncio.create_task(repeat("inbox", lambda: process_inbox(fed, stopping),
                                   fed.wake_inbox, stopping, POLL_SECONDS)),
        asyncio.create_task(worker.run_forever(fed.wake_delivery)),
    ])
    if leading:
        lead(runner)
    return runner


def lead(runner: Runner) -> None:
    """Start the loops one process at a time runs: publishing changes, rechecking copies."""
    fed, stopping = runner.fed, runner.stopping
    runner.tasks += [
        asyncio.create_task(repeat("publisher", lambda: publish_pending(fed), None, stopping,
                                   POLL_SECONDS)),
        asyncio.create_task(repeat("freshness", _at_most_every(
            FRESHNESS_SECONDS, lambda: refresh_listings(fed)), None, stopping, POLL_SECONDS)),
    ]


async def stop(runner: Runner, grace: float = STOP_GRACE_SECONDS) -> None:
    """Claim nothing more, let the work under way finish, release what was not tried."""
    runner.stopping.set()
    runner.worker.stop()
    runner.fed.wake_inbox.set()
    runner.fed.wake_delivery.set()
    await stop_backfills(runner.fed)  # a backfill is read again when the peer is followed again
    _, late = await asyncio.wait(runner.tasks, timeout=grace)
    for task in late:
        log.warning("background work still running after %.0f s; cancelled", grace)
        task.cancel()
    await asyncio.gather(*runner.tasks, return_exceptions=True)
    if not runner.shared:  # shared: what this one claimed is due when its lease ends
        await store.release_leases(runner.fed.db)
