"""Meetings through the real app: scheduling, who sees what, RSVPs, single occurrences."""
from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest

from node.domain import MembershipStatus, RsvpStatus
from node.storage import events, groups
from tests.helpers import FIRST_MEETING, group_form, local_key, meeting_form

SLUG = "tuesday-grief-circle"
SECRET_LINK = "https://meet.example.org/room-7f3a9c"
FIRST = FIRST_MEETING


key = local_key


def shown(moment: datetime) -> str:
    """A local time as the pages print it."""
    return f"{moment:%a} {moment.day} {moment:%b %Y, %H:%M}"


def register(visitor, name: str):
    b = visitor()
    b.register(name, f"{name.lower()}@example.org")
    return b


def joined(visitor, name: str, slug: str = SLUG):
    b = register(visitor, name)
    r = b.post(f"/groups/{slug}/join", {"accept_agreements": "yes"})
    assert r.status_code == 303, r.text
    return b


@pytest.fixture
def facilitator(visitor, open_registration):
    b = register(visitor, "Fay")
    r = b.post("/groups/new", group_form(), page="/groups/new")
    assert r.status_code == 303, r.text
    return b


def schedule(b, slug: str = SLUG, **overrides: object) -> int:
    r = b.post(f"/groups/{slug}/events/new", meeting_form(**overrides),
               page=f"/groups/{slug}/events/new")
    assert r.status_code == 303, r.text
    return int(r.headers["location"].removeprefix("/events/"))


def event_count(run_db) -> int:
    return run_db(lambda db: db.fetchval("SELECT count(*) FROM events"))


# Scheduling ------------------------------------------------------------------

def test_facilitator_schedules_a_one_off_meeting(facilitator, run_db):
    event_id = schedule(facilitator, capacity="12")
    page = facilitator.get(f"/events/{event_id}").text
    for expected in ("Evening circle", "<strong>tea</strong>", shown(FIRST), "20:30",
                     "Europe/London", "Upstairs room", "12 Kirkgate", "0 going of 12",
                     'href="/groups/tuesday-grief-circle"'):
        assert expected in page
    stored = run_db(lambda db: events.get_event(db, event_id))
    assert (stored.rrule, stored.starts_at, stored.duration_minutes) == (None, FIRST, 90)
    assert f"/events/{event_id}?on=" in facilitator.get(f"/groups/{SLUG}").text


def test_facilitator_schedules_a_weekly_meeting(facilitator, run_db):
    event_id = schedule(facilitator, repeat="weekly", duration="", ends_at="21:00")
    stored = run_db(lambda db: events.get_event(db, event_id))
    weekday = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")[FIRST.weekday()]
    assert stored.rrule == f"FREQ=WEEKLY;BYDAY={weekday}"
    assert stored.duration_minutes == 120
    page = facilitator.get(f"/events/{event_id}").text
    assert shown(FIRST) in page
    for week in (1, 2, 3):
        assert f"?on={key(FIRST + timedelta(weeks=week))}".replace(":", "%3A") in page
    group_page = facilitator.get(f"/groups/{SLUG}").text
    assert group_page.count(f"/events/{event_id}?on=") >= 4


def test_edit_form_shows_the_simple_choice_and_saves_changes(facilitator, run_db):
    last = FIRST.date() + timedelta(days=60)
    event_id = schedule(facilitator, repeat="biweekly", until=str(last))
    form = facilitator.get(f"/events/{event_id}/edit").text
    assert 'value="biweekly" checked' in form
    assert f'value="{last}"' in form
    r = facilitator.post(f"/events/{event_id}/edit",
                         meeting_form(title="Renamed circle", repeat="monthly_weekday"))
    assert r.status_code == 303
    stored = run_db(lambda db: events.get_event(db, event_id))
    assert stored.title == "Renamed circle"
    assert stored.rrule.startswith("FREQ=MONTHLY;BYDAY=")


def test_advanced_rule_is_kept_as_written(facilitator, run_db):
    event_id = schedule(facilitator, rrule="rrule:freq=monthly;byday=2TU,4TU", count="6")
    stored = run_db(lambda db: events.get_event(db, event_id))
    assert stored.rrule == "FREQ=MONTHLY;BYDAY=2TU,4TU;COUNT=6"
    assert "FREQ=MONTHLY;BYDAY=2TU,4TU;COUNT=6" in facilitator.get(f"/events/{event_id}/edit").text


