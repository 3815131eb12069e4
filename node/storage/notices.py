"""Notices: what a member is to be told, written with the change that causes it, and what
mail each member chose to get. ``node.notifier`` turns notices into mail.

What each kind's ``data`` holds (ids are read again when the mail is written):

- ``join_request`` (each facilitator): ``group_id``, ``member_id``
- ``welcome``, ``join_approved``, ``join_declined`` (the member): ``group_id``
- ``rsvp_confirmed`` (the member): ``event_id``, ``occurrence``, ``status``
- ``waitlist_promoted`` (the member): ``event_id``, ``occurrence``
- ``meeting_changed`` (each member going or waitlisted): ``event_id``, ``occurrence``,
  ``change`` (one of ``MEETING_CHANGES``), ``was`` and ``starts`` (UTC stamps or null)
- ``meeting_reminder`` (the member, if they asked): ``event_id``, ``occurrence``
- ``holding_reminder`` (each holder and co-holder of a rotating group's meeting):
  ``event_id``, ``occurrence``, ``role``
- ``turn_changed`` (the member whose turn changed): ``event_id``, ``occurrence``, ``role``,
  ``change`` (``taken``, ``swapped`` or ``removed``), and for a taken or swapped turn
  ``by`` (the member who took it) and ``given`` (the turn given in exchange, as
  [event_id, occurrence, role], or null)
- ``agreement_proposed`` (each member but the proposer): ``group_id``, ``proposal_id``
- ``agreements_changed`` (each member but the author): ``group_id``, ``version``
- ``report`` (each admin): ``report_id``
- ``account_review`` (each admin): ``applicant_id``, optionally ``reason``
- ``group_review`` (each admin), ``group_approved``, ``group_refused`` (each
  facilitator): ``group_id``, optionally ``group_name`` and ``reason``
"""
from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from node.db import Database, Row, Writing, stamp, timestamp
from node.mail import OutgoingMail
from node.storage.mail import enqueue_mail

# One occurrence cancelled, moved or back at its usual time; the series edited in time
# or place, or cancelled as a whole.
MEETING_CHANGES = ("cancelled", "moved", "restored", "edited", "series_cancelled")
SERIES_CHANGES = ("edited", "series_cancelled")
# The day before: a reminder is recorded this long ahead of a meeting's start.
REMINDER_WINDOW = (timedelta(hours=24), timedelta(hours=25))


async def record_notice(conn: Writing, kind: str, account_id: int,
                        **data: Any) -> None:
    """Inside the caller's write transaction: the notice commits, or not, with the change.

    ``data`` (JSON values) is what the message must say as it was at the change (a
    meeting's old time); what can be read later (a group's name) is read when sending.
    """
    await conn.execute(
        "INSERT INTO notices (account_id, kind, data, created_at) VALUES (?, ?, ?, ?)",
        (account_id, kind, json.dumps(data, separators=(",", ":")), timestamp()),
    )


async def forget_notices(db: Database, account_ids: Collection[int]) -> None:
    """Drop what is waiting to be told to these accounts (the demo's example members)."""
    await db.write(f"DELETE FROM notices WHERE account_id {db.dialect.among}",
                   (db.dialect.listed(list(account_ids)),))


async def record_for_facilitators(conn: Writing, group_id: int, kind: str,
                                  **data: Any) -> None:
    """A notice about the group to each of its active facilitators."""
    cursor = await conn.execute(
        "SELECT account_id FROM memberships WHERE group_id = ? AND role = 'facilitator'"
        " AND status = 'active' ORDER BY account_id", (group_id,))
    for (account_id,) in await cursor.fetchall():
        await record_notice(conn, kind, account_id, group_id=group_id, **data)


async def record_for_admins(conn: Writing, kind: str, **data: Any) -> None:
    """A notice to each active admin of the node."""
    cursor = await conn.execute(
        "SELECT id FROM accounts WHERE is_admin = 1 AND status = 'active' ORDER BY id")
    for (account_id,) in await cursor.fetchall():
        await record_notice(conn, kind, account_id, **data)


# Meetings: who answered, and telling them of a change --------------------------------

@dataclass(frozen=True, slots=True)
class Answer:
    """A member going or waitlisted for one occurrence not yet over, and how it was then."""

    account_id: int
    occurrence: str
    starts_utc: str
    cancelled: bool


