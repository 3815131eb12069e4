"""The work a node does beside answering requests: applying its inbox, delivering, sending
mail and notices, publishing changes, rolling the meeting horizon forward, backups.

``grassroots serve`` runs it in its one process. On PostgreSQL a hub may run it instead
in ``grassroots worker`` processes (``run_worker``), beside web processes that answer
requests only (``serve --workers N``): each worker claims inbox items, deliveries and
mail others have not claimed, and one of them at a time (the one holding the database's
lead lock) runs the loops that look for work rather than claim it.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from federation import runner
from federation.context import Federation
from federation.documents import Urls
from federation.events import FederationEvents
from federation.fetch import Fetcher
from federation.ratelimit import PeerRateLimits
from node.background import Heartbeats, heartbeats
from node.config import Config
from node.db import Database, database_at
from node.mailer import Mailer
from node.notifier import Notifier
from node.storage.events import refresh_occurrences

if TYPE_CHECKING:  # backups load tarfile and the rest only when scheduled
    from node.backup import BackupSchedule

log = logging.getLogger(__name__)

REFRESH_INTERVAL = 6 * 3600  # roll the expanded meeting horizon forward
LEAD_RETRY_SECONDS = 5.0  # a worker not leading asks again this often (the leader may be gone)


def federation_for(db: Database, config: Config, dev: bool,
                   events: FederationEvents | None = None) -> Federation:
    """The node's federation side, with a Fetcher of its own (closed by the caller)."""
    return Federation(
        db, Fetcher(allow_private=dev), Urls(config.public_url), dev,
        listing_stale_after=timedelta(days=config.listing_stale_days),
        listing_retire_after=timedelta(days=config.listing_retire_days), events=events,
        inbox_limits=PeerRateLimits(config.inbox_rate_per_second, config.inbox_burst))


def mailer_for(db: Database, config: Config, *, shared: bool = False) -> Mailer:
    mail = config.mail_settings
    return Mailer(db, mail.transport(config.data_dir), mail.from_address, shared=shared)


@dataclass
class Work:
    """The loops running, and what stops them."""

    config: Config
    federation: Federation
    mailer: Mailer
    runner: runner.Runner
    leading: bool = False
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    notifier: Notifier | None = None
    backups: BackupSchedule | None = None

    async def lead(self) -> None:
        """Start the loops one process runs at a time."""
        self.leading = True
        db = self.federation.db
        runner.lead(self.runner)

        async def keep_horizon() -> None:
            while True:
                await asyncio.sleep(REFRESH_INTERVAL)
                await refresh_occurrences(db)

        self.tasks.append(asyncio.create_task(keep_horizon()))
        self.notifier = Notifier(db, public_url=self.config.public_url,
                                 secret_key=self.config.secret_key,
                                 wake_mailer=self.mailer.wake)
        await self.notifier.start()


async def start_work(config: Config, federation: Federation, mailer: Mailer, *,
                     shared: bool = False, leading: bool = True) -> Work:
    """Every loop of the node's work, running (``leading``: those one process runs too)."""
    work = Work(config, federation, mailer,
                await runner.start(federation, shared=shared, leading=False))
    await mailer.start()
    if leading:
        await work.lead()
    if config.backup_every_hours:  # tarfile and the rest only when backups are scheduled
        from node.backup import BackupSchedule

        work.backups = schedule = BackupSchedule(config)
        schedule.start()
    return work


async def stop_work(work: Work) -> None:
    """Claim nothing more, let what is under way finish (see runner.stop), then stop."""
    for task in work.tasks:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(*work.tasks, return_exceptions=True)
    await runner.stop(work.runner)
    if work.notifier is not None:
        await work.notifier.stop()
    await work.mailer.stop()
    if work.backups is not None:
        await work.backups.stop()


async def run_worker(config: Config, dev: bool = False) -> None:
    """A worker process on a shared PostgreSQL database, until SIGTERM or SIGINT."""
    db = database_at(config.database)
    await db.open()
    heartbeats.set(Heartbeats())
    federation = federation_for(db, config, dev)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopped.set)
    try:
        work = await start_work(config, federation, mailer_for(db, config, shared=True),
                                shared=True, leading=await db.lead())
        log.info("worker started%s", " (leading)" if work.leading else "")
        while not stopped.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopped.wait(), LEAD_RETRY_SECONDS)
            if not work.leading and not stopped.is_set() and await db.lead():
                log.info("worker leading")
                await work.lead()
        await stop_work(work)
    finally:
        await federation.fetcher.aclose()
        await db.close()
