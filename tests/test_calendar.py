"""The /events calendar (month and agenda), per-meeting .ics, saved searches as feeds."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import rrulestr
from icalendar import Calendar

from node.domain import EventDraft, Format, OccurrenceChange, Visibility
from node.feeds import calendar as calendar_of
from node.storage import events, groups, remote
from node.storage.moderation import hide_listing
from tests.helpers import draft, wait_for

ATOM = "{http://www.w3.org/2005/Atom}"
ZONE = "Europe/Berlin"
PEER_ZONE = "America/Halifax"
TODAY = date.today()
# A Tuesday one to two weeks ahead, 19:00 in Berlin: inside the expanded horizon.
FIRST = datetime.combine(TODAY + timedelta(days=(1 - TODAY.weekday()) % 7 + 7), time(19, 0))
CANCELLED = FIRST + timedelta(weeks=1)
MOVED = FIRST + timedelta(weeks=2)
MOVED_TO = MOVED + timedelta(days=1, minutes=-30)  # Wednesday 18:30
PEER_START = datetime.combine(FIRST.date() + timedelta(days=2), time(18, 0))  # a Thursday
PEER_GROUP = "https://peer.example/groups/harbour"
PEER_EVENT = PEER_GROUP + "/events/1"


def weekly(title: str = "Grief evening", **overrides: object) -> EventDraft:
    values: dict[str, object] = {
        "title": title, "description": "Bring **tea** if you like.", "starts_at": FIRST,
        "duration_minutes": 90, "timezone": ZONE, "rrule": "FREQ=WEEKLY;BYDAY=TU",
        "format": Format.IN_PERSON, "place": "Community hall"}
    values.update(overrides)
    return EventDraft(**values)


@pytest.fixture
def node(run_db, facilitator_id) -> dict[str, int]:
    """A local grief group meeting weekly (one slot cancelled, one moved) and a peer's
    anxiety group meeting once; their event ids."""

    async def go(db):
        slug = await groups.create_group(
            db, draft(name="Grief Circle", topics=("grief",), format=Format.IN_PERSON),
            facilitator_id)
        local = await events.create_event(db, (await groups.get_group(db, slug)).id, weekly())
        await events.change_occurrence(db, local, OccurrenceChange(CANCELLED, cancelled=True))
        await events.change_occurrence(db, local, OccurrenceChange(
            MOVED, cancelled=False, starts_at=MOVED_TO))
        peer_group = await remote.upsert_remote_group(
            db, origin="peer.example", ap_id=PEER_GROUP, url=PEER_GROUP, username="harbour",
            draft=draft(name="Harbour Lights", topics=("anxiety",)))
        peer = await remote.upsert_remote_event(
            db, group_id=peer_group, ap_id=PEER_EVENT, url=PEER_EVENT, changes=[],
            cancelled=False, draft=EventDraft(
                title="Harbour evening", description="Tea by the window.",
                starts_at=PEER_START, duration_minutes=60, timezone=PEER_ZONE, rrule=None,
                format=Format.ONLINE))
        return {"local": local, "peer": peer}

    return run_db(go)


def key(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M")


def month_cells(html: str) -> dict[str, str]:
    """Each day cell of the month table, by its ISO date."""
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    cells = {}
    for cell in body.split("<td")[1:]:
        found = re.search(r'<time datetime="(\d{4}-\d\d-\d\d)">', cell)
        if found:
            cells[found[1]] = cell
    return cells


def month_of(moment: datetime) -> str:
    return f"{moment:%Y-%m}"


def test_month_view_shows_local_and_federated_meetings_on_their_days(visitor, node):
    anyone = visitor()
    expected = [
        (FIRST, node["local"], FIRST, ""),
        (CANCELLED, node["local"], CANCELLED, "(cancelled)"),
        (MOVED_TO, node["local"], MOVED, "(moved)"),
        (PEER_START, node["peer"], PEER_START, ""),
    ]
    for when, event_id, slot, mark in expected:
        page = anyone.get(f"/events?month={month_of(when)}")
        assert page.status_code == 200
        cell = month_cells(page.text)[when.date().isoformat()]
        link = f'href="/events/{event_id}?on={key(slot)}"'
        assert link in cell, (when, cell)
        entry = cell.split(link, 1)[1].split("</li>", 1)[0]
        assert f"{when:%H:%M}</time>" in entry  # in the meeting's own zone, named
        assert (PEER_ZONE if event_id == node["peer"] else ZONE) in entry
        if mark:
            assert mark in entry
        else:
            assert "(cancelled)" not in entry and "(moved)" not in entry
    # The moved meeting is no longer on its usual day.
    cells = month_cells(anyone.get(f"/events?month={month_of(MOVED)}").text)
    assert f"?on={key(MOVED)}" not in cells[MOVED.date().isoformat()]


def test_month_is_a_table_with_weekday_headers_today_and_paging(visitor, node):
    page = visitor().get("/events").text
    assert "<caption>" in page and page.count('<th scope="col">') == 7
    today_cell = month_cells(page)[TODAY.isoformat()]
    assert today_cell.startswith(' aria-current="date"')
    assert page.count('aria-current="date"') == 1
    this_month = TODAY.replace(day=1)
    following = (this_month + timedelta(days=32)).replace(day=1)
    preceding = (this_month - timedelta(days=1)).replace(day=1)
    assert f'href="/events?month={following:%Y-%m}"' in page
    assert f'href="/events?month={preceding:%Y-%m}"' in page
    assert "<script" not in page


def test_filters_narrow_the_calendar(visitor, node):
    anyone = visitor()
    month = month_of(PEER_START)
    both = anyone.get(f"/events?month={month}").text
    grief = anyone.get(f"/events?month={month}&topic=grief").text
    federated = anyone.get(f"/events?month={month}&origin=federated").text
    searched = anyone.get(f"/events?month={month}&q=harbour").text
    peer_link = f"/events/{node['peer']}?on={key(PEER_START)}"
    local_link = f"/events/{node['local']}?on="
    assert peer_link in both and local_link in both
    assert local_link in grief and peer_link not in grief
    assert peer_link in federated and local_link not in federated
    assert peer_link in searched and local_link not in searched
    # The filters stay on when paging months.
    assert "topic=grief&amp;month=" in grief
    assert anyone.get("/events?format=teleport").status_code == 400


def test_hidden_and_private_meetings_are_not_on_the_calendar(
        visitor, node, run_db, facilitator_id):
    async def private_group(db):
        slug = await groups.create_group(
            db, draft(name="Closed Circle", visibility=Visibility.PRIVATE), facilitator_id)
        return await events.create_event(
            db, (await groups.get_group(db, slug)).id, weekly("Closed evening"))

    private_id = run_db(private_group)
    month = f"/events?month={month_of(FIRST)}"
    anyone = visitor()
    assert "Closed evening" not in anyone.get(month).text
    member = visitor()
    member.login("fay@example.org")
    assert f"/events/{private_id}?on={key(FIRST)}" in member.get(month).text
    assert "Closed evening" not in anyone.get("/events.ics").text
    assert anyone.get(f"/events/{private_id}.ics").status_code == 404

    assert "Harbour evening" in anyone.get(f"/events?month={month_of(PEER_START)}").text
    run_db(lambda db: hide_listing(db, PEER_EVENT))
    assert "Harbour evening" not in anyone.get(f"/events?month={month_of(PEER_START)}").text
    assert anyone.get(f"/events/{node['peer']}.ics").status_code == 404


def test_agenda_lists_each_day_under_its_heading_in_order(visitor, node):
    page = visitor().get(f"/events?view=agenda&from={FIRST.date()}").text
    assert re.search(r"<h2[^>]*>Meetings from", page)
    days = re.findall(r'<h3><time datetime="(\d{4}-\d\d-\d\d)">', page)
    assert days == sorted(days) == [FIRST.date().isoformat(), PEER_START.date().isoformat()]
    order = [page.index(f"?on={key(FIRST)}"), page.index(f"?on={key(PEER_START)}")]
    assert order == sorted(order)
    following = visitor().get(f"/events?view=agenda&from={FIRST.date() + timedelta(days=7)}")
    assert f"?on={key(CANCELLED)}" in following.text and "(cancelled)" in following.text
    assert f'from={FIRST.date() + timedelta(days=7)}' in page  # the next page


def ics_starts(body: bytes, start: datetime, end: datetime) -> set[datetime]:
    """Start instants of a calendar's meetings in [start, end), expanded with dateutil:
    RRULE minus EXDATE, overrides by RECURRENCE-ID; cancelled ones left out."""
    components = Calendar.from_ical(body).walk("VEVENT")
    (master,) = [c for c in components if "RECURRENCE-ID" not in c]
    overrides = {c["RECURRENCE-ID"].dt: c for c in components if "RECURRENCE-ID" in c}
    first = master["DTSTART"].dt
    if "RRULE" in master:
        rule = rrulestr(master["RRULE"].to_ical().decode(), dtstart=first)
        slots = rule.between(start - timedelta(days=1), end, inc=True)
    else:
        slots = [first]
    excluded = {d.dt for d in master.get("EXDATE").dts} if "EXDATE" in master else set()
    found = set()
    for slot in slots:
        override = overrides.get(slot)
        if slot in excluded or (override and str(override["STATUS"]) == "CANCELLED"):
            continue
        found.add(override["DTSTART"].dt if override else slot)
    return {moment.astimezone(UTC) for moment in found if start <= moment < end}


def page_starts(html: str) -> set[datetime]:
    return {datetime.fromisoformat(m).astimezone(UTC) for m in
            re.findall(r'<time datetime="(\d{4}-\d\d-\d\dT[^"]+)">', html)}


def test_meeting_ics_expands_to_the_meetings_its_pages_list(visitor, node):
    anyone = visitor()
    response = anyone.get(f"/events/{node['local']}.ics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/calendar")
    now = datetime.now(UTC)
    horizon = now + timedelta(days=91)
    from_ics = ics_starts(response.content, now, horizon)
    # The meeting's page lists the next one and the few after it.
    meeting_page = anyone.get(f"/events/{node['local']}")
    assert f'href="/events/{node["local"]}.ics"' in meeting_page.text
    lead = meeting_page.text.split('class="lead"', 1)[1]
    others = meeting_page.text.split("Other meetings of this series", 1)[1].split("</ul>")[0]
    listed = sorted({min(page_starts(lead.split("</p>", 1)[0]))} | page_starts(others))
    assert listed == sorted(from_ics)[:len(listed)] and len(listed) >= 5
    # The calendar's agenda lists every one of the next three months.
    in_agenda: set[datetime] = set()
    day = now.date()
    while datetime.combine(day, time(), UTC) < horizon:
        html = anyone.get(f"/events?view=agenda&q=grief&from={day}").text
        for item in re.findall(rf'href="/events/{node["local"]}\?on=[^"]+">(.*?)</li>', html,
                               re.DOTALL):
            if "(cancelled)" not in item:
                in_agenda |= page_starts(item)
        day += timedelta(days=7)
    assert from_ics == {s for s in in_agenda if now <= s < horizon}
    assert MOVED_TO.replace(tzinfo=ZoneInfo(ZONE)) in from_ics
    assert CANCELLED.replace(tzinfo=ZoneInfo(ZONE)) not in from_ics

    peer = anyone.get(f"/events/{node['peer']}.ics")
    (vevent,) = Calendar.from_ical(peer.content).walk("VEVENT")
    assert str(vevent["UID"]) == PEER_EVENT
    assert vevent["DTSTART"].dt == PEER_START.replace(tzinfo=ZoneInfo(PEER_ZONE))
    assert "Add to calendar" in anyone.get(f"/events/{node['peer']}").text


def test_a_saved_search_is_a_calendar_and_a_feed(visitor, node):
    anyone = visitor()
    cal = Calendar.from_ical(anyone.get("/events.ics?topic=grief").content)
    assert {str(v["SUMMARY"]) for v in cal.walk("VEVENT")} == {"Grief evening"}
    everything = Calendar.from_ical(anyone.get("/events.ics").content)
    assert {str(v["SUMMARY"]) for v in everything.walk("VEVENT")} == {
        "Grief evening", "Harbour evening"}
    feed = ET.fromstring(anyone.get("/feed.atom?topic=anxiety").content)
    titles = [e.findtext(f"{ATOM}title") for e in feed.findall(f"{ATOM}entry")]
    assert "Harbour Lights" in titles and "Grief Circle" not in titles
    assert all("Grief" not in title for title in titles)
    assert feed.find(f"{ATOM}link[@rel='self']").get("href") == \
        "http://testserver/feed.atom?topic=anxiety"
    assert anyone.get("/events.ics?format=teleport").status_code == 400
    # The directory and the calendar offer the search to subscribe to.
    for page in ("/groups?topic=grief", "/events?topic=grief"):
        html = anyone.get(page).text
        assert "Subscribe to this search" in html
        assert 'href="webcal://testserver/events.ics?topic=grief"' in html
        assert 'href="http://testserver/feed.atom?topic=grief"' in html
    assert 'href="webcal://testserver/events.ics"' in anyone.get("/events").text


def test_atom_entries_carry_html_and_link_to_their_occurrence(visitor, node):
    feed = ET.fromstring(visitor().get("/feed.atom").content)
    meetings = [e for e in feed.findall(f"{ATOM}entry")
                if "/events/" in e.find(f"{ATOM}link").get("href")]
    assert meetings
    for entry in meetings:
        assert re.search(r"/events/\d+\?on=\d{4}-\d\d-\d\dT\d\d:\d\d$",
                         entry.find(f"{ATOM}link").get("href"))
        content = entry.find(f"{ATOM}content")
        assert content.get("type") == "html"
        assert "**" not in content.text
    local = [e for e in meetings if "Grief evening" in e.findtext(f"{ATOM}title")]
    assert "<strong>tea</strong>" in local[0].find(f"{ATOM}content").text
    cancelled = [e for e in meetings if f"?on={key(CANCELLED)}" in
                 e.find(f"{ATOM}link").get("href")]
    if cancelled:  # within the feed's four weeks
        assert cancelled[0].findtext(f"{ATOM}title").startswith("Cancelled: ")


def test_home_page_lists_federated_meetings(visitor, node):
    home = visitor().get("/").text
    assert "Harbour evening" in home
    assert f'/events/{node["peer"]}?on=' in home
    assert 'href="/events"' in home  # the calendar is in the navigation


def test_the_node_calendar_is_built_once_between_changes_and_again_after_any(
        visitor, node, run_db, monkeypatch):
    from node.web import feeds
    built = []
    monkeypatch.setattr(feeds, "calendar", lambda **kw: built.append(kw["url"])
                        or calendar_of(**kw))
    anyone = visitor()
    # The node's publishing of the new listings is a change too: measured after it.
    wait_for(lambda: run_db(lambda db: db.fetchval("SELECT count(*) FROM listing_changes"))
             == 0, "the new listings published")
    first = anyone.get("/events.ics").content
    assert anyone.get("/events.ics").content == first
    assert b"Harbour evening" in first and len(built) == 1  # the second was the first's bytes
    searched = anyone.get("/events.ics?topic=grief").content
    assert b"Grief evening" in searched and b"Harbour evening" not in searched
    assert len(built) == 2  # a saved search is its own calendar

    run_db(lambda db: hide_listing(db, PEER_EVENT))
    after = anyone.get("/events.ics").content
    assert b"Harbour evening" not in after and b"Grief evening" in after
    assert len(built) == 3


BUSY_DAY = FIRST.date() + timedelta(days=1)  # a Wednesday with nothing else on it


@pytest.mark.parametrize("few_by_day", [10**6, 0], ids=["by group", "in time order"])
def test_a_busy_day_shows_its_first_meetings_and_links_to_the_rest(
        visitor, node, run_db, facilitator_id, monkeypatch, few_by_day):
    """Both ways of reading the calendar (a few groups' meetings, or every meeting in time
    order) show the same: a month cell holds four, its agenda day all of them."""
    from node.storage import calendar as storage_calendar
    from node.web import calendar as calendar_page
    monkeypatch.setattr(storage_calendar, "FEW_BY_DAY", few_by_day)
    names = ["Fern", "Elm", "Dune", "Cove", "Birch", "Ash"]  # created in the reverse order

    async def busy(db):
        for n, name in enumerate(names):
            slug = await groups.create_group(db, draft(
                name=name, topics=("grief",) if n % 2 else ("anxiety",)), facilitator_id)
            await events.create_event(db, (await groups.get_group(db, slug)).id, weekly(
                f"{name} noon", rrule=None, starts_at=datetime.combine(BUSY_DAY, time(12))))

    run_db(busy)
    anyone = visitor()
    month = anyone.get(f"/events?month={month_of(BUSY_DAY)}").text
    cell = month_cells(month)[BUSY_DAY.isoformat()]
    shown = re.findall(r"</span> (\w+) noon</a>", cell)
    assert len(shown) == calendar_page.MONTH_PER_DAY == 4
    assert shown == sorted(shown)  # same time: by group name
    more = f'href="/events?view=agenda&amp;from={BUSY_DAY}"'
    assert more in cell and f"More meetings on {BUSY_DAY:%d %B}" in cell
    other = month_cells(month)[(BUSY_DAY + timedelta(days=1)).isoformat()]
    assert "More meetings" not in other

    agenda = anyone.get(f"/events?view=agenda&from={BUSY_DAY}").text
    day = agenda.split(f'<h3><time datetime="{BUSY_DAY}">', 1)[1].split("<h3>", 1)[0]
    assert re.findall(r"</span> (\w+) noon</a>", day) == sorted(names)
    assert "This day has more meetings" not in day

    grief = anyone.get(f"/events?month={month_of(BUSY_DAY)}&topic=grief").text
    cell = month_cells(grief)[BUSY_DAY.isoformat()]
    assert re.findall(r"</span> (\w+) noon</a>", cell) == ["Ash", "Cove", "Elm"]
    assert "More meetings" not in cell
