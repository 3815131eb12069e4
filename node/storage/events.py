"""Meetings: series, per-occurrence changes, expanded occurrences and RSVPs."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from node.db import Database, Row, Writing, stamp, timestamp
from node.domain import (
    Event,
    EventDraft,
    Format,
    Occurrence,
    OccurrenceChange,
    RsvpStatus,
    occurrence_key,
)
from node.recurrence import expand
from node.storage.changes import record_change
from node.storage.groups import LISTED
from node.storage.notices import answers, meeting_plan, record_meeting_changed
from node.storage.rsvps import fill_from_waitlist, release_rsvp, take_rsvp

# Occurrences kept expanded in SQL, for date filters and "next meetings".
HORIZON_PAST = timedelta(days=31)
HORIZON_AHEAD = timedelta(days=366)
# A series is expanded this much past the horizon too, to learn when the horizon reaches
# its next occurrence; one with none that soon is looked at again after this long.
LOOKAHEAD = timedelta(days=31)
REFRESH_BATCH = 50  # series re-expanded per write, so a refresh holds the writer briefly

LOCAL_FORMAT = "%Y-%m-%dT%H:%M"
def parse_local(text: str) -> datetime:
    """A stored local start (``LOCAL_FORMAT`` only); ValueError for anything else."""
    if len(text) != 16 or text[10] != "T":
        raise ValueError(f"not a stored local time: {text!r}")
    return datetime.fromisoformat(text)


def _event(row: Row) -> Event:
    return Event(
        id=row["id"],
        group_id=row["group_id"],
        title=row["title"],
        description=row["description"],
        starts_at=parse_local(row["starts_at"]),
        duration_minutes=row["duration_minutes"],
        timezone=row["timezone"],
        rrule=row["rrule"],
        format=Format(row["format"]),
        place=row["place"],
        address=row["address"],
        online_url=row["online_url"],
        capacity=row["capacity"],
        cancelled=bool(row["cancelled"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _change(row: Row) -> OccurrenceChange:
    return OccurrenceChange(
        original_start=parse_local(row["original_start"]),
        cancelled=bool(row["cancelled"]),
        starts_at=parse_local(row["starts_at"]) if row["starts_at"] else None,
        duration_minutes=row["duration_minutes"],
    )


def _draft_values(draft: EventDraft) -> tuple:
    return (
        draft.title, draft.description, draft.starts_at.strftime(LOCAL_FORMAT),
        draft.duration_minutes, draft.timezone, draft.rrule, draft.format,
        draft.place, draft.address, draft.online_url, draft.capacity,
    )


@dataclass(frozen=True, slots=True)
class Expansion:
    """A series' occurrence rows over the horizon, and when rolling it forward changes them."""

    rows: list[tuple[str, str, str, int]]  # (original_start, starts_utc, ends_utc, cancelled)
    due: str | None  # events.horizon_due: None when no refresh changes them


def expansion(series: Event | EventDraft, cancelled: bool, changes: list[OccurrenceChange],
              now: datetime) -> Expansion:
    """The occurrences of a series to store at ``now``, and until when they stay right.

    They change when the first occurrence past the horizon comes into it, or the first
    one in it falls out behind; one-offs and cancelled series are never refreshed.
    """
    if cancelled:
        return Expansion([], None)
    window_end = now + HORIZON_AHEAD
    found = expand(
        event_id=0,
        starts_at=series.starts_at,
        duration_minutes=series.duration_minutes,
        timezone=series.timezone,
        rrule=series.rrule,
        changes=changes,
        window_start=now - HORIZON_PAST,
        window_end=window_end + LOOKAHEAD,
        include_cancelled=True,
    )
    kept = [o for o in found if o.start < window_end]
    rows = [(o.key, stamp(o.start), stamp(o.end), int(o.cancelled)) for o in kept]
    if series.rrule is None:
        return Expansion(rows, None)
    # Reckoned in UTC: a day added in the series' zone may be 23 or 25 hours long.
    beyond = found[len(kept)].start if len(found) > len(kept) else window_end + LOOKAHEAD
    due = beyond.astimezone(UTC) - HORIZON_AHEAD
    if kept:
        due = min(due, kept[0].start.astimezone(UTC) + HORIZON_PAST)
    return Expansion(rows, stamp(due))


