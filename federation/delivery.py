"""The outgoing delivery worker: claim due rows, POST each signed, record the answer.

A delivery row moves ``queued -> sent`` only on the peer's 2xx, ``queued ->
failed`` when the peer refuses it or has failed for 3 days, and otherwise stays
``queued`` with a later ``next_attempt_at`` (see ``federation.retry``). A crash
between claim and answer leaves the row queued and leased; when the lease ends
it is due again.

A peer that stops answering is held: once it says "not now", its other queued
deliveries wait until that row's retry time, when the oldest goes first as the
probe; the peer's first 2xx makes the rest due at once.
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from federation import store
from federation.addresses import url_host
from federation.events import FederationEvents, activity_label
from federation.fetch import Fetcher, FetchError, host_of
from federation.retry import Answer, next_attempt, sort_answer
from federation.signatures import SignedAuth
from node.background import repeat
from node.db import Database, parse_stamp, stamp

CONTENT_TYPE = "application/activity+json"
POLL_SECONDS = 1.0

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Attempt:
    """One POST's result as the worker acts on it."""

    outcome: str                # sent | failed | retry
    status: int | None
    retry_after: str | None
    hold_until: str | None      # set when the peer said "not now"


class DeliveryWorker:
    """Sends queued deliveries; one ``run_once`` is one cycle, ``run_forever`` the loop.

    Each inbox's rows go one after another, oldest first (peers apply
    activities in arrival order); different inboxes go side by side.
    """

    def __init__(self, db: Database, fetcher: Fetcher,
                 key_id_for: Callable[[str], Awaitable[str]], concurrency: int = 8,
                 lease_seconds: float = 120, events: FederationEvents | None = None) -> None:
        # A lease (stored to the second) must outlast a whole exchange, or a
        # second worker could send the same row while the first still waits.
        if lease_seconds <= fetcher.deadline + 1:
            raise ValueError("lease_seconds must exceed the fetcher's deadline by over 1 s")
        self._db = db
        self._fetcher = fetcher
        self._key_id_for = key_id_for
        self._lease_seconds = lease_seconds
        self._slots = asyncio.Semaphore(concurrency)
        self._stopping = asyncio.Event()
        self._events = events or FederationEvents()

    async def run_once(self, limit: int = 256) -> int:
        """Claim up to ``limit`` due deliveries, try each, and record the answers; the number
        claimed."""
        claimed_at = time.monotonic()
        claimed = await store.claim_deliveries(self._db, self._lease_seconds, limit)
        by_inbox: dict[str, list[store.Delivery]] = {}
        for row in claimed:
            by_inbox.setdefault(row.inbox, []).append(row)
        signers = await self._signers({row.signer for row in claimed})
        cycle = store.Cycle()
        await asyncio.gather(*(self._deliver_to(inbox, rows, claimed_at, signers, cycle)
                               for inbox, rows in by_inbox.items()))
        await store.record_cycle(self._db, cycle)
        return len(claimed)

    async def _signers(self, owners: set[str]) -> dict[str, SignedAuth]:
        """One signer per actor of this cycle (a fan-out shares one lookup).

        An owner whose key cannot be found is left out: its rows stay leased
        and are due again when the lease ends.
        """
        signers = {}
        for owner in owners:
            try:
                key = await store.key_for(self._db, owner)
                signers[owner] = SignedAuth(await self._key_id_for(owner), key.private_pem)
            except Exception:
                log.warning("no signing key for %s", owner, exc_info=True)
        return signers

    def stop(self) -> None:
        """Let the POSTs under way finish and start no more; ``run_forever`` then returns.

        Set ``wake`` too, so an idle loop notices at once. Rows claimed but not
        tried stay leased (see ``store.release_leases``).
        """
        self._stopping.set()

    async def run_forever(self, wake: asyncio.Event) -> None:
        """Cycle while work is due; otherwise wait for ``wake`` or the poll interval."""
        await repeat("delivery", self.run_once, wake, self._stopping, POLL_SECONDS)

    async def _deliver_to(self, inbox: str, rows: list[store.Delivery], claimed_at: float,
                          signers: dict[str, SignedAuth], cycle: store.Cycle) -> None:
        """The inbox's rows in order; the first "not now" holds the rest."""
        sent = held = False
        try:
            for index, row in enumerate(rows):
                async with self._slots:
                    # Rows left leased here are due again when the lease ends.
                    if self._stopping.is_set() or time.monotonic() - claimed_at \
                            + self._fetcher.deadline + 1 > self._lease_seconds:
                        break
                    attempt = await self._attempt(row, signers.get(row.signer), cycle)
                if attempt is None:
                    continue
                sent = sent or attempt.outcome == "sent"
                if attempt.hold_until is not None:
                    held = True
                    self._hold(inbox, rows[index + 1:], attempt.hold_until, attempt, cycle)
                    break
            if sent:
                cycle.reached.append((inbox, url_host(inbox)))
                if not held:  # a held peer recovers by itself on its first success
                    cycle.due.append(inbox)
        except Exception:
            log.warning("deliveries to %s: unexpected error", host_of(inbox), exc_info=True)

    async def _attempt(self, row: store.Delivery, auth: SignedAuth | None,
                       cycle: store.Cycle) -> _Attempt | None:
        """One signed POST and its outcome, noted in ``cycle``; None if it could not be made."""
        if auth is None:  # no key for its actor: left leased, tried again later
            return None
        try:
            status, retry_after, error = await self._post(row, auth)
            now = datetime.now(UTC)
            decision = next_attempt(row.attempts, parse_stamp(row.created_at), now, status,
                                    retry_after)
            retry_at = None
            if decision.outcome == "retry":
                retry_at = _stamp_after(now, decision.delay_seconds)
            if decision.outcome == "sent":
                error = None
            else:
                error = decision.reason if error is None else f"{decision.reason} ({error})"
            cycle.attempted.append(store.Attempted(
                row.id, "queued" if retry_at else decision.outcome, status, error, retry_at))
        except Exception:  # the row stays leased and is due again when the lease ends
            log.warning("delivery %d to %s: unexpected error", row.id, host_of(row.inbox),
                        exc_info=True)
            return None
        self._finished(row, "retry" if retry_at else decision.outcome, decision.reason)
        hold_until = None
        if sort_answer(status) in (Answer.THROTTLED, Answer.UNAVAILABLE):
            # When this row gave up, the peer is still held as for a fresh row.
            hold_until = retry_at or _stamp_after(
                now, next_attempt(row.attempts, now, now, status, retry_after).delay_seconds)
        return _Attempt(decision.outcome, status, retry_after, hold_until)

    async def _post(self, row: store.Delivery,
                    auth: SignedAuth) -> tuple[int | None, str | None, str | None]:
        """(status, Retry-After, error): status None when no answer came."""
        try:
            response = await self._fetcher.post(
                row.inbox, row.body.encode("utf-8"), {"Content-Type": CONTENT_TYPE}, auth=auth)
        except FetchError as failure:
            return None, None, failure.reason
        return response.status, response.headers.get("retry-after"), None

    def _hold(self, inbox: str, waiting: list[store.Delivery], until: str,
              answer: _Attempt, cycle: store.Cycle) -> None:
        """Rows not tried wait for the peer, except those past giving up, which fail."""
        now = datetime.now(UTC)
        release = []
        for row in waiting:
            decision = next_attempt(row.attempts, parse_stamp(row.created_at), now, answer.status,
                                    answer.retry_after)
            if decision.outcome == "failed":
                reason = f"{decision.reason} (peer failing)"
                cycle.attempted.append(store.Attempted(row.id, "failed", None, reason))
                self._finished(row, "failed", reason)
            else:
                release.append(row.id)
        cycle.held.append(store.Held(inbox, until, tuple(release)))

    def _finished(self, row: store.Delivery, outcome: str, reason: str) -> None:
        """One line and one count per delivery attempt: its type, peer and outcome."""
        self._events.delivery_finished(outcome)
        activity_type = activity_label(row.activity_type)
        peer = host_of(row.inbox)
        log.info("delivery %d of %s to %s: %s (%s)", row.id, activity_type, peer, outcome,
                 reason, extra={"activity_type": activity_type, "peer": peer,
                                "outcome": outcome})


def _stamp_after(now: datetime, seconds: float | None) -> str:
    """``now`` plus ``seconds``, rounded up to the stored whole second (never early)."""
    moment = now + timedelta(seconds=seconds or 0)
    return stamp(datetime.fromtimestamp(math.ceil(moment.timestamp()), UTC))


