"""The rota of a group that shares facilitation: who holds (or co-holds) each meeting,
the turns its members would like to swap, and the reminder the day before a turn.

A turn is one row of ``meeting_holders``: a meeting (a series' occurrence), a role and
the member holding it. Turns are taken and changed only on meetings still to come and
not cancelled, of groups running a rota (``group_practice.facilitation``); each change
checks that inside its own transaction, so two members clicking at once cannot both win.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from node.db import Database, Row, Writing, stamp, timestamp
from node.storage.notices import REMINDER_WINDOW, record_notice

ROTA_LENGTH = 6  # meetings the group's page shows


class Holding(StrEnum):
    HOLDER = "holder"
    CO_HOLDER = "co_holder"  # holds the meeting with its holder


@dataclass(frozen=True, slots=True)
class Turn:
    role: Holding
    account_id: int
    name: str
    swap_wanted: bool


@dataclass(frozen=True, slots=True)
class RotaMeeting:
    """One meeting still to come and who holds it."""

    event_id: int
    title: str
    timezone: str
    occurrence: str  # the slot's key, as rsvps.occurrence
    starts_utc: str
    holder: Turn | None
    co_holder: Turn | None

    def turn_of(self, account_id: int) -> Turn | None:
        return next((t for t in (self.holder, self.co_holder)
                     if t is not None and t.account_id == account_id), None)


@dataclass(frozen=True, slots=True)
class TurnKey:
    """A turn as a form names it."""

    event_id: int
    occurrence: str
    role: Holding


# Each meeting of the group with its holder (h) and co-holder (c), if any.
_ROTA = (
    "SELECT o.event_id, o.original_start, o.starts_utc, e.title, e.timezone,"
    " h.account_id AS holder_id, ha.display_name AS holder_name, h.swap_wanted AS holder_swap,"
    " c.account_id AS co_holder_id, ca.display_name AS co_holder_name,"
    " c.swap_wanted AS co_holder_swap"
    " FROM occurrences o JOIN events e ON e.id = o.event_id"
    " LEFT JOIN meeting_holders h ON h.event_id = o.event_id"
    " AND h.occurrence = o.original_start AND h.role = 'holder'"
    " LEFT JOIN accounts ha ON ha.id = h.account_id"
    " LEFT JOIN meeting_holders c ON c.event_id = o.event_id"
    " AND c.occurrence = o.original_start AND c.role = 'co_holder'"
    " LEFT JOIN accounts ca ON ca.id = c.account_id")


def _rota_meeting(row: Row) -> RotaMeeting:
    def turn(role: Holding) -> Turn | None:
        if row[f"{role}_id"] is None:
            return None
        return Turn(role, row[f"{role}_id"], row[f"{role}_name"], bool(row[f"{role}_swap"]))

    return RotaMeeting(row["event_id"], row["title"], row["timezone"], row["original_start"],
                       row["starts_utc"], turn(Holding.HOLDER), turn(Holding.CO_HOLDER))


async def meeting_rota(db: Database, event_id: int, occurrence: str) -> RotaMeeting | None:
    """One meeting and who holds it; None if it is not expanded (long past, or gone)."""
    row = await db.fetchone(_ROTA + " WHERE o.event_id = ? AND o.original_start = ?",
                            (event_id, occurrence))
    return None if row is None else _rota_meeting(row)


async def upcoming_rota(db: Database, group_id: int, now: datetime, *,
                        limit: int = ROTA_LENGTH,
                        held_by: int | None = None) -> list[RotaMeeting]:
    """The group's next meetings that are not cancelled, soonest first, with who holds
    them; only those where ``held_by`` has a turn, if given."""
    rows = await db.fetchall(
        _ROTA + " WHERE o.group_id = ? AND o.starts_utc > ? AND o.cancelled = 0"
        " AND e.cancelled = 0 AND (CAST(? AS BIGINT) IS NULL OR ? IN (h.account_id, c.account_id))"
        " ORDER BY o.starts_utc, o.event_id LIMIT ?",
        (group_id, stamp(now), held_by, held_by, limit))
    return [_rota_meeting(row) for row in rows]


async def holding(db: Database, event_id: int, occurrence: str,
                  account_id: int) -> Holding | None:
    """The turn the account has at one meeting, if any."""
    role = await db.fetchval(
        "SELECT role FROM meeting_holders WHERE event_id = ? AND occurrence = ?"
        " AND account_id = ?", (event_id, occurrence, account_id))
    return None if role is None else Holding(role)


# Changing turns -------------------------------------------------------------------------

async def _is_open(conn: Writing, group_id: int, event_id: int, occurrence: str,
                   now: datetime) -> bool:
    """Whether this is a meeting of the group still to come, not cancelled, and the group
    runs a rota."""
    cursor = await conn.execute(
        "SELECT 1 FROM occurrences o JOIN events e ON e.id = o.event_id"
        " JOIN group_practice p ON p.group_id = o.group_id"
        " WHERE o.event_id = ? AND o.original_start = ? AND o.group_id = ?"
        " AND o.starts_utc > ? AND o.cancelled = 0 AND e.cancelled = 0"
        " AND p.facilitation = 'rotating'", (event_id, occurrence, group_id, stamp(now)))
    return await cursor.fetchone() is not None


async def _holder_at(conn: Writing, event_id: int, occurrence: str,
                     account_id: int) -> bool:
    cursor = await conn.execute(
        "SELECT 1 FROM meeting_holders WHERE event_id = ? AND occurrence = ?"
        " AND account_id = ?", (event_id, occurrence, account_id))
    return await cursor.fetchone() is not None


async def volunteer(db: Database, group_id: int, event_id: int, occurrence: str,
                    account_id: int, role: Holding, now: datetime) -> bool:
    """Take the free ``role`` of a meeting (a co-holder joins a holder); False if it is
    taken, or the member already has a turn there."""
    async with db.transaction() as conn:
        if not await _is_open(conn, group_id, event_id, occurrence, now) or await _holder_at(
                conn, event_id, occurrence, account_id):
            return False
        cursor = await conn.execute(
            "INSERT INTO meeting_holders (event_id, occurrence, role, account_id)"
            " SELECT ?, ?, ?, ? WHERE ? = 'holder' OR EXISTS (SELECT 1 FROM meeting_holders"
            " WHERE event_id = ? AND occurrence = ? AND role = 'holder')"
            " ON CONFLICT DO NOTHING RETURNING role",
            (event_id, occurrence, role, account_id, role, event_id, occurrence))
        return await cursor.fetchone() is not None


async def step_back(db: Database, group_id: int, event_id: int, occurrence: str,
                    account_id: int, now: datetime) -> Holding | None:
    """The member gives up their turn at a meeting; which it was, or None."""
    async with db.transaction() as conn:
        if not await _is_open(conn, group_id, event_id, occurrence, now):
            return None
        cursor = await conn.execute(
            "DELETE FROM meeting_holders WHERE event_id = ? AND occurrence = ?"
            " AND account_id = ? RETURNING role", (event_id, occurrence, account_id))
        row = await cursor.fetchone()
        return None if row is None else Holding(row[0])


async def want_swap(db: Database, group_id: int, event_id: int, occurrence: str,
                    account_id: int, wanted: bool, now: datetime) -> bool:
    """Ask the group for someone to take the member's turn, or withdraw the request."""
    async with db.transaction() as conn:
        if not await _is_open(conn, group_id, event_id, occurrence, now):
            return False
        cursor = await conn.execute(
            "UPDATE meeting_holders SET swap_wanted = ? WHERE event_id = ? AND occurrence = ?"
            " AND account_id = ? AND swap_wanted != ? RETURNING role",
            (int(wanted), event_id, occurrence, account_id, int(wanted)))
        return await cursor.fetchone() is not None


