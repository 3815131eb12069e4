"""A peer's group and meetings as first-class pages and feeds of the receiving node.

The federated copies are stored through the node's own storage functions (what the
inbox calls); every outcome is read from the pages, the feeds or the database.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar

from node.db import stamp
from node.domain import Cost, EventDraft, Format, JoinPolicy, OccurrenceChange
from node.storage import accounts, events, groups, remote
from tests.helpers import draft

ORIGIN = "peer.example:8443"
GROUP_ID = "https://peer.example:8443/groups/lantern"
GROUP_URL = "https://peer.example:8443/groups/lantern/about"
SLUG = f"lantern@{ORIGIN}"
PAGE = f"/groups/{quote(SLUG)}"
EVENT_ID = "https://peer.example:8443/events/77"
EVENT_URL = "https://peer.example:8443/events/77/page"
ZONE = "America/Toronto"
TODAY = date.today()
# A Thursday one to two weeks ahead, 18:30 in Toronto.
FIRST = datetime.combine(TODAY + timedelta(days=(3 - TODAY.weekday()) % 7 + 7), time(18, 30))
CANCELLED_SLOT = FIRST + timedelta(weeks=1)
MOVED_SLOT = FIRST + timedelta(weeks=2)
MOVED_TO = MOVED_SLOT + timedelta(hours=1)
ATOM = "{http://www.w3.org/2005/Atom}"

LISTING = draft(
    name="Lantern Bereavement Circle",
    summary="Peer support after losing someone.",
    description="We meet **every Thursday**. Tea and quiet.",
    agreements="What is shared in the circle stays in the circle.",
    join_policy=JoinPolicy.APPROVAL,
    format=Format.HYBRID,
    cost=Cost.SLIDING_SCALE,
    area="Kensington Market",
    address="40 Baldwin Street, Toronto",
    contact="circle@peer.example",
    topics=("grief", "bereavement"),
    languages=("en", "fr"),
    accessibility=("step_free", "captions"),
    audiences=("lgbtq",),
)
SERIES = EventDraft(
    title="Thursday circle",
    description="Bring a photo if you like.",
    starts_at=FIRST,
    duration_minutes=90,
    timezone=ZONE,
    rrule="FREQ=WEEKLY;BYDAY=TH",
    format=Format.HYBRID,
    place="Back room",
    address="40 Baldwin Street, Toronto",
    capacity=14,
)
CHANGES = [OccurrenceChange(CANCELLED_SLOT, cancelled=True),
           OccurrenceChange(MOVED_SLOT, cancelled=False, starts_at=MOVED_TO)]


@pytest.fixture
def peer_listing(run_db) -> tuple[int, int]:
    """A peer's group with a weekly meeting (one slot cancelled, one moved): row ids."""
    async def store(db):
        group_id = await remote.upsert_remote_group(
            db, origin=ORIGIN, ap_id=GROUP_ID, url=GROUP_URL, username="lantern", draft=LISTING)
        event_id = await remote.upsert_remote_event(
            db, group_id=group_id, ap_id=EVENT_ID, url=EVENT_URL, draft=SERIES,
            changes=CHANGES, cancelled=False)
        return group_id, event_id

    return run_db(store)


def shown(moment: datetime) -> str:
    """A local wall time as pages show it."""
    return f"{moment:%a} {moment.day} {moment:%b %Y, %H:%M}"