@pytest.mark.parametrize("overrides, field", [
    ({"title": ""}, "title"),
    ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
    ({"rrule": "FREQ=SOMETIMES;BYDAY=TU"}, "rrule"),
    ({"rrule": "FREQ=HOURLY"}, "rrule"),
    ({"format": "online", "online_url": ""}, "online_url"),
    ({"format": "hybrid", "online_url": "http://meet.example.org/plain"}, "online_url"),
    ({"capacity": "0"}, "capacity"),
    ({"starts_at": "next tuesday"}, "starts_at"),
    ({"duration": "", "ends_at": ""}, "duration"),
    ({"repeat": "weekly", "until": "2001-01-01"}, "until"),
])
def test_bad_meeting_form_shows_the_error_beside_its_field_and_stores_nothing(
    facilitator, run_db, overrides, field
):
    r = facilitator.post(f"/groups/{SLUG}/events/new", meeting_form(**overrides))
    assert r.status_code == 400
    assert f'id="e-{field}"' in r.text
    assert 'aria-invalid="true"' in r.text
    assert 'value="Upstairs room"' in r.text  # what was typed is kept
    assert event_count(run_db) == 0


def test_several_bad_fields_are_reported_together(facilitator, run_db):
    r = facilitator.post(f"/groups/{SLUG}/events/new",
                         meeting_form(title="", timezone="Nowhere", capacity="0"))
    assert r.status_code == 400
    for field in ("title", "timezone", "capacity"):
        assert f'id="e-{field}"' in r.text
    assert event_count(run_db) == 0


def test_a_wall_time_skipped_by_the_clocks_is_refused(facilitator, run_db):
    r = facilitator.post(f"/groups/{SLUG}/events/new",
                         meeting_form(starts_at="2030-03-31T01:30", timezone="Europe/London"))
    assert r.status_code == 400
    assert 'id="e-starts_at"' in r.text and "clocks go forward" in r.text
    assert event_count(run_db) == 0


# Who may do what -------------------------------------------------------------

def test_plain_member_cannot_schedule_edit_or_change_meetings(facilitator, visitor, run_db):
    event_id = schedule(facilitator, repeat="weekly")
    member = joined(visitor, "Sam")
    assert member.get(f"/groups/{SLUG}/events/new").status_code == 403
    assert member.post(f"/groups/{SLUG}/events/new", meeting_form()).status_code == 403
    assert member.get(f"/events/{event_id}/edit").status_code == 403
    assert member.post(f"/events/{event_id}/edit", meeting_form(title="Mine")).status_code == 403
    assert member.post(f"/events/{event_id}/occurrence",
                       {"on": key(FIRST), "action": "cancel"}).status_code == 403
    assert member.post(f"/events/{event_id}/cancel", {"action": "cancel"}).status_code == 403
    assert event_count(run_db) == 1
    stored = run_db(lambda db: events.get_event(db, event_id))
    assert stored.title == "Evening circle" and not stored.cancelled
    assert run_db(lambda db: events.changes_of(db, event_id)) == []
    page = member.get(f"/events/{event_id}").text
    assert "For facilitators" not in page and "Edit the series" not in page


