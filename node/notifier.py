"""The notice worker: each notice a change recorded becomes mail in its reader's language,
at once or in one daily digest, as the member chose; and the day-before reminders that
are due are recorded as notices.

A notice becomes mail in one transaction: the message enters the outbox and the notice
is deleted together, so a restart neither loses nor repeats one (all state is in
SQLite). A kind the member turned off, or one whose reason is gone (a join request
already answered, a meeting deleted), is deleted without mail. Addresses are read
from ``accounts`` as each message is written. Digests go at ``DIGEST_HOUR_UTC``,
gathering what was recorded before then; what cannot wait (a meeting moved or
cancelled, a place opened up, a reminder) goes at once, whatever the digest.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Literal

from itsdangerous import BadSignature, URLSafeSerializer

from node import i18n, practice
from node.background import repeat
from node.db import Database, stamp
from node.domain import Account, AccountStatus
from node.i18n import N_
from node.letters import compose
from node.mail import OutgoingMail
from node.notice_letters import Letter, write_letter
from node.storage.accounts import get_account
from node.storage.notices import (
    REMINDER_WINDOW,
    Notice,
    digest_accounts,
    due_notices,
    held_notices,
    mail_preferences,
    record_due_reminders,
    send_notices,
)
from node.storage.settings import load_settings

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
SCAN_SECONDS = 60.0  # how often due reminders and digests are looked for
DIGEST_HOUR_UTC = 7  # the daily digest goes at 07:00 UTC
# Sent at once even to digest members: tomorrow's digest would come too late for a
# meeting moved or cancelled, a place that opened up, or a reminder.
IMMEDIATE = ("meeting_changed", "waitlist_promoted", "meeting_reminder", "holding_reminder")


@dataclass(frozen=True, slots=True)
class Kind:
    label: str  # for the preferences and unsubscribe pages, translated where shown
    audience: Literal["member", "facilitator", "admin"]


# Every kind a member may turn off, in the order the preferences page lists them.
KINDS: dict[str, Kind] = {
    "welcome": Kind(N_("A welcome, with the group's agreements, when you join a group"),
                    "member"),
    "join_approved": Kind(N_("Your request to join a group is approved"), "member"),
    "join_declined": Kind(N_("Your request to join a group is declined"), "member"),
    "agreement_proposed": Kind(N_("A member proposes a change to a group's agreements"),
                               "member"),
    "agreements_changed": Kind(N_("A group's agreements change"), "member"),
    "rsvp_confirmed": Kind(N_("A confirmation, with a calendar file, when you say you are"
                              " coming to a meeting"), "member"),
    "waitlist_promoted": Kind(N_("A place opens up at a meeting you are waiting for"),
                              "member"),
    "meeting_changed": Kind(N_("A meeting you are going to or waiting for is moved or"
                               " cancelled"), "member"),
    "meeting_reminder": Kind(N_("A reminder the day before each meeting you are going to"),
                             "member"),
    "holding_reminder": Kind(N_("A reminder the day before a meeting you hold or co-hold"),
                             "member"),
    "turn_changed": Kind(N_("Someone takes or swaps your turn holding a meeting, or a"
                            " facilitator takes you off it"), "member"),
    "join_request": Kind(N_("Someone asks to join a group you facilitate"), "facilitator"),
    "group_approved": Kind(N_("The admins approve a public group you facilitate"),
                           "facilitator"),
    "group_refused": Kind(N_("The admins do not approve a public group you facilitate"),
                          "facilitator"),
    "report": Kind(N_("A new report about a group or meeting, from a member or a peer node"),
                   "admin"),
    "account_review": Kind(N_("A new account waits for approval"), "admin"),
    "group_review": Kind(N_("A new public group waits for approval"), "admin"),
}
EVERY_KIND = "all"  # what a digest's unsubscribe link stops


def utcnow() -> datetime:
    """The worker's clock."""
    return datetime.now(UTC)


def digest_due_before(now: datetime) -> datetime:
    """The latest digest hour not after ``now``: what was recorded before it is due."""
    today = datetime.combine(now.date(), time(DIGEST_HOUR_UTC), UTC)
    return today if today <= now else today - timedelta(days=1)


# Unsubscribe links ----------------------------------------------------------------------

def _signer(secret_key: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret_key, salt="grassroots.unsubscribe")


def unsubscribe_token(secret_key: str, account_id: int, kind: str) -> str:
    """The token of a link that stops ``kind`` (or ``EVERY_KIND``) for the account."""
    return _signer(secret_key).dumps([account_id, kind])


def read_unsubscribe_token(secret_key: str, token: str) -> tuple[int, str] | None:
    """(account id, kind) a token names, or None if it was not signed by this node."""
    try:
        value = _signer(secret_key).loads(token)
    except BadSignature:
        return None
    match value:
        case [int() as account_id, str() as kind] if kind in KINDS or kind == EVERY_KIND:
            return account_id, kind
    return None


# The worker -----------------------------------------------------------------------------