async def _hand_over(conn: Writing, turn: TurnKey, to: int) -> None:
    """The turn changes hands: no swap asked any more, and its new holder is reminded."""
    await conn.execute(
        "UPDATE meeting_holders SET account_id = ?, swap_wanted = 0, reminded_for = NULL"
        " WHERE event_id = ? AND occurrence = ? AND role = ?",
        (to, turn.event_id, turn.occurrence, turn.role))


async def take_turn(db: Database, group_id: int, turn: TurnKey, taker_id: int,
                    given: TurnKey | None, now: datetime) -> bool:
    """A member takes a turn whose holder asked for a swap, giving them one of their own
    turns in exchange if ``given``; both change hands together, and the one replaced is
    told. False, and nothing changed, if either turn is not as the member saw it."""
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "SELECT account_id FROM meeting_holders WHERE event_id = ? AND occurrence = ?"
            " AND role = ? AND swap_wanted = 1", (turn.event_id, turn.occurrence, turn.role))
        row = await cursor.fetchone()
        if row is None or not await _is_open(conn, group_id, turn.event_id, turn.occurrence,
                                             now):
            return False
        replaced = row[0]
        if await _holder_at(conn, turn.event_id, turn.occurrence, taker_id):
            return False
        if given is not None:
            cursor = await conn.execute(
                "SELECT 1 FROM meeting_holders WHERE event_id = ? AND occurrence = ?"
                " AND role = ? AND account_id = ?",
                (given.event_id, given.occurrence, given.role, taker_id))
            if (await cursor.fetchone() is None
                    or (given.event_id, given.occurrence) == (turn.event_id, turn.occurrence)
                    or not await _is_open(conn, group_id, given.event_id, given.occurrence, now)
                    or await _holder_at(conn, given.event_id, given.occurrence, replaced)):
                return False
            await _hand_over(conn, given, replaced)
        await _hand_over(conn, turn, taker_id)
        await record_notice(
            conn, "turn_changed", replaced, event_id=turn.event_id, occurrence=turn.occurrence,
            role=turn.role, change="swapped" if given else "taken", by=taker_id,
            given=None if given is None else [given.event_id, given.occurrence, given.role])
        return True


