"""Group commit for the inbox: concurrent requests share one transaction and one fsync.

A request hands its verified activity to `InboxAcceptor.accept` and waits.
One task takes everything that arrived meanwhile, stores it in a single
write (`store.accept_inbox_items`: one ``BEGIN IMMEDIATE`` on the node's one
writer, committed with ``synchronous=FULL``) and only then answers each
request, so a 202 always follows a durable commit. A write that fails fails
every request in it, and none of it is stored. No request waits for a
batch to fill: a batch is whatever queued while the previous write ran.
"""
from __future__ import annotations

import asyncio
import logging
import time

from federation import store
from node.db import Database

MAX_BATCH = 500
# Bounded queues: arrivals waiting for a commit, and stored activities not yet applied.
MAX_WAITING = 5_000
MAX_BACKLOG = 50_000
BACKLOG_RECOUNT_SECONDS = 1.0  # between counts, what is stored is added (applying is not)

log = logging.getLogger(__name__)


class NotAccepted(Exception):
    """The activity was not stored; the sender should try again later."""


class InboxAcceptor:
    """Stores arrivals in batches; `start` in the node's lifespan, `stop` at its end."""

    def __init__(self, db: Database, max_batch: int = MAX_BATCH) -> None:
        self._db = db
        self._max_batch = max_batch
        self._waiting: list[tuple[store.Arrival, asyncio.Future[bool]]] = []
        self._arrived = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._backlog = 0
        self._counted_at = -BACKLOG_RECOUNT_SECONDS

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Store what is waiting, then end; later arrivals are refused."""
        self._closing = True
        self._arrived.set()
        if self._task is not None:
            await self._task

    async def accept(self, arrival: store.Arrival) -> bool:
        """True once the activity is committed, False if its id was stored before."""
        if self._task is None or self._closing:
            raise NotAccepted("the node is not accepting activities now")
        if len(self._waiting) >= MAX_WAITING:
            raise NotAccepted("too many activities are waiting to be stored")
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((arrival, future))
        self._arrived.set()
        return await future

    async def _run(self) -> None:
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            while self._waiting:
                batch = self._waiting[:self._max_batch]
                del self._waiting[:self._max_batch]
                await self._store(batch)
            if self._closing:
                return

    async def _backlog_full(self) -> bool:
        """Counted at most every `BACKLOG_RECOUNT_SECONDS`, plus what was stored since."""
        now = time.monotonic()
        if now - self._counted_at >= BACKLOG_RECOUNT_SECONDS:
            self._backlog, self._counted_at = await store.inbox_backlog(self._db), now
        return self._backlog >= MAX_BACKLOG

    async def _store(self, batch: list[tuple[store.Arrival, asyncio.Future[bool]]]) -> None:
        if await self._backlog_full():
            for _, future in batch:
                if not future.done():
                    future.set_exception(NotAccepted("the inbox backlog is full"))
            return
        try:
            fresh = await store.accept_inbox_items(self._db, [arrival for arrival, _ in batch])
        except Exception as error:  # the transaction rolled back: nothing of it is stored
            log.error("storing %d inbox activities failed: %r", len(batch), error)
            for _, future in batch:
                if not future.done():
                    future.set_exception(NotAccepted("the activity could not be stored"))
            return
        self._backlog += sum(fresh)
        for (_, future), new in zip(batch, fresh):
            if not future.done():  # a request whose client went away is not answered
                future.set_result(new)
