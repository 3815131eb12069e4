"""Expanding a meeting series (RFC 5545 RRULE in a time zone) into occurrences.

Slots are generated in local wall time, so a 19:00 meeting stays at 19:00
across daylight-saving changes, as RFC 5545 specifies for DTSTART;TZID.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr

from node.domain import Occurrence, OccurrenceChange

MAX_OCCURRENCES = 1000


def series_slots(
    starts_at: datetime, rrule: str | None, after: datetime, before: datetime
) -> list[datetime]:
    """Naive local starts of the series between two naive local bounds (inclusive)."""
    if rrule is None:
        return [starts_at] if after <= starts_at <= before else []
    rule = rrulestr(f"RRULE:{rrule}", dtstart=starts_at, forceset=False)
    slots = []
    for slot in rule.xafter(after, count=MAX_OCCURRENCES, inc=True):
        if slot > before:
            break
        slots.append(slot)
    return slots


def is_series_slot(starts_at: datetime, rrule: str | None, slot: datetime) -> bool:
    return slot in series_slots(starts_at, rrule, slot, slot)


def localize(naive: datetime, tz: ZoneInfo) -> datetime:
    """Attach a zone to local wall time; a time skipped by DST moves forward."""
    aware = naive.replace(tzinfo=tz)
    return aware.astimezone(ZoneInfo("UTC")).astimezone(tz)


def expand(
    *,
    event_id: int,
    starts_at: datetime,
    duration_minutes: int,
    timezone: str,
    rrule: str | None,
    changes: Iterable[OccurrenceChange],
    window_start: datetime,
    window_end: datetime,
    include_cancelled: bool = False,
) -> list[Occurrence]:
    """Occurrences whose start falls in [window_start, window_end), in order.

    Window bounds are aware datetimes. Cancelled slots are left out unless
    asked for; moved slots appear at their new time.
    """
    tz = ZoneInfo(timezone)
    by_slot = {change.original_start: change for change in changes}
    margin = timedelta(days=1)
    local_after = window_start.astimezone(tz).replace(tzinfo=None) - margin
    local_before = window_end.astimezone(tz).replace(tzinfo=None) + margin
    length = timedelta(minutes=duration_minutes)
    found: list[Occurrence] = []
    for slot in series_slots(starts_at, rrule, local_after, local_before):
        if slot in by_slot:
            continue
        start = localize(slot, tz)
        if window_start <= start < window_end:
            found.append(Occurrence(event_id, slot, start, start + length))
    for slot, change in by_slot.items():
        if change.cancelled:
            start = localize(slot, tz)
            if include_cancelled and window_start <= start < window_end:
                found.append(Occurrence(event_id, slot, start, start + length, cancelled=True))
        elif change.starts_at is not None:
            start = localize(change.starts_at, tz)
            if window_start <= start < window_end:
                moved_length = timedelta(minutes=change.duration_minutes or duration_minutes)
                found.append(Occurrence(event_id, slot, start, start + moved_length, moved=True))
    found.sort(key=lambda o: (o.start, o.event_id))
    return found[:MAX_OCCURRENCES]