async def insert_occurrences(conn: Writing,
                             expanded: list[tuple[int, int, Expansion]]) -> None:
    """Store the rows of (event id, group id, expansion) triples, in one trip."""
    await conn.executemany(
        "INSERT INTO occurrences (event_id, group_id, original_start, starts_utc, ends_utc,"
        " cancelled) VALUES (?, ?, ?, ?, ?, ?)",
        [(event_id, group_id, *row) for event_id, group_id, found in expanded
         for row in found.rows],
    )


async def _materialise(conn: Writing, event_ids: list[int], now: datetime) -> None:
    """Rewrite the expanded occurrences of these series over the horizon."""
    marks = ",".join("?" * len(event_ids))
    cursor = await conn.execute(f"SELECT * FROM events WHERE id IN ({marks})", event_ids)
    series = [_event(row) for row in await cursor.fetchall()]
    cursor = await conn.execute(
        f"SELECT * FROM event_exceptions WHERE event_id IN ({marks})", event_ids
    )
    changes: dict[int, list[OccurrenceChange]] = {event.id: [] for event in series}
    for row in await cursor.fetchall():
        changes[row["event_id"]].append(_change(row))
    expanded = [(event.id, event.group_id,
                 expansion(event, event.cancelled, changes[event.id], now)) for event in series]
    await conn.execute(f"DELETE FROM occurrences WHERE event_id IN ({marks})", event_ids)
    await insert_occurrences(conn, expanded)
    await conn.executemany(
        "UPDATE events SET horizon_due = ? WHERE id = ?",
        [(found.due, event_id) for event_id, _, found in expanded],
    )


async def create_event(db: Database, group_id: int, draft: EventDraft) -> int:
    now = datetime.now(UTC)
    found = expansion(draft, False, [], now)
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "INSERT INTO events (title, description, starts_at, duration_minutes, timezone,"
            " rrule, format, place, address, online_url, capacity, group_id, horizon_due,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " RETURNING id", _draft_values(draft) + (group_id, found.due, stamp(now), stamp(now)),
        )
        event_id = (await cursor.fetchone())[0]
        await insert_occurrences(conn, [(event_id, group_id, found)])
        await record_change(conn, "event", event_id)
    return event_id


async def update_event(db: Database, event_id: int, draft: EventDraft) -> None:
    """Edit the series; a larger capacity seats people from the waitlist. Those going or
    waiting are told of a new time or place."""
    async with db.transaction() as conn:
        plan, answered = await meeting_plan(conn, event_id), await answers(conn, event_id)
        await conn.execute(
            "UPDATE events SET title = ?, description = ?, starts_at = ?,"
            " duration_minutes = ?, timezone = ?, rrule = ?, format = ?, place = ?,"
            " address = ?, online_url = ?, capacity = ?, updated_at = ? WHERE id = ?",
            _draft_values(draft) + (timestamp(), event_id),
        )
        await _materialise(conn, [event_id], datetime.now(UTC))
        await record_change(conn, "event", event_id)
        cursor = await conn.execute(
            "SELECT DISTINCT occurrence FROM rsvps WHERE event_id = ? AND status = 'waitlist'",
            (event_id,),
        )
        for (occurrence,) in await cursor.fetchall():
            await fill_from_waitlist(conn, event_id, occurrence)
        if await meeting_plan(conn, event_id) != plan:
            await record_meeting_changed(conn, event_id, "edited", answered)


async def set_cancelled(db: Database, event_id: int, cancelled: bool) -> None:
    """Cancel (or reinstate) the whole series; a cancellation is told to those going or
    waiting."""
    async with db.transaction() as conn:
        plan, answered = await meeting_plan(conn, event_id), await answers(conn, event_id)
        await conn.execute(
            "UPDATE events SET cancelled = ?, updated_at = ? WHERE id = ?",
            (int(cancelled), timestamp(), event_id),
        )
        await _materialise(conn, [event_id], datetime.now(UTC))
        await record_change(conn, "event", event_id)
        if cancelled and await meeting_plan(conn, event_id) != plan:
            await record_meeting_changed(conn, event_id, "series_cancelled", answered)


async def delete_event(db: Database, event_id: int) -> None:
    async with db.transaction() as conn:
        await conn.execute("DELETE FROM events WHERE id = ?", (event_id,))
        await record_change(conn, "event", event_id)


