"""Federated listings arrive equal: every field that federates, field by field.

Hypothesis writes group listings and meeting series (with cancelled and moved
occurrences) as a facilitator could. First each goes through the document a
node sends and the parser a peer reads it with; then a few go through two
real node processes, B publishing and A following, and A's stored copy, its
expanded occurrences and its calendar are compared with B's.
"""
from __future__ import annotations

import json
from contextlib import ExitStack
from dataclasses import asdict, fields
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import icalendar
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from federation.context import Federation
from federation.documents import Urls, event_object, group_actor
from federation.fetch import Fetcher
from federation.freshness import refresh_listings, retry_delay
from federation.keys import generate_key, public_pem
from federation.objects import parse_event, parse_group
from node.db import Database, stamp
from node.domain import (
    ACCESSIBILITY,
    Cost,
    Event,
    EventDraft,
    Format,
    Group,
    GroupDraft,
    JoinPolicy,
    OccurrenceChange,
    Visibility,
)
from node.storage import events, groups
from tests.helpers import draft as _draft
from tests.helpers import publish_listing, wait_for
from tests.test_federation import Node, node

PEM = public_pem(generate_key())
URLS = Urls("https://origin.example")

# Plain text as people type it: no markup characters, which remote text never keeps.
_ALPHABET = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp", "Co"),
                          exclude_characters="<>&\u00a0\u2028\u2029")


def _line(min_size: int, max_size: int) -> st.SearchStrategy[str]:
    return st.text(_ALPHABET, min_size=min_size, max_size=max_size).map(
        lambda t: " ".join(t.split())).filter(lambda t: len(t) >= min_size)


_paragraphs = st.lists(_line(1, 80), max_size=4).map("\n\n".join)
_tag = st.from_regex(r"[a-z0-9][a-z0-9-]{0,15}", fullmatch=True)
_tags = st.lists(_tag, max_size=12, unique=True).map(tuple)

group_drafts = st.builds(
    GroupDraft,
    name=_line(1, 120),
    summary=_line(1, 280),
    description=_paragraphs,
    agreements=_paragraphs,
    visibility=st.just(Visibility.PUBLIC),
    join_policy=st.sampled_from(JoinPolicy),
    format=st.sampled_from(Format),
    cost=st.sampled_from(Cost),
    area=_line(0, 120),
    address=_line(0, 300),
    contact=_line(0, 200),
    topics=_tags,
    languages=st.lists(st.sampled_from(["en", "de", "es", "fr", "pt-BR", "zh-Hant", "ar"]),
                       min_size=1, max_size=4, unique=True).map(tuple),
    accessibility=st.lists(st.sampled_from(sorted(ACCESSIBILITY)), unique=True).map(tuple),
    audiences=_tags,
)

RULES = [None, "FREQ=WEEKLY", "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU", "FREQ=MONTHLY;BYDAY=1SA",
         "FREQ=DAILY;COUNT=5", "FREQ=WEEKLY;UNTIL=20310101T000000"]
ZONES = ["Europe/London", "Europe/Berlin", "America/New_York", "Asia/Kolkata",
         "Australia/Lord_Howe", "UTC"]


@st.composite
def event_drafts(draw) -> EventDraft:
    place = draw(_line(0, 200))
    address = draw(_line(0, 300).filter(lambda a: not a or a != place))
    start = datetime.now(UTC).replace(tzinfo=None, second=0, microsecond=0) + timedelta(
        days=draw(st.integers(2, 300)), minutes=draw(st.integers(0, 1439)))
    return EventDraft(
        title=draw(_line(1, 120)), description=draw(_paragraphs),
        starts_at=start, duration_minutes=draw(st.integers(1, 24 * 60)),
        timezone=draw(st.sampled_from(ZONES)), rrule=draw(st.sampled_from(RULES)),
        format=draw(st.sampled_from(Format)), place=place, address=address,
        capacity=draw(st.none() | st.integers(1, 10000)))


@st.composite
def series_changes(draw, series: EventDraft) -> list[OccurrenceChange]:
    """Cancelled and moved occurrences of a recurring series (none for a one-off)."""
    if series.rrule is None:
        return []
    step = timedelta(days=7) if "WEEKLY" in series.rrule else timedelta(days=1)
    changes = []
    if draw(st.booleans()):
        changes.append(OccurrenceChange(series.starts_at, cancelled=True))
    if draw(st.booleans()) and "MONTHLY" not in series.rrule and "INTERVAL" not in series.rrule:
        moved = series.starts_at + step
        changes.append(OccurrenceChange(
            moved, cancelled=False, starts_at=moved + timedelta(hours=draw(st.integers(1, 5))),
            duration_minutes=draw(st.none() | st.integers(15, 240))))
    return changes


