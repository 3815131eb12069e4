"""Expanding a series: node.recurrence against dateutil.rrule, across clock changes."""
from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from dateutil.rrule import MONTHLY, WEEKLY, rrule, weekday
from hypothesis import given, settings
from hypothesis import strategies as st

from node.domain import OccurrenceChange
from node.recurrence import expand, is_series_slot

ZONES = ("Europe/London", "America/New_York", "Australia/Sydney")
DAY_CODES = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


def clock_changes(zone: str, year: int) -> list[date]:
    """Days on which the zone's UTC offset changes (found by scanning the year)."""
    tz = ZoneInfo(zone)
    days = [date(year, 1, 1) + timedelta(days=n) for n in range(366)]
    offsets = [datetime.combine(d, time(12), tz).utcoffset() for d in days]
    return [days[n] for n in range(1, len(days)) if offsets[n] != offsets[n - 1]]


TRANSITIONS = [(zone, day) for zone in ZONES for year in (2025, 2026, 2027)
               for day in clock_changes(zone, year)]


def utc(local: datetime, zone: str) -> datetime:
    """Wall time in a zone as a UTC instant (a skipped time uses the offset before)."""
    return local.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)


@st.composite
def series(draw):
    """A zone, a rule (as RRULE text and as a dateutil rrule) and a window across a clock change."""
    zone, change_day = draw(st.sampled_from(TRANSITIONS))
    start_day = change_day - timedelta(days=draw(st.integers(0, 240)))
    start = datetime.combine(start_day, time(draw(st.integers(0, 23)),
                                             draw(st.sampled_from((0, 15, 30, 45)))))
    day = start.weekday()
    kind = draw(st.sampled_from(("weekly", "biweekly", "monthly_weekday")))
    if kind == "monthly_weekday":
        nth = draw(st.sampled_from((1, 2, 3, 4, -1)))
        text = f"FREQ=MONTHLY;BYDAY={nth}{DAY_CODES[day]}"
        reference = rrule(MONTHLY, byweekday=weekday(day, nth), dtstart=start)
    else:
        interval = 2 if kind == "biweekly" else 1
        text = f"FREQ=WEEKLY;INTERVAL={interval};BYDAY={DAY_CODES[day]}"
        reference = rrule(WEEKLY, interval=interval, byweekday=day, dtstart=start)
    before = timedelta(hours=draw(st.integers(1, 24 * 90)))
    after = timedelta(hours=draw(st.integers(1, 24 * 90)))
    middle = datetime.combine(change_day, time(12), ZoneInfo(zone)).astimezone(UTC)
    return zone, start, text, reference, middle - before, middle + after


@given(data=st.data(), case=series(), duration=st.integers(15, 240),
       include_cancelled=st.booleans())