async def change_occurrence(db: Database, event_id: int, change: OccurrenceChange) -> None:
    """Cancel or move one slot of a series, leaving the rest untouched; those going or
    waiting are told."""
    key = occurrence_key(change.original_start)
    async with db.transaction() as conn:
        answered = await answers(conn, event_id, key)
        await conn.execute(
            "INSERT INTO event_exceptions (event_id, original_start, cancelled, starts_at,"
            " duration_minutes) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (event_id, original_start) DO UPDATE SET"
            " cancelled = excluded.cancelled, starts_at = excluded.starts_at,"
            " duration_minutes = excluded.duration_minutes",
            (
                event_id,
                key,
                int(change.cancelled),
                change.starts_at.strftime(LOCAL_FORMAT) if change.starts_at else None,
                change.duration_minutes,
            ),
        )
        await _slot_changed(conn, event_id)
        await record_meeting_changed(conn, event_id,
                                     "cancelled" if change.cancelled else "moved", answered)


async def restore_occurrence(db: Database, event_id: int, original_start: datetime) -> None:
    key = occurrence_key(original_start)
    async with db.transaction() as conn:
        answered = await answers(conn, event_id, key)
        cursor = await conn.execute(
            "DELETE FROM event_exceptions WHERE event_id = ? AND original_start = ?",
            (event_id, key),
        )
        await _slot_changed(conn, event_id)
        if cursor.rowcount == 1:
            await record_meeting_changed(conn, event_id, "restored", answered)


async def _slot_changed(conn: Writing, event_id: int) -> None:
    """A changed occurrence is a change of the series (its ``updated`` moves)."""
    await conn.execute("UPDATE events SET updated_at = ? WHERE id = ?", (timestamp(), event_id))
    await _materialise(conn, [event_id], datetime.now(UTC))
    await record_change(conn, "event", event_id)


async def refresh_occurrences(db: Database) -> None:
    """Roll the expanded horizon forward over the series whose occurrences it changes."""
    now = datetime.now(UTC)
    rows = await db.fetchall("SELECT id FROM events WHERE horizon_due <= ?", (stamp(now),))
    due = [row["id"] for row in rows]
    for first in range(0, len(due), REFRESH_BATCH):
        async with db.transaction() as conn:
            await _materialise(conn, due[first:first + REFRESH_BATCH], now)


async def get_event(db: Database, event_id: int) -> Event | None:
    row = await db.fetchone("SELECT * FROM events WHERE id = ?", (event_id,))
    return None if row is None else _event(row)


async def events_of_group(db: Database, group_id: int) -> list[Event]:
    rows = await db.fetchall(
        "SELECT * FROM events WHERE group_id = ? ORDER BY starts_at", (group_id,)
    )
    return [_event(r) for r in rows]


async def changes_of(db: Database, event_id: int) -> list[OccurrenceChange]:
    rows = await db.fetchall(
        "SELECT * FROM event_exceptions WHERE event_id = ? ORDER BY original_start",
        (event_id,),
    )
    return [_change(r) for r in rows]


async def occurrences_of(
    db: Database, event: Event, start: datetime, end: datetime, include_cancelled: bool = False
) -> list[Occurrence]:
    if event.cancelled and not include_cancelled:
        return []
    return expand(
        event_id=event.id,
        starts_at=event.starts_at,
        duration_minutes=event.duration_minutes,
        timezone=event.timezone,
        rrule=event.rrule,
        changes=await changes_of(db, event.id),
        window_start=start,
        window_end=end,
        include_cancelled=include_cancelled,
    )


# Not a meeting an admin hid (a peer's, by its id).
LISTED_EVENT = "(e.ap_id IS NULL OR e.ap_id NOT IN (SELECT ap_id FROM hidden_listings))"


@dataclass(frozen=True, slots=True)
class UpcomingMeeting:
    event: Event
    original_start: str
    starts_utc: str
    ends_utc: str
    group_slug: str
    group_name: str
    origin: str | None = None  # a federated meeting's node, its id and its page there
    ap_id: str | None = None
    url: str | None = None
    moved: bool = False  # this one occurrence, from its usual time
    cancelled: bool = False


# The columns ``upcoming_meeting`` reads: occurrences o, events e, groups g, and the
# occurrence's change x (LEFT JOIN MOVED_JOIN).
MEETING_COLUMNS = ("e.*, o.original_start, o.starts_utc, o.ends_utc, o.cancelled AS"
                   " occurrence_cancelled, x.event_id IS NOT NULL AS occurrence_changed,"
                   " g.slug AS group_slug, g.name AS group_name, g.origin")