def _as_group(draft: GroupDraft) -> Group:
    return Group(id=1, slug="circle", invite_code=None, origin=None,
                 created_at="2026-01-01T00:00:00Z", updated_at="2026-01-02T00:00:00Z",
                 **{f.name: getattr(draft, f.name) for f in fields(GroupDraft)})


def _wire(document: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(document))


@settings(max_examples=150, deadline=None)
@given(group_drafts)
def test_a_group_listing_survives_its_document(draft: GroupDraft) -> None:
    username, received = parse_group(_wire(group_actor(URLS, _as_group(draft), PEM)))
    assert username == "circle"
    for field in fields(GroupDraft):
        assert getattr(received, field.name) == getattr(draft, field.name), field.name


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_a_meeting_series_survives_its_document(data: st.DataObject) -> None:
    draft = data.draw(event_drafts())
    changes = data.draw(series_changes(draft))
    cancelled = data.draw(st.booleans())
    event = Event(id=7, group_id=1, cancelled=cancelled, created_at="2026-01-01T00:00:00Z",
                  updated_at="2026-01-02T00:00:00Z",
                  **{f.name: getattr(draft, f.name) for f in fields(EventDraft)
                     if f.name != "online_url"}, online_url="https://meet.example/secret")
    group = _as_group(data.draw(group_drafts))
    document = _wire(event_object(URLS, group, event, changes, None, 0))
    assert "meet.example" not in json.dumps(document)
    received, received_changes, received_cancelled = parse_event(document)
    assert received == draft.__class__(**{**asdict(draft), "online_url": ""})
    assert received_changes == changes
    assert received_cancelled is cancelled


# Through two real nodes ----------------------------------------------------------------------

LISTING = ("name", "summary", "description", "agreements", "join_policy", "format", "cost",
           "area", "address", "contact", "topics", "languages", "accessibility", "audiences")
SERIES = ("title", "description", "starts_at", "duration_minutes", "timezone", "rrule",
          "format", "place", "address", "capacity", "cancelled")


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[Node, Node]:
    tmp = tmp_path_factory.mktemp("fidelity")
    with ExitStack() as stack:
        a = stack.enter_context(node(tmp, "a", "127.0.0.1"))
        b = stack.enter_context(node(tmp, "b", "127.0.0.2"))
        a.cli("peers", "follow", b.url, "--dev")
        wait_for(lambda: b.query("SELECT follower FROM peers WHERE host = ?", (a.host,))
                 == [("pending",)], "B to see A's request")
        b.cli("peers", "approve", a.host)
        wait_for(lambda: a.query("SELECT following FROM peers WHERE host = ?", (b.host,))
                 == [("accepted",)], "A to be accepted")
        yield a, b


def _publish(b: Node, draft: GroupDraft, series: EventDraft,
             changes: list[OccurrenceChange], cancelled: bool) -> tuple[int, int]:
    async def work(db: Database) -> tuple[int, int]:
        group_id, [event_id] = await publish_listing(db, draft, series)
        for change in changes:
            await events.change_occurrence(db, event_id, change)
        if cancelled:
            await events.set_cancelled(db, event_id, True)
        return group_id, event_id
    return b.run(work)


def _read(n: Node, group_where: str, event_where: str, key: Any) -> dict[str, Any]:
    """A node's stored listing, series, changes and occurrences, as values to compare."""
    async def work(db: Database) -> dict[str, Any]:
        group_id = await db.fetchval(f"SELECT id FROM groups WHERE {group_where}", (key,))
        event_id = await db.fetchval(f"SELECT id FROM events WHERE {event_where}", (key,))
        group = await groups.get_group_by_id(db, group_id)
        event = await events.get_event(db, event_id)
        occurrences = await db.fetchall(
            "SELECT original_start, starts_utc, ends_utc FROM occurrences WHERE event_id = ?"
            " ORDER BY 1", (event_id,))
        return {
            "group": {name: getattr(group, name) for name in LISTING},
            "series": {name: getattr(event, name) for name in SERIES},
            "changes": sorted(map(repr, await events.changes_of(db, event_id))),
            "occurrences": [tuple(r) for r in occurrences],
        }
    return n.run(work)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_listings_arrive_equal_through_two_real_nodes(pair, data: st.DataObject) -> None:
    a, b = pair
    draft = data.draw(group_drafts)
    series = data.draw(event_drafts())
    changes = data.draw(series_changes(series))
    cancelled = data.draw(st.booleans())
    _, event_id = _publish(b, draft, series, changes, cancelled)
    event_ap_id = f"{b.url}/events/{event_id}"
    wait_for(lambda: a.query("SELECT count(*) FROM events WHERE ap_id = ? AND cancelled = ?",
                             (event_ap_id, int(cancelled))) == [(1,)]
             and len(a.query("SELECT 1 FROM event_exceptions x JOIN events e"
                             " ON e.id = x.event_id WHERE e.ap_id = ?", (event_ap_id,)))
             == len(changes), "the meeting and its changes on A")
    copy = _read(a, "id = (SELECT group_id FROM events WHERE ap_id = ?)", "ap_id = ?",
                 event_ap_id)
    origin = _read(b, "id = (SELECT group_id FROM events WHERE id = ?)", "id = ?", event_id)
    assert copy["group"] == origin["group"]
    assert copy["series"] == origin["series"]
    assert copy["changes"] == origin["changes"]
    assert copy["occurrences"] == origin["occurrences"]
    # A's calendar carries the series as B's does: the same occurrences, by the same rule.
    calendar = icalendar.Calendar.from_ical(httpx.get(f"{a.url}/events.ics").content)
    [vevent] = [c for c in calendar.walk("VEVENT") if str(c.get("UID")) == event_ap_id
                and c.get("RECURRENCE-ID") is None]
    assert str(vevent.get("SUMMARY")) == series.title
    if series.rrule:
        assert vevent.get("RRULE").to_ical().decode().startswith(series.rrule.split(";")[0])


