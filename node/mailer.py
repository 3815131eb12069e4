"""The mail worker: sends what the outbox holds, one message at a time, and records each answer.

The states and what a crash leaves behind are in ``node.storage.mail``. A
transient failure (no connection, a 4xx) is tried again after 1 minute,
doubling to at most an hour, until the message is a day old; a permanent one
(a 5xx refusing the recipient or the message) ends it at once.
"""
from __future__ import annotations

import asyncio
import logging
import re
from datetime import UTC, datetime, timedelta

from node.background import repeat
from node.db import Database, parse_stamp, stamp
from node.mail import MailError, Transport, build_message, parse_address
from node.storage.mail import (
    QueuedMail,
    claim_due_mail,
    mark_mail_failed,
    mark_mail_sent,
    prune_mail,
    release_sending_mail,
)

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
FIRST_RETRY_SECONDS = 60.0
MAX_RETRY_SECONDS = 3600.0
GIVE_UP_AFTER = timedelta(hours=24)
KEEP_SENT = timedelta(days=30)  # a sent or dead message's row (its kind, date and outcome)
PRUNE_SECONDS = 3600.0


def retry_at(attempts: int, created_at: datetime, now: datetime) -> datetime | None:
    """When to try again after ``attempts`` tries have failed; None: give up."""
    if now - created_at >= GIVE_UP_AFTER:
        return None
    return now + timedelta(seconds=min(FIRST_RETRY_SECONDS * 2 ** min(attempts - 1, 16),
                                       MAX_RETRY_SECONDS))


class Mailer:
    """Sends the outbox's due messages through ``transport`` while the node runs.

    Whoever enqueues mail may call ``wake()`` after committing, so it goes at
    once rather than at the next poll (within a second).
    """

    def __init__(self, db: Database, transport: Transport, from_address: str, *,
                 shared: bool = False) -> None:
        self._db = db
        self._shared = shared  # other processes send from the same outbox: leases end claims
        self._transport = transport
        self._from_address = from_address
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._pruned_at = float("-inf")

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        if not self._shared:
            # Rows still 'sending' were a previous process's: it is gone.
            await release_sending_mail(self._db)
        self._task = asyncio.create_task(
            repeat("mail", self.run_once, self._wake, self._stopping, POLL_SECONDS))

    async def stop(self) -> None:
        """Finish the message being sent (SMTP timeouts bound it), release the rest."""
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            await self._task
        if not self._shared:
            await release_sending_mail(self._db)

    async def run_once(self) -> int:
        """Claim due messages and send them in turn; how many were claimed."""
        loop = asyncio.get_running_loop()
        if loop.time() - self._pruned_at >= PRUNE_SECONDS:
            self._pruned_at = loop.time()
            await prune_mail(self._db, stamp(datetime.now(UTC) - KEEP_SENT))
        claimed = await claim_due_mail(self._db)
        for queued in claimed:
            if self._stopping.is_set():
                break  # the rest stay 'sending' until stop() releases them
            await self._send(queued)
        return len(claimed)

    async def _send(self, queued: QueuedMail) -> None:
        try:
            message = build_message(queued.mail, queued.token, parse_stamp(queued.created_at),
                                    self._from_address)
            await self._transport.send(message, queued.mail.kind)
        except MailError as e:
            await self._failed(queued, str(e), e.permanent)
        except Exception as e:  # a bug must not hold the row 'sending': it is retried too
            await self._failed(queued, f"{type(e).__name__}: {e}", permanent=False)
        else:
            await mark_mail_sent(self._db, queued.id)

    async def _failed(self, queued: QueuedMail, reason: str, permanent: bool) -> None:
        again = None if permanent else retry_at(queued.attempts, parse_stamp(queued.created_at),
                                                datetime.now(UTC))
        if again is None and not permanent:
            reason = f"gave up after {GIVE_UP_AFTER.total_seconds() / 3600:.0f} hours: {reason}"
        await mark_mail_failed(self._db, queued.id, reason[:500],
                               None if again is None else stamp(again))
        log.warning("%s mail %d not sent (attempt %d, %s): %s", queued.mail.kind, queued.id,
                    queued.attempts, "to be retried" if again else "given up",
                    _without_address(reason, queued.mail.to_address))


def _without_address(text: str, address: str) -> str:
    """A server's answer often repeats the recipient; warnings must not."""
    return re.sub(re.escape(parse_address(address).addr_spec), "<recipient>", text,
                  flags=re.IGNORECASE)