MOVED_JOIN = ("LEFT JOIN event_exceptions x ON x.event_id = o.event_id"
              " AND x.original_start = o.original_start")


def upcoming_meeting(r: Row) -> UpcomingMeeting:
    cancelled = bool(r["occurrence_cancelled"])
    return UpcomingMeeting(_event(r), r["original_start"], r["starts_utc"], r["ends_utc"],
                           r["group_slug"], r["group_name"], r["origin"], r["ap_id"], r["url"],
                           moved=bool(r["occurrence_changed"]) and not cancelled,
                           cancelled=cancelled)


async def upcoming_meetings(
    db: Database,
    *,
    group_id: int | None = None,
    listed_only: bool = True,
    federated: bool = False,
    with_cancelled: bool = False,
    limit: int = 10,
) -> list[UpcomingMeeting]:
    """The next occurrences from the expanded table, soonest first; none an admin hid.

    ``listed_only`` keeps to this node's public groups (home page, feeds), and with
    ``federated`` its peers' listed groups too; a group page asks for its own meetings
    whatever its visibility, ``with_cancelled`` to show its cancelled ones, marked.
    """
    now = datetime.now(UTC)
    # One not ended began within the longest a meeting lasts (a day: the forms and
    # federation both cap it), so the time index is walked from there.
    where = ["o.starts_utc >= ?", "o.ends_utc >= ?", LISTED_EVENT]
    params: list[object] = [stamp(now - timedelta(days=1)), stamp(now)]
    if not with_cancelled:
        where.append("o.cancelled = 0")
    if group_id is not None:
        where.append("o.group_id = ?")
        params.append(group_id)
    if listed_only:
        where.append(f"g.visibility = 'public' AND {LISTED}")
        if not federated:
            where.append("g.origin IS NULL")
    rows = await db.fetchall(
        # CROSS JOIN: occurrences first, in time order (a few rows to the LIMIT); left to
        # choose, the planner reads every listed group's and sorts them (166 → 2 ms).
        f"SELECT {MEETING_COLUMNS} FROM occurrences o CROSS JOIN events e ON e.id = o.event_id"
        f" CROSS JOIN groups g ON g.id = o.group_id {MOVED_JOIN} WHERE " + " AND ".join(where)
        + " ORDER BY o.starts_utc LIMIT ?",
        [*params, limit],
    )
    return [upcoming_meeting(r) for r in rows]


@dataclass(frozen=True, slots=True)
class RemoteMeeting:
    """A peer's meeting as this node lists it: its id and page on its origin, and when
    the origin last confirmed the copy."""

    event: Event
    group_slug: str
    ap_id: str
    url: str
    confirmed_at: str


async def remote_meeting(db: Database, event_id: int) -> RemoteMeeting | None:
    """The federated meeting ``event_id``; None if there is none or an admin hid it or its
    group."""
    row = await db.fetchone(
        "SELECT e.*, g.slug AS group_slug, coalesce(e.url, e.ap_id) AS original,"
        " coalesce(e.confirmed_at, e.updated_at) AS confirmed FROM events e"
        " JOIN groups g ON g.id = e.group_id WHERE e.id = ? AND g.origin IS NOT NULL"
        f" AND g.visibility = 'public' AND {LISTED} AND {LISTED_EVENT}", (event_id,))
    if row is None:
        return None
    return RemoteMeeting(_event(row), row["group_slug"], row["ap_id"], row["original"],
                         row["confirmed"])


# RSVPs ---------------------------------------------------------------------

async def rsvp_yes(db: Database, event_id: int, occurrence: str, account_id: int) -> RsvpStatus:
    async with db.transaction() as conn:
        return await take_rsvp(conn, event_id, occurrence, account_id)


async def rsvp_no(db: Database, event_id: int, occurrence: str, account_id: int) -> None:
    async with db.transaction() as conn:
        await release_rsvp(conn, event_id, occurrence, account_id)


async def rsvp_status(
    db: Database, event_id: int, occurrence: str, account_id: int
) -> RsvpStatus | None:
    value = await db.fetchval(
        "SELECT status FROM rsvps WHERE event_id = ? AND occurrence = ? AND account_id = ?",
        (event_id, occurrence, account_id),
    )
    return None if value is None else RsvpStatus(value)


