"""Calendar (iCalendar) and Atom feeds through the real app and database."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar

from node.domain import EventDraft, Format, OccurrenceChange, Visibility
from node.storage import events, groups
from tests.helpers import ENGINE, draft

ATOM = "{http://www.w3.org/2005/Atom}"
ZONE = "Europe/Berlin"
SECRET_LINK = "https://meet.example/room-7f3a9-secret"
# A Tuesday one to two weeks ahead: inside the expanded horizon, in the future.
TODAY = date.today()
FIRST = datetime.combine(TODAY + timedelta(days=(1 - TODAY.weekday()) % 7 + 7), time(19, 0))
CANCELLED_SLOT = FIRST + timedelta(weeks=1)
MOVED_SLOT = FIRST + timedelta(weeks=2)
MOVED_TO = MOVED_SLOT + timedelta(days=1, minutes=-30)  # Wednesday 18:30


def meeting(**overrides: object) -> EventDraft:
    values: dict[str, object] = dict(
        title="Weekly circle",
        description="Bring yourself.",
        starts_at=FIRST,
        duration_minutes=90,
        timezone=ZONE,
        rrule="FREQ=WEEKLY;BYDAY=TU",
        format=Format.IN_PERSON,
        place="Community hall",
        address="1 Main Street",
    )
    values.update(overrides)
    return EventDraft(**values)


@pytest.fixture
def make_group(run_db, facilitator_id):
    """Create a group owned by the facilitator, with meetings; its slug and event ids."""

    def make(meetings: list[EventDraft] = (), **group_fields) -> tuple[str, list[int]]:
        async def go(db):
            slug = await groups.create_group(db, draft(**group_fields), facilitator_id)
            group = await groups.get_group(db, slug)
            return slug, [await events.create_event(db, group.id, m) for m in meetings]

        return run_db(go)

    return make


def parse_calendar(response) -> Calendar:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/calendar; charset=utf-8"
    return Calendar.from_ical(response.content)


def parse_atom(response) -> ET.Element:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/atom+xml; charset=utf-8"
    return ET.fromstring(response.content)


def vevents(cal: Calendar) -> list:
    return list(cal.walk("VEVENT"))


def entry_titles(feed: ET.Element) -> list[str]:
    return [e.findtext(f"{ATOM}title") for e in feed.findall(f"{ATOM}entry")]


def test_weekly_series_is_one_vevent_with_exdate_and_overrides_for_moved_and_cancelled(
    visitor, make_group, run_db
):
    slug, (event_id,) = make_group([meeting()], name="Grief Circle")
    run_db(lambda db: events.change_occurrence(
        db, event_id, OccurrenceChange(CANCELLED_SLOT, cancelled=True)))
    run_db(lambda db: events.change_occurrence(
        db, event_id, OccurrenceChange(MOVED_SLOT, cancelled=False, starts_at=MOVED_TO,
                                       duration_minutes=60)))

    for url in ("/events.ics", f"/groups/{slug}/events.ics"):
        found = vevents(parse_calendar(visitor().get(url)))
        assert len(found) == 3
        master, moved, cancelled = sorted(
            found, key=lambda v: ("RECURRENCE-ID" in v, str(v["STATUS"]) == "CANCELLED"))
        assert str(master["UID"]) == str(moved["UID"]) == f"event-{event_id}@testserver"
        assert str(cancelled["UID"]) == str(master["UID"])
        assert str(cancelled["STATUS"]) == "CANCELLED" and "RRULE" not in cancelled
        assert cancelled["RECURRENCE-ID"].dt == cancelled["DTSTART"].dt == \
            CANCELLED_SLOT.replace(tzinfo=ZoneInfo(ZONE))
        assert master["RRULE"].to_ical() == b"FREQ=WEEKLY;BYDAY=TU"
        assert [d.dt for d in master["EXDATE"].dts] == [
            CANCELLED_SLOT.replace(tzinfo=ZoneInfo(ZONE))]
        assert "RRULE" not in moved
        assert moved["RECURRENCE-ID"].dt == MOVED_SLOT.replace(tzinfo=ZoneInfo(ZONE))
        assert moved["DTSTART"].dt == MOVED_TO.replace(tzinfo=ZoneInfo(ZONE))
        assert moved["DURATION"].dt == timedelta(minutes=60)
        assert master["DURATION"].dt == timedelta(minutes=90)


def test_start_is_local_time_with_tzid_and_the_zone_is_defined(visitor, make_group):
    make_group([meeting()])
    response = visitor().get("/events.ics")
    cal = parse_calendar(response)
    (event,) = vevents(cal)
    assert event["DTSTART"].params["TZID"] == ZONE
    assert event["DTSTART"].dt == FIRST.replace(tzinfo=ZoneInfo(ZONE))
    assert f"DTSTART;TZID={ZONE}:{FIRST:%Y%m%dT190000}" in response.text
    assert [str(tz["TZID"]) for tz in cal.walk("VTIMEZONE")] == [ZONE]
    assert cal.get_missing_tzids() == set()


def test_node_calendar_lists_every_stored_meeting_of_public_groups(
    visitor, make_group, run_db
):
    one_off = datetime.combine(TODAY + timedelta(days=3), time(10, 15))
    slugs = [
        make_group([meeting(title="Evening circle"),
                    meeting(title="Open day", rrule=None, starts_at=one_off,
                            timezone="America/New_York", duration_minutes=120)],
                   name="Grief Circle", topics=("grief", "bereavement"))[0],
        make_group([meeting(title="Morning walk", starts_at=FIRST.replace(hour=8))],
                   name="Walking Group")[0],
    ]

    async def stored_meetings(db):
        found = []
        for slug in slugs:
            found += await events.events_of_group(db, (await groups.get_group(db, slug)).id)
        return found

    cal = parse_calendar(visitor().get("/events.ics"))
    assert str(cal["X-WR-CALNAME"]) == "Grassroots"
    stored = run_db(stored_meetings)
    in_feed = {str(v["SUMMARY"]): v for v in vevents(cal)}
    assert set(in_feed) == {e.title for e in stored} == {
        "Evening circle", "Open day", "Morning walk"}
    for event in stored:
        vevent = in_feed[event.title]
        assert vevent["DTSTART"].dt == event.starts_at.replace(tzinfo=ZoneInfo(event.timezone))
        assert str(vevent["URL"]) == f"http://testserver/events/{event.id}"
        assert str(vevent["LOCATION"]) == "Community hall, 1 Main Street"
        assert str(vevent["STATUS"]) == "CONFIRMED"
    assert "RRULE" not in in_feed["Open day"]
    assert sorted(in_feed["Open day"].categories) == ["bereavement", "grief"]
    assert {str(tz["TZID"]) for tz in cal.walk("VTIMEZONE")} == {ZONE, "America/New_York"}


def test_cancelled_series_and_cancelled_one_off_are_status_cancelled(
    visitor, make_group, run_db
):
    one_off = FIRST + timedelta(days=2)
    _, (series_id, one_off_id) = make_group(
        [meeting(title="Series"), meeting(title="One-off", rrule=None, starts_at=one_off)])
    run_db(lambda db: events.set_cancelled(db, series_id, True))
    run_db(lambda db: events.change_occurrence(
        db, one_off_id, OccurrenceChange(one_off, cancelled=True)))

    found = {str(v["SUMMARY"]): v for v in vevents(parse_calendar(visitor().get("/events.ics")))}
    assert str(found["Series"]["STATUS"]) == "CANCELLED"
    assert "RRULE" in found["Series"]
    assert str(found["One-off"]["STATUS"]) == "CANCELLED"
    assert "RECURRENCE-ID" not in found["One-off"] and "EXDATE" not in found["One-off"]


def test_private_group_is_absent_from_node_feeds_and_404_for_outsiders(
    visitor, make_group
):
    make_group([meeting(title="Public meeting")], name="Open Circle")
    slug, _ = make_group([meeting(title="Hidden meeting")], name="Hidden Circle",
                         visibility=Visibility.PRIVATE, summary="Members only")

    anonymous = visitor()
    node_ics = anonymous.get("/events.ics")
    atom = anonymous.get("/feed.atom")
    assert [str(v["SUMMARY"]) for v in vevents(parse_calendar(node_ics))] == ["Public meeting"]
    titles = entry_titles(parse_atom(atom))
    assert "Open Circle" in titles
    for text in (node_ics.text, atom.text):
        assert "Hidden" not in text and "Members only" not in text

    assert anonymous.get(f"/groups/{slug}/events.ics").status_code == 404
    outsider = visitor()
    outsider.register("Olli", "olli@example.org")
    assert outsider.get(f"/groups/{slug}/events.ics").status_code == 404

    member = visitor()
    assert member.login("fay@example.org").status_code == 303
    response = member.get(f"/groups/{slug}/events.ics")
    assert [str(v["SUMMARY"]) for v in vevents(parse_calendar(response))] == ["Hidden meeting"]
    assert response.headers["cache-control"] == "private"


def test_unlisted_group_calendar_is_reachable_by_link_but_in_no_node_feed(
    visitor, make_group
):
    slug, _ = make_group([meeting(title="Quiet meeting")], name="Quiet Circle",
                         visibility=Visibility.UNLISTED)
    anonymous = visitor()
    cal = parse_calendar(anonymous.get(f"/groups/{slug}/events.ics"))
    assert str(cal["X-WR-CALNAME"]) == "Quiet Circle"
    assert [str(v["SUMMARY"]) for v in vevents(cal)] == ["Quiet meeting"]
    assert vevents(parse_calendar(anonymous.get("/events.ics"))) == []
    assert "Quiet" not in anonymous.get("/feed.atom").text


def test_online_link_and_member_identities_appear_in_no_feed(visitor, make_group):
    slug, _ = make_group(
        [meeting(title="Online circle", format=Format.ONLINE, place="", address="",
                 online_url=SECRET_LINK),
         meeting(title="Hybrid circle", format=Format.HYBRID, online_url=SECRET_LINK)],
        name="Anxiety Peer Support")
    member = visitor()
    member.login("fay@example.org")
    responses = [visitor().get("/events.ics"), visitor().get("/feed.atom"),
                 visitor().get(f"/groups/{slug}/events.ics"),
                 member.get(f"/groups/{slug}/events.ics")]
    for response in responses:
        assert response.status_code == 200
        assert "Online circle" in response.text or "Anxiety Peer Support" in response.text
        for secret in (SECRET_LINK, "room-7f3a9", "Fay Quietly", "fay@example.org"):
            assert secret not in response.text
    found = {str(v["SUMMARY"]): v for v in vevents(parse_calendar(responses[0]))}
    assert str(found["Online circle"]["LOCATION"]) == "Online"
    assert str(found["Hybrid circle"]["LOCATION"]) == "Community hall, 1 Main Street"


def test_atom_feed_lists_public_groups_and_upcoming_meetings(visitor, make_group):
    slug, (event_id,) = make_group([meeting(title="Evening circle")], name="Grief Circle",
                                   summary="Peer support for grief.", topics=("grief",))
    feed = parse_atom(visitor().get("/feed.atom"))

    assert feed.findtext(f"{ATOM}id") == "http://testserver/"
    assert feed.findtext(f"{ATOM}title") == "Grassroots"
    assert feed.findtext(f"{ATOM}author/{ATOM}name") == "Grassroots"
    links = {link.get("rel"): link.get("href") for link in feed.findall(f"{ATOM}link")}
    assert links == {"self": "http://testserver/feed.atom", "alternate": "http://testserver/"}
    datetime.strptime(feed.findtext(f"{ATOM}updated"), "%Y-%m-%dT%H:%M:%SZ")

    entries = feed.findall(f"{ATOM}entry")
    group_entry = entries[0]
    assert group_entry.findtext(f"{ATOM}title") == "Grief Circle"
    assert group_entry.findtext(f"{ATOM}summary") == "Peer support for grief."
    assert group_entry.find(f"{ATOM}link").get("href") == f"http://testserver/groups/{slug}"
    assert group_entry.find(f"{ATOM}category").get("term") == "grief"
    # The weekly series appears with its meetings of the next four weeks only.
    horizon = datetime.now(ZoneInfo(ZONE)) + timedelta(weeks=4)
    slots = [FIRST + timedelta(weeks=n) for n in range(5)]
    expected = [s for s in slots if s.replace(tzinfo=ZoneInfo(ZONE)) < horizon]
    meetings = entries[1:]
    assert len(meetings) == len(expected) >= 2
    for entry, slot in zip(meetings, expected, strict=True):
        title = entry.findtext(f"{ATOM}title")
        assert title == f"Evening circle (Tue {slot.day} {slot:%b %Y}, 19:00)"
        assert entry.find(f"{ATOM}link").get("href") == \
            f"http://testserver/events/{event_id}?on={slot:%Y-%m-%dT%H:%M}"
        assert entry.findtext(f"{ATOM}author/{ATOM}name") == "Grassroots"
        assert entry.findtext(f"{ATOM}id").endswith(f"event-{event_id}/{slot:%Y-%m-%dT%H:%M}")
    summary = meetings[0].findtext(f"{ATOM}summary")
    zone = expected[0].replace(tzinfo=ZoneInfo(ZONE)).tzname()
    assert "Grief Circle: Tue" in summary and f"19:00–20:30 {zone}" in summary
    assert "Community hall, 1 Main Street" in summary


def test_feeds_speak_the_readers_language(visitor, make_group):
    make_group([meeting(title="Online circle", format=Format.ONLINE, place="", address="")],
               name="Grief Circle")
    german = {"Accept-Language": "de"}
    entry = parse_atom(visitor().get("/feed.atom", headers=german)).findall(f"{ATOM}entry")[1]
    assert entry.findtext(f"{ATOM}title").startswith("Online circle (Di., ")
    calendar = parse_calendar(visitor().get("/events.ics", headers=german))
    (online,) = vevents(calendar)
    assert str(online["LOCATION"]) == "Online"  # the same word in German
    assert "Mitglieder" in str(online["DESCRIPTION"])  # how to get the link, in German


def test_markup_in_user_text_is_escaped_in_every_feed(visitor, make_group):
    hostile = '<script>alert("x")</script> & <b>'
    slug, _ = make_group([meeting(title=hostile, description=hostile)], name=f"Group {hostile}",
                         summary=hostile)
    atom = visitor().get("/feed.atom")
    assert "<script>" not in atom.text and "<b>" not in atom.text
    feed = parse_atom(atom)
    assert entry_titles(feed)[0] == f"Group {hostile}"
    assert feed.find(f"{ATOM}entry").findtext(f"{ATOM}summary") == hostile
    assert entry_titles(feed)[1].startswith(hostile)
    (vevent,) = vevents(parse_calendar(visitor().get(f"/groups/{slug}/events.ics")))
    assert str(vevent["SUMMARY"]) == hostile


def test_control_characters_never_break_the_atom_feed(visitor, make_group):
    # PostgreSQL's text holds no NUL character (forms and federation strip it); SQLite's does.
    nul = "\x00" if ENGINE == "sqlite" else ""
    make_group([], name="Bell\x07 group", summary="Line\x0bfeed" + nul)
    feed = parse_atom(visitor().get("/feed.atom"))
    assert entry_titles(feed) == ["Bell group"]


def test_until_is_written_in_utc_beside_a_zoned_start():
    from zoneinfo import ZoneInfo

    from node.feeds import utc_until

    london = ZoneInfo("Europe/London")
    assert utc_until("FREQ=WEEKLY;BYDAY=TU;UNTIL=20260630T235959", london) == \
        "FREQ=WEEKLY;BYDAY=TU;UNTIL=20260630T225959Z"  # BST is UTC+1
    assert utc_until("FREQ=WEEKLY;COUNT=4", london) == "FREQ=WEEKLY;COUNT=4"