@settings(max_examples=300, deadline=None)
def test_expand_matches_dateutil_with_cancelled_and_moved_slots(
    data, case, duration, include_cancelled
):
    zone, start, text, reference, window_start, window_end = case
    # Every slot that could land in the window, straight from dateutil, in wall time.
    near = reference.between(
        window_start.astimezone(ZoneInfo(zone)).replace(tzinfo=None) - timedelta(days=10),
        window_end.astimezone(ZoneInfo(zone)).replace(tzinfo=None) + timedelta(days=10),
        inc=True,
    )
    changed = data.draw(st.lists(st.sampled_from(near), unique=True) if near else st.just([]))
    changes: list[OccurrenceChange] = []
    for slot in changed:
        if data.draw(st.booleans()):
            changes.append(OccurrenceChange(slot, cancelled=True))
        else:
            shift = timedelta(minutes=data.draw(st.integers(-5 * 24 * 60, 5 * 24 * 60)) // 15 * 15)
            new_duration = data.draw(st.none() | st.integers(15, 240))
            changes.append(OccurrenceChange(slot, cancelled=False, starts_at=slot + shift,
                                            duration_minutes=new_duration))
    by_slot = {c.original_start: c for c in changes}

    expected = set()
    for slot in near:
        change = by_slot.get(slot)
        if change is None:
            begins, length, flags = utc(slot, zone), duration, (False, False)
        elif change.cancelled:
            if not include_cancelled:
                continue
            begins, length, flags = utc(slot, zone), duration, (False, True)
        else:
            begins = utc(change.starts_at, zone)
            length, flags = change.duration_minutes or duration, (True, False)
        if window_start <= begins < window_end:
            expected.add((slot, begins, length, flags))

    found = expand(event_id=1, starts_at=start, duration_minutes=duration, timezone=zone,
                   rrule=text, changes=changes, window_start=window_start,
                   window_end=window_end, include_cancelled=include_cancelled)

    assert [o.start for o in found] == sorted(o.start for o in found)
    assert {(o.original_start, o.start.astimezone(UTC),
             round((o.end - o.start).total_seconds() / 60), (o.moved, o.cancelled))
            for o in found} == expected
    assert len(found) == len(expected)
    for o in found:
        assert o.start.tzinfo == ZoneInfo(zone)
        if not o.moved and utc(o.original_start, zone).astimezone(ZoneInfo(zone)).replace(
            tzinfo=None
        ) == o.original_start:
            # An unmoved meeting keeps its wall-clock time, whatever the offset.
            assert o.start.replace(tzinfo=None) == o.original_start


@given(case=series(), offset=st.integers(-3 * 24 * 60, 3 * 24 * 60))
@settings(max_examples=200, deadline=None)
def test_is_series_slot_agrees_with_dateutil(case, offset):
    _, start, text, reference, _, _ = case
    slot = start + timedelta(days=70) + timedelta(minutes=offset // 15 * 15)
    assert is_series_slot(start, text, slot) == (slot in reference.between(slot, slot, inc=True))


def weekly_starts(zone: str, first: datetime, until: datetime) -> list[datetime]:
    return [o.start for o in expand(
        event_id=1, starts_at=first, duration_minutes=90, timezone=zone,
        rrule="FREQ=WEEKLY;BYDAY=" + DAY_CODES[first.weekday()], changes=[],
        window_start=utc(first, zone), window_end=utc(until, zone))]


def test_a_weekly_19_00_meeting_stays_at_19_00_in_london_through_both_changes():
    starts = weekly_starts("Europe/London", datetime(2026, 3, 3, 19), datetime(2026, 11, 30))
    assert len(starts) == 39
    assert {(s.hour, s.minute) for s in starts} == {(19, 0)}
    in_utc = {s.date(): s.astimezone(UTC).hour for s in starts}
    assert in_utc[date(2026, 3, 24)] == 19  # GMT, before the last Sunday of March
    assert in_utc[date(2026, 3, 31)] == 18  # BST
    assert in_utc[date(2026, 10, 20)] == 18
    assert in_utc[date(2026, 10, 27)] == 19  # GMT again after the last Sunday of October


def test_a_weekly_19_00_meeting_follows_new_york_and_sydney_clocks():
    new_york = weekly_starts("America/New_York", datetime(2026, 3, 3, 19), datetime(2026, 3, 20))
    assert [(s.day, s.hour, s.astimezone(UTC).hour) for s in new_york] == [
        (3, 19, 0), (10, 19, 23), (17, 19, 23)]  # EST until 8 March, then EDT
    sydney = weekly_starts("Australia/Sydney", datetime(2026, 3, 24, 19), datetime(2026, 4, 20))
    assert [(s.day, s.hour, s.astimezone(UTC).hour) for s in sydney] == [
        (24, 19, 8), (31, 19, 8), (7, 19, 9), (14, 19, 9)]  # AEDT until 5 April, then AEST


def test_cancelled_and_moved_slots_leave_the_rest_of_the_series_alone():
    first = datetime(2026, 10, 6, 19)
    rule = "FREQ=WEEKLY;BYDAY=TU"
    changes = [OccurrenceChange(datetime(2026, 10, 13, 19), cancelled=True),
               OccurrenceChange(datetime(2026, 10, 27, 19), cancelled=False,
                                starts_at=datetime(2026, 10, 28, 18, 30), duration_minutes=60)]
    window = dict(window_start=utc(first, "Europe/London"),
                  window_end=utc(datetime(2026, 11, 11), "Europe/London"))
    found = expand(event_id=7, starts_at=first, duration_minutes=90, timezone="Europe/London",
                   rrule=rule, changes=changes, **window)
    assert [(o.key, o.start.strftime("%d %H:%M"), o.moved) for o in found] == [
        ("2026-10-06T19:00", "06 19:00", False),
        ("2026-10-20T19:00", "20 19:00", False),
        ("2026-10-27T19:00", "28 18:30", True),
        ("2026-11-03T19:00", "03 19:00", False),
        ("2026-11-10T19:00", "10 19:00", False),
    ]
    assert found[2].end - found[2].start == timedelta(minutes=60)
    with_cancelled = expand(event_id=7, starts_at=first, duration_minutes=90,
                            timezone="Europe/London", rrule=rule, changes=changes,
                            include_cancelled=True, **window)
    assert [o.key for o in with_cancelled if o.cancelled] == ["2026-10-13T19:00"]
    assert len(with_cancelled) == len(found) + 1


def test_a_one_off_meeting_is_one_occurrence_or_none():
    start = datetime(2026, 3, 29, 10)
    window = dict(window_start=datetime(2026, 3, 1, tzinfo=UTC),
                  window_end=datetime(2026, 4, 1, tzinfo=UTC))
    found = expand(event_id=1, starts_at=start, duration_minutes=60, timezone="Europe/London",
                   rrule=None, changes=[], **window)
    assert [(o.start.hour, o.start.astimezone(UTC).hour) for o in found] == [(10, 9)]
    assert expand(event_id=1, starts_at=start, duration_minutes=60, timezone="Europe/London",
                  rrule=None, changes=[OccurrenceChange(start, cancelled=True)], **window) == []