async def answers(conn: Writing, event_id: int,
                  occurrence: str | None = None) -> list[Answer]:
    """Who answered for the series' occurrences not yet over (or the one ``occurrence``)."""
    cursor = await conn.execute(
        "SELECT r.account_id, r.occurrence, o.starts_utc, o.cancelled FROM rsvps r"
        " JOIN occurrences o"
        " ON o.event_id = r.event_id AND o.original_start = r.occurrence"
        " WHERE r.event_id = ? AND o.ends_utc >= ?"
        " AND (CAST(? AS TEXT) IS NULL OR r.occurrence = ?)"
        " ORDER BY o.starts_utc, r.seq", (event_id, timestamp(), occurrence, occurrence))
    return [Answer(row[0], row[1], row[2], bool(row[3])) for row in await cursor.fetchall()]


async def meeting_plan(conn: Writing, event_id: int) -> tuple | None:
    """When and where a series meets, and whether it is cancelled: what members are told
    of when it changes (a new title or description is not)."""
    cursor = await conn.execute(
        "SELECT starts_at, duration_minutes, timezone, rrule, format, place, address,"
        " cancelled FROM events WHERE id = ?", (event_id,))
    row = await cursor.fetchone()
    return None if row is None else tuple(row)


async def record_meeting_changed(conn: Writing, event_id: int, change: str,
                                 answered: list[Answer]) -> None:
    """Tell those who ``answered`` (read before the change) of it, with the new time.

    One notice per member and occurrence for a change of one occurrence (none if it was
    so already); one per member, about the next meeting, for a change of the series.
    """
    assert change in MEETING_CHANGES
    cursor = await conn.execute(
        "SELECT original_start, starts_utc FROM occurrences WHERE event_id = ?"
        " AND cancelled = 0 AND ends_utc >= ? ORDER BY starts_utc", (event_id, timestamp()))
    held = {row[0]: row[1] for row in await cursor.fetchall()}
    series = change in SERIES_CHANGES
    following = next(iter(held.values()), None) if change == "edited" else None
    told: set[int] = set()
    for answer in answered:
        if series and answer.account_id in told:
            continue
        if change == "cancelled" and answer.cancelled or change == "moved" and (
                not answer.cancelled and held.get(answer.occurrence) == answer.starts_utc):
            continue
        told.add(answer.account_id)
        await record_notice(conn, "meeting_changed", answer.account_id, event_id=event_id,
                            occurrence=answer.occurrence, change=change, was=answer.starts_utc,
                            starts=following if series else held.get(answer.occurrence))


async def record_due_reminders(db: Database, start: datetime, end: datetime) -> int:
    """A ``meeting_reminder`` notice for each member going to an occurrence starting in
    [start, end) who asked for reminders, once per occurrence and start; how many."""
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "INSERT INTO reminders_sent (account_id, event_id, occurrence, starts_utc)"
            " SELECT r.account_id, o.event_id, o.original_start, o.starts_utc"
            " FROM occurrences o JOIN events e ON e.id = o.event_id"
            " JOIN rsvps r ON r.event_id = o.event_id AND r.occurrence = o.original_start"
            " JOIN mail_preferences p ON p.account_id = r.account_id"
            " WHERE o.starts_utc >= ? AND o.starts_utc < ? AND o.cancelled = 0"
            " AND e.cancelled = 0 AND r.status = 'going' AND p.reminders = 1"
            " ON CONFLICT DO NOTHING RETURNING account_id, event_id, occurrence",
            (stamp(start), stamp(end)))
        due = await cursor.fetchall()
        for account_id, event_id, occurrence in due:
            await record_notice(conn, "meeting_reminder", account_id, event_id=event_id,
                                occurrence=occurrence)
        # What is over cannot be reminded of again.
        await conn.execute("DELETE FROM reminders_sent WHERE starts_utc < ?", (stamp(start),))
    return len(due)


async def occurrence_times(db: Database, event_id: int,
                           occurrence: str) -> tuple[str, str, bool] | None:
    """(starts_utc, ends_utc, cancelled) of one occurrence, as it is now."""
    row = await db.fetchone(
        "SELECT starts_utc, ends_utc, cancelled FROM occurrences WHERE event_id = ?"
        " AND original_start = ?", (event_id, occurrence))
    return None if row is None else (row[0], row[1], bool(row[2]))


# Turning notices into mail ------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Notice:
    id: int
    account_id: int
    kind: str
    data: dict[str, Any]
    created_at: str


def _notice(row: Row) -> Notice:
    return Notice(row["id"], row["account_id"], row["kind"], json.loads(row["data"]),
                  row["created_at"])


