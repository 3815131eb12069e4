"""The node's calendar: occurrences of the listed meetings the directory's filters match."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from math import isqrt

from node.db import Database, parse_stamp, stamp
from node.domain import Account, DirectoryQuery
from node.storage.events import (
    LISTED_EVENT,
    MEETING_COLUMNS,
    MOVED_JOIN,
    UpcomingMeeting,
    upcoming_meeting,
)
from node.storage.groups import (
    LISTED,
    LISTED_OCCURRENCE,
    directory_filter,
    search_words,
)

# A day in any zone lies within this of the same UTC day (UTC-12 to UTC+14).
ZONE_REACH = timedelta(days=1)
# Up to this many matching groups, reading each one's occurrences beats walking the
# window's occurrences in time order (measured at 10,000 groups, 100,000 meetings).
FEW_GROUPS = 500
# Read a day at a time, a walk reads about (per day) × listed ÷ matching groups rows a day,
# the other way one seek a matching group: they cross near matching² = FEW_BY_DAY × (per
# day) × listed (measured at 1,000 groups: about 150; at 10,000: about 450).
FEW_BY_DAY = 4


def _groups(db: Database, query: DirectoryQuery, viewer: Account | None,
            walking: bool = False) -> tuple[list[str], list[object]]:
    """The directory's conditions on ``g`` (its dates are the calendar's window instead),
    its free text as one more."""
    where, params = directory_filter(replace(query, date_from="", date_to=""), viewer,
                                     walking)
    words = search_words(query.q)
    if words:
        where.append(f"g.id IN (SELECT rowid FROM {db.dialect.matches} f)")
        params.append(db.dialect.terms(words))
    return where, params


@dataclass(frozen=True, slots=True)
class Scope:
    """SQL for occurrences starting in [?, ?) of the groups the search keeps, but the
    meetings an admin hid, soonest first, at most ?: ``part``, to be run once or once a
    day after ``head`` (a WITH clause, or nothing); the parameters of each but those three.
    """

    head: str
    head_params: list[object]
    part: str
    part_params: list[object]

    def run(self, windows: list[tuple[datetime, datetime]], limit: int) -> tuple[str, list]:
        """One statement for the windows: at most ``limit`` occurrences from each."""
        values = list(self.head_params)
        for start, end in windows:
            values += [*self.part_params, stamp(start), stamp(end), limit]
        parts = " UNION ALL ".join([f"SELECT * FROM ({self.part}) AS w"] * len(windows))
        return f"{self.head} {parts}", values


async def _scope(db: Database, query: DirectoryQuery, viewer: Account | None,
                 few_groups: int) -> Scope:
    """Up to ``few_groups`` groups: theirs are found once, then each one's meetings by the
    group index. More: the occurrences are walked in time order, each row's group checked.

    Ties go by group id, the time index's own order: a busy hour's first few are read
    without sorting all of its meetings (``in_order`` sorts them for the page)."""
    where, params = _groups(db, query, viewer)
    condition = " AND ".join(where)
    few = await db.fetchval(
        f"SELECT count(*) FROM (SELECT 1 FROM groups g WHERE {condition} LIMIT ?) AS m",
        [*params, few_groups + 1]) <= few_groups
    meetings = (f"JOIN events e ON e.id = o.event_id {MOVED_JOIN} WHERE {LISTED_EVENT}"
                f" AND {LISTED_OCCURRENCE}")
    window = "o.starts_utc >= ? AND o.starts_utc < ? ORDER BY o.starts_utc, o.group_id LIMIT ?"
    if few:
        return Scope(
            f"WITH chosen(id) AS MATERIALIZED (SELECT g.id FROM groups g WHERE {condition})",
            params,
            f"SELECT {MEETING_COLUMNS} FROM chosen c CROSS JOIN occurrences o INDEXED BY"
            " occurrences_group ON o.group_id = c.id CROSS JOIN groups g ON g.id = c.id"
            f" {meetings} AND {window}", [])
    where, params = _groups(db, query, viewer, walking=True)
    return Scope("", [], f"SELECT {MEETING_COLUMNS} FROM occurrences o INDEXED BY"
                 " occurrences_time CROSS JOIN groups g ON g.id = o.group_id"
                 f" {meetings} AND {' AND '.join(where)} AND {window}", params)


async def meetings_between(
    db: Database, query: DirectoryQuery, viewer: Account | None,
    start: datetime, end: datetime, limit: int,
) -> list[UpcomingMeeting]:
    """The first ``limit`` occurrences (cancelled ones marked) starting in [start, end)."""
    scope = await _scope(db, query, viewer, FEW_GROUPS)
    rows = await db.fetchall(*scope.run([(start, end)], limit))
    return in_order([upcoming_meeting(r) for r in rows])


def in_order(meetings: list[UpcomingMeeting]) -> list[UpcomingMeeting]:
    """Soonest first; at the same time, by group name."""
    return sorted(meetings, key=lambda m: (m.starts_utc, m.group_name, m.event.id))


@dataclass(frozen=True, slots=True)
class MeetingDays:
    """Occurrences by the date they start on in their own zone; ``more``: days that hold
    more than were read."""

    days: dict[date, list[UpcomingMeeting]] = field(default_factory=dict)
    more: set[date] = field(default_factory=set)


def local_day(meeting: UpcomingMeeting) -> date:
    return parse_stamp(meeting.starts_utc).astimezone(meeting.event.tz).date()


async def meetings_by_day(
    db: Database, query: DirectoryQuery, viewer: Account | None,
    first: date, last: date, per_day: int,
) -> MeetingDays:
    """The occurrences of the days ``first`` to ``last``, at most ``per_day`` a day.

    One statement: a bounded read per UTC day, so a busy month costs ``per_day`` rows a
    day, not every meeting of the month. A day is in ``more`` when it had more to show,
    or when a UTC day it overlaps had more than was read.
    """
    listed = await db.kept(("listed groups",), lambda: db.fetchval(
        f"SELECT count(*) FROM groups g WHERE g.visibility = 'public' AND {LISTED}"))
    scope = await _scope(db, query, viewer, isqrt(FEW_BY_DAY * (per_day + 1) * listed))
    starts = [datetime.combine(first - ZONE_REACH + timedelta(days=n), time(), UTC)
              for n in range((last - first).days + 1 + 2 * ZONE_REACH.days)]
    rows = await db.fetchall(*scope.run([(s, s + timedelta(days=1)) for s in starts],
                                        per_day + 1))
    read: dict[date, int] = defaultdict(int)
    days: dict[date, list[UpcomingMeeting]] = defaultdict(list)
    for row in rows:
        meeting = upcoming_meeting(row)
        read[parse_stamp(meeting.starts_utc).date()] += 1
        day = local_day(meeting)
        if first <= day <= last:
            days[day].append(meeting)
    more = {day for day, count in read.items() if count > per_day and first <= day <= last}
    more |= {day for day, found in days.items() if len(found) > per_day}
    return MeetingDays({day: in_order(found)[:per_day] for day, found in days.items()}, more)


async def matching_group_ids(db: Database, query: DirectoryQuery) -> set[int]:
    """The public listed groups a saved search (a subscription) matches."""
    where, params = _groups(db, query, None)
    rows = await db.fetchall(f"SELECT g.id FROM groups g WHERE {' AND '.join(where)}", params)
    return {row[0] for row in rows}