def key(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M")


def confirm_days_ago(run_db, days: int) -> None:
    when = stamp(datetime.now(UTC) - timedelta(days=days))
    run_db(lambda db: db.write("UPDATE groups SET confirmed_at = ? WHERE ap_id = ?",
                               (when, GROUP_ID)))
    run_db(lambda db: db.write("UPDATE events SET confirmed_at = ? WHERE ap_id = ?",
                               (when, EVENT_ID)))


def hide(admin, ap_id: str) -> None:
    r = admin.post("/admin/listings", {"action": "hide", "ap_id": ap_id}, page="/groups")
    assert r.status_code == 200 and "is hidden" in r.text


def calendar_of(response) -> Calendar:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/calendar; charset=utf-8"
    return Calendar.from_ical(response.content)


def series_vevents(cal: Calendar, uid: str) -> list:
    return [v for v in cal.walk("VEVENT") if str(v["UID"]) == uid]


# The group page -----------------------------------------------------------------

def test_federated_group_page_shows_the_whole_listing_its_origin_and_the_way_to_join(
        peer_listing, visitor):
    r = visitor().get(PAGE)
    assert r.status_code == 200, r.text
    page = r.text
    for expected in (
        "Lantern Bereavement Circle", "Peer support after losing someone.",
        "<strong>every Thursday</strong>",  # the description is rendered as local ones are
        "bereavement, grief", "English, French", "Hybrid", "Kensington Market",
        "40 Baldwin Street, Toronto", "Step-free access", "Live captions", "Sliding scale",
        "lgbtq", "What is shared in the circle stays in the circle.", "circle@peer.example",
        "Approval: a facilitator approves each request",
        f"listed by <strong>{ORIGIN}</strong>", f'href="{GROUP_URL}"', f"Join on {ORIGIN}",
        f"Confirmed by {ORIGIN} less than an hour ago",
    ):
        assert expected in page, expected
    # Its meetings, in their own zone, linking to their pages here.
    assert f"/events/{peer_listing[1]}?on=" in page and shown(FIRST) in page
    assert f'<abbr title="{ZONE}">' in page
    # Nothing that only makes sense for this node's own groups.
    for local_only in ("/join", "/leave", "/members", "/edit", "Join this group",
                       "Ask to join", "member of this group", "Stale"):
        assert local_only not in page, local_only
    assert f'href="{PAGE}/report"' in page  # reporting a peer's listing stays


def test_a_listing_not_confirmed_for_the_stale_period_says_so(peer_listing, visitor, run_db):
    confirm_days_ago(run_db, 3)
    page = visitor().get(PAGE).text
    assert f"Confirmed by {ORIGIN} 3 days ago" in page and "Stale" not in page
    confirm_days_ago(run_db, 8)  # the stale period is 7 days by default
    for url in (PAGE, f"/events/{peer_listing[1]}"):
        page = visitor().get(url).text
        assert f"Confirmed by {ORIGIN} 8 days ago" in page
        assert "<strong>Stale:</strong>" in page
        assert f"{ORIGIN} has not confirmed this listing for more than 7 days" in page


def test_directory_cards_link_to_the_federated_page_here_and_name_the_origin(
        peer_listing, visitor):
    page = visitor().get("/groups?origin=federated").text
    assert f'<a href="/groups/{quote(SLUG, safe="")}">Lantern Bereavement Circle</a>' in page
    assert f"listed by <strong>{ORIGIN}</strong>" in page


def test_date_range_finds_a_federated_group_by_its_meeting(peer_listing, visitor):
    v = visitor()
    day = FIRST.date().isoformat()
    assert "Lantern Bereavement Circle" in v.get(f"/groups?from={day}&to={day}").text
    # The cancelled week has no meeting; the moved one is found on its new day.
    cancelled_day = CANCELLED_SLOT.date().isoformat()
    assert "Lantern Bereavement Circle" not in v.get(
        f"/groups?from={cancelled_day}&to={cancelled_day}").text
    off = (FIRST + timedelta(days=1)).date().isoformat()
    assert "Lantern Bereavement Circle" not in v.get(f"/groups?from={off}&to={off}").text


# The meeting page ---------------------------------------------------------------

def test_federated_meeting_page_shows_the_meeting_in_its_zone_and_links_to_the_original(
        peer_listing, visitor):
    _, event_id = peer_listing
    r = visitor().get(f"/events/{event_id}")
    assert r.status_code == 200, r.text
    page = r.text
    for expected in ("Thursday circle", "Bring a photo if you like.", shown(FIRST),
                     f'<abbr title="{ZONE}">', "Hybrid", "Back room", "40 Baldwin Street, Toronto",
                     "Up to 14 people", f'href="{EVENT_URL}"', f"See this meeting on {ORIGIN}",
                     f"Confirmed by {ORIGIN}", f'href="/groups/{quote(SLUG, safe="")}"'):
        assert expected in page, expected
    # 18:30 in Toronto is not shown as UTC.
    assert f'datetime="{FIRST.replace(tzinfo=ZoneInfo(ZONE)).isoformat()}"' in page
    # The series' next meetings: the cancelled and moved ones marked.
    def listed(moment):
        return f"{shown(moment)} {moment.replace(tzinfo=ZoneInfo(ZONE)).tzname()}</time></a>"
    assert listed(CANCELLED_SLOT) + " (cancelled)" in page
    assert listed(MOVED_TO) + " (moved)" in page
    for local_only in ("/rsvp", "I'm going", "Are you coming?", "Online link</dt><dd><a",
                       "/occurrence", "/edit", "Stale"):
        assert local_only not in page, local_only


def test_federated_meeting_page_shows_a_cancelled_or_moved_occurrence_and_a_cancelled_series(
        peer_listing, visitor, run_db):
    group_id, event_id = peer_listing
    v = visitor()
    assert "This meeting is cancelled" in v.get(
        f"/events/{event_id}?on={key(CANCELLED_SLOT)}").text
    moved = v.get(f"/events/{event_id}?on={key(MOVED_SLOT)}").text
    assert "has moved" in moved and shown(MOVED_TO) in moved
    assert v.get(f"/events/{event_id}?on={key(FIRST + timedelta(hours=1))}").status_code == 404

    run_db(lambda db: remote.upsert_remote_event(
        db, group_id=group_id, ap_id=EVENT_ID, url=EVENT_URL, draft=SERIES, changes=CHANGES,
        cancelled=True))
    assert "This meeting series is cancelled" in v.get(f"/events/{event_id}").text


def test_a_federated_meeting_page_never_shows_an_online_link(peer_listing, visitor, run_db):
    group_id, _ = peer_listing
    secret = "https://meet.example/peer-room-secret"
    online = EventDraft(title="Online circle", description="", starts_at=FIRST,
                        duration_minutes=60, timezone=ZONE, rrule=None, format=Format.ONLINE,
                        online_url=secret)
    event_id = run_db(lambda db: remote.upsert_remote_event(
        db, group_id=group_id, ap_id=EVENT_ID + "-online", url=EVENT_URL + "-online",
        draft=online, changes=[], cancelled=False))
    page = visitor().get(f"/events/{event_id}").text
    assert "Online circle" in page and f"Given to the group's members on {ORIGIN}" in page
    assert secret not in page


# Calendars and the Atom feed -------------------------------------------------------

def test_node_calendar_has_the_federated_series_beside_local_ones(
        peer_listing, visitor, open_registration, run_db):
    visitor().register("Fay", "fay@example.org")
    fay = run_db(lambda db: accounts.find_account(db, "fay@example.org")).id

    async def local(db):
        slug = await groups.create_group(db, draft(name="Local Circle"), fay)
        group = await groups.get_group(db, slug)
        return await events.create_event(db, group.id, EventDraft(
            title="Local meeting", description="", starts_at=FIRST, duration_minutes=60,
            timezone="Europe/London", rrule=None, format=Format.IN_PERSON))

    local_id = run_db(local)
    cal = calendar_of(visitor().get("/events.ics"))
    assert [str(v["SUMMARY"]) for v in series_vevents(cal, f"event-{local_id}@testserver")] == [
        "Local meeting"]
    master, moved, cancelled = sorted(
        series_vevents(cal, EVENT_ID),
        key=lambda v: ("RECURRENCE-ID" in v, str(v["STATUS"]) == "CANCELLED"))
    tz = ZoneInfo(ZONE)
    assert str(cancelled["STATUS"]) == "CANCELLED"
    assert cancelled["RECURRENCE-ID"].dt == CANCELLED_SLOT.replace(tzinfo=tz)
    assert master["DTSTART"].params["TZID"] == ZONE
    assert master["DTSTART"].dt == FIRST.replace(tzinfo=tz)
    assert master["RRULE"].to_ical() == b"FREQ=WEEKLY;BYDAY=TH"
    assert [d.dt for d in master["EXDATE"].dts] == [CANCELLED_SLOT.replace(tzinfo=tz)]
    assert moved["RECURRENCE-ID"].dt == MOVED_SLOT.replace(tzinfo=tz)
    assert moved["DTSTART"].dt == MOVED_TO.replace(tzinfo=tz)
    for vevent in (master, moved):
        assert str(vevent["URL"]) == EVENT_URL
        assert f"listed by {ORIGIN}" in str(vevent["DESCRIPTION"])
    assert ZONE in {str(tz["TZID"]) for tz in cal.walk("VTIMEZONE")}
    assert cal.get_missing_tzids() == set()


def test_federated_group_has_its_own_calendar(peer_listing, visitor):
    cal = calendar_of(visitor().get(f"{PAGE}/events.ics"))
    assert str(cal["X-WR-CALNAME"]) == "Lantern Bereavement Circle"
    assert {str(v["UID"]) for v in cal.walk("VEVENT")} == {EVENT_ID}
    assert len(cal.walk("VEVENT")) == 3  # the series, its moved and its cancelled meeting
    assert visitor().get(f"/groups/{quote('nobody@' + ORIGIN)}/events.ics").status_code == 404


def test_atom_feed_carries_federated_listings_marked_with_their_node(peer_listing, visitor):
    r = visitor().get("/feed.atom")
    assert r.status_code == 200
    entries = ET.fromstring(r.content).findall(f"{ATOM}entry")
    by_id = {e.findtext(f"{ATOM}id"): e for e in entries}
    group = by_id[GROUP_ID]
    assert group.findtext(f"{ATOM}author/{ATOM}name") == ORIGIN
    links = {link.get("rel"): link.get("href") for link in group.findall(f"{ATOM}link")}
    assert links == {"alternate": f"http://testserver/groups/{SLUG}", "via": GROUP_URL}
    meeting = by_id[f"{EVENT_ID}#{key(FIRST)}"]
    assert meeting.findtext(f"{ATOM}author/{ATOM}name") == ORIGIN
    assert f"listed by {ORIGIN}" in meeting.findtext(f"{ATOM}summary")


# Hidden listings -------------------------------------------------------------------

def test_a_hidden_federated_group_is_404_and_absent_from_every_calendar_and_feed(
        peer_listing, admin, visitor):
    _, event_id = peer_listing
    hide(admin, GROUP_ID)
    anyone = visitor()
    for url in (PAGE, f"/events/{event_id}", f"{PAGE}/events.ics"):
        assert anyone.get(url).status_code == 404, url
    for url in ("/events.ics", "/feed.atom", "/groups", f"/groups?from={FIRST.date()}"):
        text = anyone.get(url).text
        assert "Lantern" not in text and "Thursday circle" not in text, url


def test_a_hidden_federated_meeting_is_404_and_absent_but_its_group_stays(
        peer_listing, admin, visitor):
    _, event_id = peer_listing
    hide(admin, EVENT_ID)
    anyone = visitor()
    assert anyone.get(f"/events/{event_id}").status_code == 404
    assert anyone.get(PAGE).status_code == 200
    assert f"/events/{event_id}" not in anyone.get(PAGE).text
    for url in ("/events.ics", f"{PAGE}/events.ics", "/feed.atom"):
        response = anyone.get(url)
        assert response.status_code == 200 and "Thursday circle" not in response.text, url
    day = FIRST.date().isoformat()
    assert "Lantern" not in anyone.get(f"/groups?from={day}&to={day}").text


def test_an_unknown_federated_slug_is_404(visitor):
    assert visitor().get(PAGE).status_code == 404
    assert visitor().get("/groups/nobody@nowhere.example").status_code == 404


def test_peer_pages_preview_as_links_and_name_their_origin_as_canonical(peer_listing, visitor):
    _, event_id = peer_listing
    guest = visitor()
    group_page = guest.get(PAGE).text
    assert f'<meta property="og:title" content="{LISTING.name}">' in group_page
    assert f'<meta property="og:url" content="http://testserver{PAGE}">' in group_page
    assert f'<link rel="canonical" href="{GROUP_URL}">' in group_page
    meeting_page = guest.get(f"/events/{event_id}").text
    assert f'<meta property="og:url" content="http://testserver/events/{event_id}">' in meeting_page
    assert f'<link rel="canonical" href="{EVENT_URL}">' in meeting_page
    # Search engines list a peer's meetings on the peer: no schema.org copy here.
    for page in (group_page, meeting_page):
        assert "application/ld+json" not in page