async def remove_turn(db: Database, group_id: int, event_id: int, occurrence: str,
                      role: Holding, now: datetime) -> bool:
    """A facilitator takes a member off a turn; the member is told."""
    async with db.transaction() as conn:
        if not await _is_open(conn, group_id, event_id, occurrence, now):
            return False
        cursor = await conn.execute(
            "DELETE FROM meeting_holders WHERE event_id = ? AND occurrence = ? AND role = ?"
            " RETURNING account_id", (event_id, occurrence, role))
        row = await cursor.fetchone()
        if row is None:
            return False
        await record_notice(conn, "turn_changed", row[0], event_id=event_id,
                            occurrence=occurrence, role=role, change="removed")
        return True


async def release_turns(conn: Writing, group_id: int, account_id: int) -> None:
    """Inside the caller's transaction: a member leaving the group gives up the turns
    they had at its meetings not yet begun."""
    await conn.execute(
        "DELETE FROM meeting_holders WHERE account_id = ?"
        " AND event_id IN (SELECT id FROM events WHERE group_id = ?)"
        " AND NOT EXISTS (SELECT 1 FROM occurrences o WHERE o.event_id ="
        " meeting_holders.event_id AND o.original_start = meeting_holders.occurrence"
        " AND o.starts_utc <= ?)", (account_id, group_id, timestamp()))


# The day before -------------------------------------------------------------------------

async def record_due_reminders(db: Database, now: datetime) -> int:
    """A ``holding_reminder`` notice to each holder and co-holder of a meeting starting
    in the reminder window, once per turn and start; how many."""
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "UPDATE meeting_holders SET reminded_for = o.starts_utc"
            " FROM occurrences o JOIN events e ON e.id = o.event_id"
            " JOIN group_practice p ON p.group_id = o.group_id"
            " WHERE o.event_id = meeting_holders.event_id"
            " AND o.original_start = meeting_holders.occurrence"
            " AND o.starts_utc >= ? AND o.starts_utc < ? AND o.cancelled = 0"
            " AND e.cancelled = 0 AND p.facilitation = 'rotating'"
            " AND meeting_holders.reminded_for IS DISTINCT FROM o.starts_utc"
            " RETURNING meeting_holders.account_id, meeting_holders.event_id,"
            " meeting_holders.occurrence, meeting_holders.role",
            (stamp(now + REMINDER_WINDOW[0]), stamp(now + REMINDER_WINDOW[1])))
        due = await cursor.fetchall()
        for account_id, event_id, occurrence, role in due:
            await record_notice(conn, "holding_reminder", account_id, event_id=event_id,
                                occurrence=occurrence, role=role)
    return len(due)