async def rsvp_counts(db: Database, event_id: int, occurrence: str) -> dict[RsvpStatus, int]:
    rows = await db.fetchall(
        "SELECT status, count(*) FROM rsvps WHERE event_id = ? AND occurrence = ?"
        " GROUP BY status",
        (event_id, occurrence),
    )
    counts = {status: 0 for status in RsvpStatus}
    counts.update({RsvpStatus(r[0]): r[1] for r in rows})
    return counts


async def rsvp_list(db: Database, event_id: int, occurrence: str) -> list[tuple[str, RsvpStatus]]:
    """Display names and statuses, in the order people answered (facilitators)."""
    rows = await db.fetchall(
        "SELECT a.display_name, r.status FROM rsvps r JOIN accounts a ON a.id = r.account_id"
        " WHERE r.event_id = ? AND r.occurrence = ? ORDER BY r.status = 'waitlist', r.seq",
        (event_id, occurrence),
    )
    return [(r[0], RsvpStatus(r[1])) for r in rows]


@dataclass(frozen=True, slots=True)
class MeetingSeries:
    """A series and its changed slots, as a calendar carries them; a federated one with
    its id and page on its origin."""

    event: Event
    changes: list[OccurrenceChange]
    ap_id: str | None = None
    url: str | None = None


async def series_of_group(db: Database, group_id: int) -> list[MeetingSeries]:
    """Every meeting series of one group (its calendar), but those an admin hid."""
    return await _series(db, "g.id = ?", [group_id])


async def series_of_event(db: Database, event_id: int) -> MeetingSeries | None:
    """One meeting series (its own calendar), unless an admin hid it."""
    found = await _series(db, "e.id = ?", [event_id])
    return found[0] if found else None


async def series_of_groups(db: Database, group_ids: list[int],
                           limit: int | None = None) -> list[MeetingSeries]:
    """The meeting series of these groups (a saved search's calendar), but those hidden;
    with ``limit``, that many of those meeting soonest."""
    return await _series(db, f"g.id {db.dialect.among}", [db.dialect.listed(group_ids)],
                         limit)


async def listed_series(db: Database, limit: int | None = None) -> list[MeetingSeries]:
    """The meeting series of the listed public groups, this node's and its peers'; with
    ``limit``, that many of those meeting soonest."""
    return await _series(db, f"g.visibility = 'public' AND {LISTED}", [], limit)


# How many upcoming occurrences, in time order, are read to find the series meeting
# soonest: a bounded walk of the time index, however many series there are.
SOONEST_WALK = 20_000
RECENT = timedelta(days=30)  # a series that met this recently still counts as current


async def _series(db: Database, condition: str, params: list[object],
                  limit: int | None = None) -> list[MeetingSeries]:
    scope = f"JOIN groups g ON g.id = e.group_id WHERE {condition} AND {LISTED_EVENT}"
    if limit is not None:
        # ...and a series cancelled lately, which has no occurrences left to show it.
        recent = stamp(datetime.now(UTC) - RECENT)
        scope += (
            " AND (e.cancelled = 1 AND e.updated_at >= ? OR e.id IN (SELECT event_id FROM"
            " (SELECT o.event_id, o.starts_utc FROM occurrences o JOIN events e"
            f" ON e.id = o.event_id JOIN groups g ON g.id = e.group_id WHERE o.starts_utc >= ?"
            f" AND {condition} AND {LISTED_EVENT} ORDER BY o.starts_utc LIMIT {SOONEST_WALK})"
            " AS soonest GROUP BY event_id ORDER BY min(starts_utc) LIMIT ?))")
        params = [*params, recent, recent, *params, limit]
    rows = await db.fetchall(
        f"SELECT e.* FROM events e {scope} ORDER BY e.starts_at, e.id", params)
    changes = await db.fetchall(
        f"SELECT x.* FROM event_exceptions x JOIN events e ON e.id = x.event_id {scope}"
        " ORDER BY x.original_start", params)
    by_event: dict[int, list[OccurrenceChange]] = {r["id"]: [] for r in rows}
    for row in changes:  # a series created between the two reads is not listed
        if row["event_id"] in by_event:
            by_event[row["event_id"]].append(_change(row))
    return [MeetingSeries(_event(r), by_event[r["id"]], r["ap_id"], r["url"]) for r in rows]