async def due_notices(db: Database, *, immediate: Collection[str], skip: Collection[int] = (),
                      limit: int = 50) -> list[Notice]:
    """Notices to send one by one, oldest first: those of members who take their mail at
    once, and the ``immediate`` kinds of everyone; none of the ids in ``skip``.

    A digest member's other notices wait for ``digest_accounts``.
    """
    among, listed = db.dialect.among, db.dialect.listed
    rows = await db.fetchall(
        "SELECT n.* FROM notices n LEFT JOIN mail_preferences p ON p.account_id = n.account_id"
        f" WHERE (coalesce(p.digest, 0) = 0 OR n.kind {among})"
        f" AND NOT (n.id {among}) ORDER BY n.id LIMIT ?",
        (listed(list(immediate)), listed(list(skip)), limit))
    return [_notice(row) for row in rows]


async def digest_accounts(db: Database, *, held_before: str,
                          immediate: Collection[str]) -> list[int]:
    """Members of the daily digest with notices recorded before ``held_before``."""
    rows = await db.fetchall(
        "SELECT DISTINCT n.account_id FROM notices n JOIN mail_preferences p"
        " ON p.account_id = n.account_id WHERE p.digest = 1 AND n.created_at < ?"
        f" AND NOT (n.kind {db.dialect.among}) ORDER BY n.account_id",
        (held_before, db.dialect.listed(list(immediate))))
    return [row[0] for row in rows]


async def held_notices(db: Database, account_id: int, *, held_before: str,
                       immediate: Collection[str]) -> list[Notice]:
    """One digest member's notices recorded before ``held_before``, oldest first."""
    rows = await db.fetchall(
        "SELECT * FROM notices WHERE account_id = ? AND created_at < ?"
        f" AND NOT (kind {db.dialect.among}) ORDER BY id",
        (account_id, held_before, db.dialect.listed(list(immediate))))
    return [_notice(row) for row in rows]


async def send_notices(db: Database, notice_ids: list[int], mail: OutgoingMail | None) -> bool:
    """In one transaction: the notices are done, and ``mail`` (if any) is in the outbox.

    False, and nothing queued, when they were done already.
    """
    async with db.transaction() as conn:
        cursor = await conn.execute(
            f"DELETE FROM notices WHERE id {db.dialect.among} RETURNING id",
            (db.dialect.listed(notice_ids),))
        if not await cursor.fetchall():
            return False
        if mail is not None:
            await enqueue_mail(conn, mail)
        return True


# What mail a member wants -------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class MailPreferences:
    off: frozenset[str] = field(default_factory=frozenset)  # kinds turned off
    digest: bool = False
    reminders: bool = False

    def wants(self, kind: str) -> bool:
        if kind == "meeting_reminder":
            return self.reminders
        return kind not in self.off


async def mail_preferences(db: Database, account_id: int) -> MailPreferences:
    row = await db.fetchone("SELECT digest, reminders FROM mail_preferences"
                            " WHERE account_id = ?", (account_id,))
    off = await db.fetchall("SELECT kind FROM mail_kinds_off WHERE account_id = ?",
                            (account_id,))
    return MailPreferences(frozenset(r[0] for r in off), bool(row and row[0]),
                           bool(row and row[1]))


async def save_mail_preferences(db: Database, account_id: int,
                                preferences: MailPreferences) -> None:
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO mail_preferences (account_id, digest, reminders) VALUES (?, ?, ?)"
            " ON CONFLICT (account_id) DO UPDATE SET digest = excluded.digest,"
            " reminders = excluded.reminders",
            (account_id, int(preferences.digest), int(preferences.reminders)))
        await conn.execute("DELETE FROM mail_kinds_off WHERE account_id = ?", (account_id,))
        await conn.executemany(
            "INSERT INTO mail_kinds_off (account_id, kind) VALUES (?, ?)",
            [(account_id, kind) for kind in sorted(preferences.off)])


async def turn_off(db: Database, account_id: int, kinds: Collection[str]) -> bool:
    """Stop these kinds of mail for the account; False if there is no such account."""
    async with db.transaction() as conn:
        cursor = await conn.execute("SELECT 1 FROM accounts WHERE id = ?", (account_id,))
        if await cursor.fetchone() is None:
            return False
        if "meeting_reminder" in kinds:
            await conn.execute(
                "INSERT INTO mail_preferences (account_id, reminders) VALUES (?, 0)"
                " ON CONFLICT (account_id) DO UPDATE SET reminders = 0", (account_id,))
        await conn.executemany(
            "INSERT INTO mail_kinds_off (account_id, kind) VALUES (?, ?) ON CONFLICT DO NOTHING",
            [(account_id, kind) for kind in sorted(kinds) if kind != "meeting_reminder"])
        return True