class Notifier:
    """Turns notices into mail while the node runs, and wakes the mail worker when it has.

    ``run_once`` is one step (tests call it); ``start`` repeats it every second.
    """

    def __init__(self, db: Database, *, public_url: str, secret_key: str,
                 wake_mailer: Callable[[], None]) -> None:
        self._db = db
        self._public_url = public_url
        self._secret_key = secret_key
        self._wake_mailer = wake_mailer
        self._next_scan: datetime | None = None
        self._failed: set[int] = set()  # notices that raised; tried again after a restart
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(
            repeat("notice", self.run_once, None, self._stopping, POLL_SECONDS))

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await self._task

    async def run_once(self) -> int:
        """Record due reminders and send due digests (every minute), then the notices
        that go one by one; how many notices were handled."""
        now = utcnow()
        handled = queued = 0
        if self._next_scan is None or now >= self._next_scan:
            self._next_scan = now + timedelta(seconds=SCAN_SECONDS)
            handled += await record_due_reminders(self._db, now + REMINDER_WINDOW[0],
                                                  now + REMINDER_WINDOW[1])
            handled += await practice.settle(self._db, now)
            before = stamp(digest_due_before(now))
            for account_id in await digest_accounts(self._db, held_before=before,
                                                    immediate=IMMEDIATE):
                found = [n for n in await held_notices(self._db, account_id,
                                                       held_before=before, immediate=IMMEDIATE)
                         if n.id not in self._failed]
                if not found:
                    continue
                try:
                    queued += await self._send_digest(account_id, found)
                except Exception:
                    self._failed_on(found)
                else:
                    handled += len(found)
        for notice in await due_notices(self._db, immediate=IMMEDIATE, skip=self._failed):
            try:
                queued += await self._send_one(notice)
            except Exception:
                self._failed_on([notice])
            else:
                handled += 1
        if queued:
            self._wake_mailer()
        return handled

    def _failed_on(self, notices: list[Notice]) -> None:
        """A notice that cannot be written is left for after a restart, not retried
        every second."""
        log.exception("notices %s could not be written as mail",
                      ", ".join(str(n.id) for n in notices))
        self._failed.update(n.id for n in notices)

    async def _send_one(self, notice: Notice) -> bool:
        account = await _recipient(self._db, notice.account_id)
        mail = None
        if account is not None and (await mail_preferences(self._db, account.id)).wants(
                notice.kind):
            node_name = (await load_settings(self._db)).name
            with i18n.speaking(account.language):
                letter = await write_letter(self._db, self._public_url, account, notice)
                if letter is not None:
                    mail = self._compose(account, letter, node_name, kind=notice.kind,
                                         stops=notice.kind)
        done = await send_notices(self._db, [notice.id], mail)
        log.debug("notice %d (%s): %s", notice.id, notice.kind,
                  "mail queued" if done and mail else "no mail")
        return done and mail is not None

    async def _send_digest(self, account_id: int, notices: list[Notice]) -> bool:
        account = await _recipient(self._db, account_id)
        mail = None
        if account is not None and notices:
            wanted = await mail_preferences(self._db, account.id)
            node_name = (await load_settings(self._db)).name
            items, attachments = [], []
            with i18n.speaking(account.language):
                for notice in notices:
                    letter = (await write_letter(self._db, self._public_url, account, notice)
                              if wanted.wants(notice.kind) else None)
                    if letter is None:
                        continue
                    part = self._compose(account, letter, node_name, kind=notice.kind,
                                         stops=notice.kind, in_digest=True)
                    items.append({"subject": part.subject, "text": part.text.strip()})
                    attachments.extend(letter.attachments)
                if items:
                    digest = Letter("digest", {"items": items}, tuple(attachments))
                    mail = self._compose(account, digest, node_name, kind="digest",
                                         stops=EVERY_KIND)
        done = await send_notices(self._db, [n.id for n in notices], mail)
        log.debug("digest of %d notices for account %d: %s", len(notices), account_id,
                  "mail queued" if done and mail else "no mail")
        return done and mail is not None

    def _compose(self, account: Account, letter: Letter, node_name: str, *, kind: str,
                 stops: str, in_digest: bool = False) -> OutgoingMail:
        """The message of ``letter``, whose unsubscribe link stops the kind ``stops``."""
        assert account.email is not None
        token = unsubscribe_token(self._secret_key, account.id, stops)
        context = {"name": account.display_name, "node_name": node_name,
                   "node_url": self._public_url,
                   "preferences_url": f"{self._public_url}/account/mail",
                   "unsubscribe_url": f"{self._public_url}/unsubscribe/{token}",
                   "in_digest": in_digest, **letter.context}
        return compose(letter.template, to=account.email, kind=kind,
                       language=account.language, context=context, account_id=account.id,
                       unsubscribe_url=context["unsubscribe_url"],
                       attachments=letter.attachments)


async def _recipient(db: Database, account_id: int) -> Account | None:
    """The account, if mail can reach it now: active, with an address."""
    account = await get_account(db, account_id)
    if account is None or account.status is not AccountStatus.ACTIVE or not account.email:
        return None
    return account