# Freshness ----------------------------------------------------------------------------------


def _refresh(a: Node, now: datetime | None = None) -> int:
    """One pass of A's freshness work, run here against A's database and the real B."""
    async def work(db: Database) -> int:
        async with Fetcher(allow_private=True) as fetcher:
            return await refresh_listings(Federation(db, fetcher, Urls(a.url), dev=True), now)
    return a.run(work)


def test_quiet_copies_are_rechecked_marked_stale_and_retired(pair) -> None:
    a, b = pair
    start = datetime.now(UTC).replace(tzinfo=None, second=0, microsecond=0) + timedelta(days=3)
    group_id, event_id = _publish(b, _draft(name="Quiet Circle"), EventDraft(
        title="Kept meeting", description="", starts_at=start, duration_minutes=60,
        timezone="UTC", rrule=None, format=Format.IN_PERSON), [], False)
    gone_id = b.run(lambda db: events.create_event(db, group_id, EventDraft(
        title="Silently gone", description="", starts_at=start, duration_minutes=60,
        timezone="UTC", rrule=None, format=Format.IN_PERSON)))
    slug = b.query("SELECT slug FROM groups WHERE id = ?", (group_id,))[0][0]
    group_ap_id = f"{b.url}/groups/{slug}"
    wait_for(lambda: a.query("SELECT count(*) FROM events e JOIN groups g ON g.id = e.group_id"
                             " WHERE g.ap_id = ?", (group_ap_id,)) == [(2,)], "both on A")
    # Ten days without a word from B; meanwhile one meeting went from B unannounced.
    quiet = stamp(datetime.now(UTC) - timedelta(days=10))
    a.run(lambda db: db.write("UPDATE groups SET confirmed_at = ? WHERE ap_id = ?",
                                (quiet, group_ap_id)))
    a.run(lambda db: db.write("UPDATE events SET confirmed_at = ? WHERE group_id ="
                                " (SELECT id FROM groups WHERE ap_id = ?)", (quiet, group_ap_id)))
    b.run(lambda db: db.write("DELETE FROM events WHERE id = ?", (gone_id,)))
    listed = [line for line in a.cli("peers", "list").splitlines() if b.host in line][0]
    assert listed.split()[-1] != "0", listed  # counted stale
    copy = a.query("SELECT slug FROM groups WHERE ap_id = ?", (group_ap_id,))[0][0]
    assert "stale" in httpx.get(f"{a.url}/groups/{copy}").text.lower()

    assert _refresh(a) >= 1
    [(confirmed,)] = a.query("SELECT confirmed_at FROM groups WHERE ap_id = ?", (group_ap_id,))
    assert confirmed > quiet
    titles = {t for (t,) in a.query("SELECT e.title FROM events e JOIN groups g"
                                    " ON g.id = e.group_id WHERE g.ap_id = ?", (group_ap_id,))}
    assert titles == {"Kept meeting"}  # B no longer has the other: A no longer lists it
    assert _refresh(a) == 0  # confirmed: nothing due

    # Forty days on, with B never answering (its next check not yet due), the copy retires.
    a.run(lambda db: db.write(
        "UPDATE groups SET next_check_at = ? WHERE ap_id = ?",
        (stamp(datetime.now(UTC) + timedelta(days=100)), group_ap_id)))
    _refresh(a, datetime.now(UTC) + timedelta(days=40))
    assert a.query("SELECT count(*) FROM groups WHERE ap_id = ?", (group_ap_id,)) == [(0,)]
    assert a.query("SELECT count(*) FROM events WHERE title = 'Kept meeting'") == [(0,)]


def test_a_silent_origin_is_asked_again_with_backoff() -> None:
    assert [retry_delay(n) for n in range(7)] == [timedelta(hours=h) for h in
                                                  (1, 2, 4, 8, 16, 24, 24)]