def test_anonymous_visitor_is_sent_to_log_in_to_schedule(facilitator, visitor):
    r = visitor().get(f"/groups/{SLUG}/events/new", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_online_link_is_shown_to_members_only(facilitator, visitor):
    event_id = schedule(facilitator, format="hybrid", online_url=SECRET_LINK)
    member = joined(visitor, "Sam")
    outsider = register(visitor, "Olu")
    anonymous = visitor()
    assert SECRET_LINK in member.get(f"/events/{event_id}").text
    for b in (outsider, anonymous):
        page = b.get(f"/events/{event_id}")
        assert page.status_code == 200
        assert "Evening circle" in page.text
        assert "meet.example.org" not in page.text
    for b in (member, outsider, anonymous):
        for url in (f"/groups/{SLUG}", "/groups", "/"):
            assert "meet.example.org" not in b.get(url).text


def test_admin_who_is_not_a_member_edits_without_seeing_the_link(facilitator, admin, run_db):
    event_id = schedule(facilitator, format="online", online_url=SECRET_LINK)
    assert "meet.example.org" not in admin.get(f"/events/{event_id}").text
    form = admin.get(f"/events/{event_id}/edit")
    assert form.status_code == 200 and "meet.example.org" not in form.text
    r = admin.post(f"/events/{event_id}/edit", meeting_form(title="Retitled", format="online"))
    assert r.status_code == 303
    stored = run_db(lambda db: events.get_event(db, event_id))
    assert (stored.title, stored.online_url) == ("Retitled", SECRET_LINK)


def test_private_groups_meeting_is_404_to_non_members(visitor, open_registration, run_db):
    fay = register(visitor, "Fay")
    r = fay.post("/groups/new", group_form(visibility="private"), page="/groups/new")
    assert r.status_code == 303
    event_id = schedule(fay, format="online", online_url=SECRET_LINK)
    outsider = register(visitor, "Olu")
    assert visitor().get(f"/events/{event_id}").status_code == 404
    page = outsider.get(f"/events/{event_id}")
    assert page.status_code == 404 and "Evening circle" not in page.text
    assert outsider.post(f"/events/{event_id}/rsvp",
                         {"on": key(FIRST), "answer": "yes"}).status_code == 404

    async def add_outsider(db):
        account = await db.fetchval("SELECT id FROM accounts WHERE display_name = 'Olu'")
        group = await groups.get_group(db, SLUG)
        await groups.add_membership(db, group.id, account, MembershipStatus.ACTIVE)

    run_db(add_outsider)
    page = outsider.get(f"/events/{event_id}")
    assert page.status_code == 200 and SECRET_LINK in page.text


# RSVPs -----------------------------------------------------------------------

def rsvp(b, event_id: int, answer: str, on: datetime = FIRST):
    return b.post(f"/events/{event_id}/rsvp", {"on": key(on), "answer": answer})


def test_rsvps_fill_capacity_then_the_waitlist_in_order(facilitator, visitor, run_db):
    event_id = schedule(facilitator, capacity="2")
    ana, ben, cai = (joined(visitor, name) for name in ("Ana", "Ben", "Cai"))
    for b in (ana, ben, cai):
        r = rsvp(b, event_id, "yes")
        assert r.status_code == 303
        assert r.headers["location"] == f"/events/{event_id}?on={key(FIRST)}"
    assert "You are on the waitlist" in cai.get(f"/events/{event_id}").text
    assert "You are going" in ana.get(f"/events/{event_id}").text
    page = ben.get(f"/events/{event_id}").text
    assert "2 going of 2 · 1 on the waitlist" in page
    assert "Cai" not in page  # members see counts, never the list
    list_page = facilitator.get(f"/events/{event_id}").text
    assert list_page.index("Ana") < list_page.index("Ben") < list_page.index("Cai")

    assert rsvp(ana, event_id, "no").status_code == 303
    assert "You are going" in cai.get(f"/events/{event_id}").text
    assert "2 going of 2" in ben.get(f"/events/{event_id}").text
    answer = ana.get(f"/events/{event_id}").text.split("Are you coming?")[1]
    assert "You are" not in answer and "Join the waitlist" in answer  # full again

    assert run_db(lambda db: statuses_by_name(db, event_id)) == {
        "Ana": None, "Ben": RsvpStatus.GOING, "Cai": RsvpStatus.GOING}


async def statuses_by_name(db, event_id: int) -> dict[str, RsvpStatus | None]:
    rows = await db.fetchall("SELECT id, display_name FROM accounts")
    return {name: await events.rsvp_status(db, event_id, key(FIRST), account_id)
            for account_id, name in rows if name in ("Ana", "Ben", "Cai")}


def test_every_answer_is_confirmed_once_on_the_next_page(facilitator, visitor):
    event_id = schedule(facilitator, capacity="1")
    ana, ben = joined(visitor, "Ana"), joined(visitor, "Ben")
    day = f"{FIRST:%A} {FIRST.day} {FIRST:%B %Y}"
    rsvp(ana, event_id, "yes")
    page = ana.get(f"/events/{event_id}?on={key(FIRST)}").text
    assert f'<p class="notice" role="status">You are going on {day}.</p>' in page
    assert f"You are going on {day}" not in ana.get(f"/events/{event_id}").text  # said once
    rsvp(ben, event_id, "yes")
    assert (f"The meeting on {day} is full: you are on the waiting list"
            in ben.get(f"/events/{event_id}").text)
    rsvp(ana, event_id, "no")
    assert f"You are not going on {day}." in ana.get(f"/events/{event_id}").text


def test_an_online_meeting_is_also_shown_in_the_visitors_chosen_zone(facilitator, visitor):
    online = schedule(facilitator, format="online", online_url=SECRET_LINK,
                      timezone="Asia/Tokyo")
    in_person = schedule(facilitator)
    guest = visitor()
    page = guest.get(f"/events/{online}").text
    assert "in your time zone." not in page  # nothing chosen: the meeting's own zone only
    here = f"/events/{online}?on={key(FIRST)}"
    assert f'href="/timezone?next={quote(here, safe="/")}"' in page

    refused = guest.post("/timezone", {"zone": "Mars/Olympus_Mons", "next": here},
                         page="/timezone")
    assert refused.status_code == 400 and "Choose a time zone from the list." in refused.text
    assert "tz" not in guest.cookies

    chosen = guest.post("/timezone", {"zone": "America/New_York", "next": here},
                        page="/timezone")
    assert chosen.status_code == 303 and chosen.headers["location"] == here
    page = guest.get(here).text
    assert "Times are shown in America/New_York too." in page
    new_york = FIRST.replace(tzinfo=ZoneInfo("Asia/Tokyo")).astimezone(ZoneInfo("America/New_York"))
    assert f"That is {shown(new_york)} EST in your time zone." in page
    assert f'{shown(FIRST)}</time>' in page and '<abbr title="Asia/Tokyo">JST</abbr>' in page
    assert "in your time zone" not in guest.get(f"/events/{in_person}").text  # met in a room

    guest.post("/timezone", {"zone": "", "next": here}, page="/timezone")
    assert "in your time zone." not in guest.get(here).text


def test_only_members_can_rsvp(facilitator, visitor, run_db):
    event_id = schedule(facilitator)
    outsider = register(visitor, "Olu")
    assert rsvp(outsider, event_id, "yes").status_code == 403
    anonymous = visitor()
    r = rsvp(anonymous, event_id, "yes")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert run_db(lambda db: db.fetchval("SELECT count(*) FROM rsvps")) == 0


def test_rsvp_to_a_cancelled_or_missing_occurrence_is_400(facilitator, visitor, run_db):
    event_id = schedule(facilitator, repeat="weekly")
    second = FIRST + timedelta(weeks=1)
    r = facilitator.post(f"/events/{event_id}/occurrence", {"on": key(second), "action": "cancel"})
    assert r.status_code == 303
    member = joined(visitor, "Sam")
    assert rsvp(member, event_id, "yes", on=second).status_code == 400
    assert rsvp(member, event_id, "yes", on=FIRST + timedelta(days=1)).status_code == 400
    assert rsvp(member, event_id, "yes", on=FIRST + timedelta(hours=1)).status_code == 400
    r = member.post(f"/events/{event_id}/rsvp", {"on": "tomorrow-ish", "answer": "yes"})
    assert r.status_code == 400
    assert rsvp(member, event_id, "maybe").status_code == 400
    assert run_db(lambda db: db.fetchval("SELECT count(*) FROM rsvps")) == 0
    assert rsvp(member, event_id, "yes", on=FIRST + timedelta(weeks=2)).status_code == 303


# One occurrence, or the whole series -----------------------------------------

def test_cancelling_one_occurrence_leaves_the_others(facilitator, run_db):
    event_id = schedule(facilitator, repeat="weekly")
    weeks = [FIRST + timedelta(weeks=n) for n in range(4)]
    r = facilitator.post(f"/events/{event_id}/occurrence",
                         {"on": key(weeks[1]), "action": "cancel"})
    assert r.status_code == 303
    group_page = facilitator.get(f"/groups/{SLUG}").text
    # The cancelled meeting stays on the group page, marked as cancelled.
    cancelled_link = f"?on={key(weeks[1])}".replace(":", "%3A")
    assert "(cancelled)" in group_page.split(cancelled_link, 1)[1].split("</h3>", 1)[0]
    for week in (weeks[0], weeks[2], weeks[3]):
        assert f"?on={key(week)}".replace(":", "%3A") in group_page
    first_page = facilitator.get(f"/events/{event_id}").text
    assert shown(weeks[1]) not in first_page and shown(weeks[2]) in first_page
    cancelled_page = facilitator.get(f"/events/{event_id}?on={key(weeks[1])}").text
    assert "This meeting is cancelled" in cancelled_page
    assert "Are you coming?" not in cancelled_page

    r = facilitator.post(f"/events/{event_id}/occurrence",
                         {"on": key(weeks[1]), "action": "restore"})
    assert r.status_code == 303
    assert f"?on={key(weeks[1])}".replace(":", "%3A") in facilitator.get(f"/groups/{SLUG}").text


def test_moving_one_occurrence_shows_it_at_the_new_time(facilitator, run_db):
    event_id = schedule(facilitator, repeat="weekly")
    second, third = FIRST + timedelta(weeks=1), FIRST + timedelta(weeks=2)
    new_time = second + timedelta(days=1, hours=-1, minutes=-30)
    r = facilitator.post(f"/events/{event_id}/occurrence",
                         {"on": key(second), "action": "move", "new_start": key(new_time),
                          "new_duration": "60"})
    assert r.status_code == 303
    page = facilitator.get(f"/events/{event_id}?on={key(second)}").text
    assert shown(new_time) in page and "has moved" in page
    assert f"{new_time:%H:%M}</time>" in page
    assert f"{new_time + timedelta(hours=1):%H:%M}</time>" in page  # its own new length
    group_page = facilitator.get(f"/groups/{SLUG}").text
    assert shown(new_time) in group_page
    assert shown(second) not in group_page
    assert shown(third) in group_page and shown(FIRST) in group_page
    changes = run_db(lambda db: events.changes_of(db, event_id))
    assert [(c.original_start, c.starts_at, c.duration_minutes) for c in changes] == [
        (second, new_time, 60)
    ]


def test_bad_move_re_renders_with_the_error_and_changes_nothing(facilitator, run_db):
    event_id = schedule(facilitator, repeat="weekly")
    r = facilitator.post(f"/events/{event_id}/occurrence",
                         {"on": key(FIRST), "action": "move", "new_start": "soon"})
    assert r.status_code == 400
    assert 'id="e-new_start"' in r.text
    assert run_db(lambda db: events.changes_of(db, event_id)) == []


def test_changing_a_slot_that_is_not_in_the_series_is_400(facilitator, run_db):
    event_id = schedule(facilitator, repeat="weekly")
    for on in (key(FIRST + timedelta(days=3)), "garbage"):
        r = facilitator.post(f"/events/{event_id}/occurrence", {"on": on, "action": "cancel"})
        assert r.status_code == 400
    assert run_db(lambda db: events.changes_of(db, event_id)) == []


def test_cancelling_the_series_removes_every_meeting_until_reinstated(facilitator, run_db):
    event_id = schedule(facilitator, repeat="weekly")
    asked = facilitator.post(f"/events/{event_id}/cancel", {"action": "cancel"})
    assert asked.status_code == 200 and "Yes, cancel the series" in asked.text  # asks first
    assert run_db(lambda db: events.get_event(db, event_id)).cancelled is False
    assert facilitator.post(f"/events/{event_id}/cancel",
                            {"action": "cancel", "confirmed": "yes"}).status_code == 303
    assert f"/events/{event_id}?on=" not in facilitator.get(f"/groups/{SLUG}").text
    assert "This meeting series is cancelled" in facilitator.get(f"/events/{event_id}").text
    r = facilitator.post(f"/events/{event_id}/cancel", {"action": "reinstate"})
    assert r.status_code == 303
    assert f"/events/{event_id}?on=" in facilitator.get(f"/groups/{SLUG}").text


def test_unknown_meeting_or_slot_is_404(facilitator):
    event_id = schedule(facilitator)
    assert facilitator.get("/events/999").status_code == 404
    off_slot = key(FIRST + timedelta(hours=2))
    assert facilitator.get(f"/events/{event_id}?on={off_slot}").status_code == 404
