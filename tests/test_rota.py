"""Shared facilitation: members of a rotating group volunteer to hold its meetings, step
back, swap turns and are reminded the day before; no one else sees who holds them."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from node.domain import Facilitation, Practice
from node.storage import accounts, groups, rota
from node.storage.practice import save_practice
from tests import test_notices
from tests.helpers import FIRST_MEETING, local_key
from tests.test_notices import (
    address,
    count_of,
    join,
    mail_to,
    register,
    schedule,
    text,
)

SLUG = "tuesday-grief-circle"
FIRST = FIRST_MEETING
SECOND = FIRST + timedelta(weeks=1)
NAMES = ("Adaora", "Benedikt", "Cyrilla")

# The fixtures of tests/test_notices.py: a node that mails (to ``smtp_server``), the clock
# of its notice worker, and Fay's open group.
app, clock, node_open, fay = (test_notices.app, test_notices.clock, test_notices.node_open,
                              test_notices.fay)


def set_facilitation(run_db, facilitation: Facilitation) -> None:
    async def save(db):
        group = await groups.get_group(db, SLUG)
        await save_practice(db, group.id, Practice(facilitation=facilitation))
    run_db(save)


@pytest.fixture
def rotating(fay, visitor, run_db):
    """A rotating group with a weekly meeting and three members: (event id, members)."""
    set_facilitation(run_db, Facilitation.ROTATING)
    event_id = schedule(fay, repeat="weekly")
    members = {}
    for name in NAMES:
        members[name] = register(visitor, name)
        join(members[name])
    return event_id, members


def act(b, event_id: int, action: str, on: datetime = FIRST, **fields: str):
    return b.post(f"/events/{event_id}/rota", {"action": action, "on": local_key(on),
                                               **fields}, page=f"/events/{event_id}")


def done(response) -> None:
    assert response.status_code == 303, response.text


def turns(run_db) -> set[tuple[int, str, str, str, int]]:
    """Every turn stored: (event, occurrence, role, holder's name, swap wanted)."""
    rows = run_db(lambda db: db.fetchall(
        "SELECT h.event_id, h.occurrence, h.role, a.display_name, h.swap_wanted"
        " FROM meeting_holders h JOIN accounts a ON a.id = h.account_id"))
    return {tuple(row) for row in rows}


def page(b, event_id: int, on: datetime = FIRST) -> str:
    return b.get(f"/events/{event_id}?on={local_key(on)}").text.replace("&#39;", "'")


# Volunteering -------------------------------------------------------------------------

def test_members_volunteer_to_hold_and_co_hold_and_can_step_back(rotating, run_db):
    event_id, m = rotating
    ada, ben, cy = (m[name] for name in NAMES)
    first = local_key(FIRST)
    assert "I'll hold this meeting" in page(ada, event_id)
    done(act(ada, event_id, "hold"))
    assert "Thank you: you hold the meeting on" in page(ada, event_id)
    done(act(ben, event_id, "co_hold"))
    assert turns(run_db) == {(event_id, first, "holder", "Adaora", 0),
                             (event_id, first, "co_holder", "Benedikt", 0)}

    shown = page(cy, event_id)
    assert "Adaora" in shown and "Benedikt" in shown
    assert "I'll hold this meeting" not in shown and "I'll co-hold" not in shown
    done(act(cy, event_id, "hold"))  # taken: nothing changes, and Cyrilla is told
    assert "changed while you looked" in page(cy, event_id)
    done(act(ada, event_id, "co_hold"))  # one turn a meeting each
    assert len(turns(run_db)) == 2

    done(act(ada, event_id, "step_back"))
    assert "You stepped back from the meeting" in page(ada, event_id)
    assert turns(run_db) == {(event_id, first, "co_holder", "Benedikt", 0)}
    assert "I'll hold this meeting" in page(cy, event_id)


def test_no_one_but_a_member_can_hold_a_meeting_and_nothing_is_stored(rotating, visitor,
                                                                       run_db):
    event_id, _ = rotating
    stranger = register(visitor, "Stranger")
    r = act(stranger, event_id, "hold")
    assert r.status_code == 403 and "Only members of this group" in r.text
    anonymous = visitor()
    r = act(anonymous, event_id, "hold")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert turns(run_db) == set()
    assert "Who holds this meeting" not in page(stranger, event_id)


def test_a_past_or_cancelled_meeting_has_no_turns_to_take(rotating, fay, run_db):
    event_id, m = rotating
    fay.post(f"/events/{event_id}/occurrence", {"on": local_key(FIRST), "action": "cancel"})
    r = act(m["Adaora"], event_id, "hold")
    assert r.status_code == 400
    r = act(m["Adaora"], event_id, "hold", on=FIRST - timedelta(weeks=2))  # not a slot
    assert r.status_code == 400
    assert turns(run_db) == set()


def test_a_facilitator_led_group_shows_no_rota_and_refuses_its_forms(fay, visitor, run_db):
    event_id = schedule(fay, repeat="weekly")
    ada = register(visitor, "Adaora")
    join(ada)
    assert "Who holds" not in ada.get(f"/groups/{SLUG}").text
    assert "Who holds" not in page(ada, event_id)
    r = act(ada, event_id, "hold")
    assert r.status_code == 403 and "does not run a rota" in r.text
    assert turns(run_db) == set()

    # Turns kept from a rota the group stopped are not shown nor changed either.
    set_facilitation(run_db, Facilitation.ROTATING)
    done(act(ada, event_id, "hold"))
    set_facilitation(run_db, Facilitation.FACILITATOR_LED)
    assert "Adaora" not in fay.get(f"/groups/{SLUG}").text
    assert act(ada, event_id, "step_back").status_code == 403
    assert len(turns(run_db)) == 1


def test_the_group_page_shows_members_who_holds_the_next_meetings(rotating, fay, run_db):
    event_id, m = rotating
    done(act(m["Adaora"], event_id, "hold"))
    done(act(m["Benedikt"], event_id, "hold", on=SECOND))
    done(act(m["Benedikt"], event_id, "ask_swap", on=SECOND))
    shown = m["Cyrilla"].get(f"/groups/{SLUG}").text
    assert "Who holds the next meetings" in shown
    assert "Adaora" in shown and "Benedikt" in shown and "would like to swap" in shown
    assert shown.count("No one yet") >= 6  # four more meetings, and co-holders
    assert f'href="/events/{event_id}?on={local_key(FIRST + timedelta(weeks=2))}' \
           .replace(":", "%3A") in shown
    assert "Benedikt would like to swap this turn" in page(m["Cyrilla"], event_id, SECOND)


# Swaps --------------------------------------------------------------------------------

def test_a_turn_offered_for_a_swap_is_exchanged_for_the_takers_and_the_holder_is_told(
        rotating, run_db, smtp_server):
    event_id, m = rotating
    ada, ben = m["Adaora"], m["Benedikt"]
    first, second = local_key(FIRST), local_key(SECOND)
    done(act(ada, event_id, "hold"))
    done(act(ben, event_id, "hold", on=SECOND))
    done(act(ada, event_id, "ask_swap"))
    assert (event_id, first, "holder", "Adaora", 1) in turns(run_db)
    assert "The group's members can see that you would like to swap" in page(ada, event_id)
    offered = page(ben, event_id)
    assert "Adaora would like to swap this turn" in offered
    assert f'value="{event_id}|{second}|holder"' in offered and "just take this turn" in offered

    done(act(ben, event_id, "take", role="holder", give=f"{event_id}|{second}|holder"))
    assert turns(run_db) == {(event_id, first, "holder", "Benedikt", 0),
                             (event_id, second, "holder", "Adaora", 0)}
    assert "The turns are swapped" in page(ben, event_id)
    told = mail_to(smtp_server, "Adaora", "Swapped: your turn at Evening circle")
    assert "Benedikt took your turn" in text(told)
    assert "In exchange, you hold their meeting now" in text(told)
    assert count_of(smtp_server, "Benedikt", "Swapped") == 0


def test_a_turn_can_just_be_taken_and_a_swap_request_withdrawn(rotating, run_db, smtp_server):
    event_id, m = rotating
    ada, ben, cy = (m[name] for name in NAMES)
    first = local_key(FIRST)
    done(act(ada, event_id, "hold"))
    done(act(ada, event_id, "ask_swap"))
    done(act(ada, event_id, "keep"))
    assert turns(run_db) == {(event_id, first, "holder", "Adaora", 0)}
    done(act(cy, event_id, "take", role="holder"))  # no longer offered
    assert turns(run_db) == {(event_id, first, "holder", "Adaora", 0)}

    done(act(ada, event_id, "ask_swap"))
    done(act(cy, event_id, "take", role="holder", give=""))
    assert turns(run_db) == {(event_id, first, "holder", "Cyrilla", 0)}
    assert "Cyrilla took your turn" in text(mail_to(smtp_server, "Adaora", "Taken: your turn"))
    done(act(ben, event_id, "take", role="holder"))  # taken already
    assert turns(run_db) == {(event_id, first, "holder", "Cyrilla", 0)}


def test_a_member_cannot_give_a_turn_that_is_not_theirs(rotating, run_db):
    event_id, m = rotating
    ada, ben, cy = (m[name] for name in NAMES)
    done(act(ada, event_id, "hold"))
    done(act(cy, event_id, "hold", on=SECOND))
    done(act(ada, event_id, "ask_swap"))
    done(act(ben, event_id, "take", role="holder", give=f"{event_id}|{local_key(SECOND)}|holder"))
    assert {(t[1], t[3]) for t in turns(run_db)} == {(local_key(FIRST), "Adaora"),
                                                      (local_key(SECOND), "Cyrilla")}


def test_a_facilitator_takes_a_holder_off_after_confirming(rotating, fay, run_db, smtp_server):
    event_id, m = rotating
    done(act(m["Adaora"], event_id, "hold"))
    assert "Take Adaora off this turn" in page(fay, event_id)
    assert "Take Adaora off" not in page(m["Benedikt"], event_id)
    asked = act(fay, event_id, "remove", role="holder")
    assert asked.status_code == 200 and "Yes, take them off" in asked.text
    assert len(turns(run_db)) == 1
    assert act(m["Benedikt"], event_id, "remove", role="holder",
               confirmed="yes").status_code == 403
    done(act(fay, event_id, "remove", role="holder", confirmed="yes"))
    assert turns(run_db) == set()
    told = mail_to(smtp_server, "Adaora", "You no longer hold Evening circle")
    assert "A facilitator of Tuesday Grief Circle took you off holding" in text(told)


# The day before -----------------------------------------------------------------------

def test_holders_are_reminded_once_the_day_before_and_not_of_a_cancelled_meeting(
        rotating, fay, run_db, smtp_server, clock):
    event_id, m = rotating
    ada, ben = m["Adaora"], m["Benedikt"]
    other = schedule(fay, title="Walk and talk", starts_at=local_key(FIRST + timedelta(
        minutes=15)))
    done(act(ada, event_id, "hold"))
    done(act(ben, event_id, "co_hold"))
    done(act(m["Cyrilla"], other, "hold", on=FIRST + timedelta(minutes=15)))
    fay.post(f"/events/{other}/occurrence",
             {"on": local_key(FIRST + timedelta(minutes=15)), "action": "cancel"})
    starts = FIRST.replace(tzinfo=ZoneInfo("Europe/London")).astimezone(UTC)

    clock[0] = starts - timedelta(hours=24, minutes=30)
    reminder = mail_to(smtp_server, "Adaora", "Tomorrow you hold: Evening circle")
    assert "you said you would hold this meeting of Tuesday Grief Circle" in text(reminder)
    assert f"{FIRST:%H:%M}" in text(reminder)
    co = mail_to(smtp_server, "Benedikt", "Tomorrow you co-hold: Evening circle")
    assert "co-hold" in text(co)

    clock[0] = starts - timedelta(hours=24, minutes=10)  # a later scan finds nothing new
    done(act(m["Cyrilla"], event_id, "hold", on=SECOND))
    done(act(m["Cyrilla"], event_id, "ask_swap", on=SECOND))
    done(act(ada, event_id, "take", role="holder", on=SECOND))  # a notice after the scan
    mail_to(smtp_server, "Cyrilla", "Taken: your turn")
    assert count_of(smtp_server, "Adaora", "Tomorrow") == 1
    assert count_of(smtp_server, "Benedikt", "Tomorrow") == 1
    assert count_of(smtp_server, "Cyrilla", "Tomorrow") == 0
    assert run_db(lambda db: db.fetchval(
        "SELECT count(*) FROM meeting_holders WHERE reminded_for IS NOT NULL")) == 2


def test_a_reminder_is_recorded_once_a_turn_only_the_day_before(rotating, run_db):
    event_id, m = rotating
    done(act(m["Adaora"], event_id, "hold"))
    starts = FIRST.replace(tzinfo=ZoneInfo("Europe/London")).astimezone(UTC)
    for ahead, recorded in ((timedelta(hours=26), 0), (timedelta(hours=24, minutes=30), 1),
                            (timedelta(hours=24, minutes=10), 0), (timedelta(hours=23), 0)):
        assert run_db(lambda db, at=starts - ahead: rota.record_due_reminders(db, at)) \
            == recorded, ahead
    assert run_db(lambda db: db.fetchval("SELECT reminded_for FROM meeting_holders")) \
        == starts.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_the_reminder_is_a_kind_members_can_turn_off(rotating):
    _, m = rotating
    shown = m["Adaora"].get("/account/mail").text
    assert 'value="holding_reminder" checked' in shown
    assert "A reminder the day before a meeting you hold or co-hold" in shown


# Leaving, and privacy -----------------------------------------------------------------

def test_a_member_who_leaves_gives_up_their_turns(rotating, run_db):
    event_id, m = rotating
    done(act(m["Adaora"], event_id, "hold"))
    done(act(m["Adaora"], event_id, "hold", on=SECOND))
    done(act(m["Benedikt"], event_id, "co_hold"))
    done(m["Adaora"].post(f"/groups/{SLUG}/leave", page=f"/groups/{SLUG}"))
    assert turns(run_db) == {(event_id, local_key(FIRST), "co_holder", "Benedikt", 0)}

    ben_id = run_db(lambda db: accounts.find_account(db, address("Benedikt"))).id
    run_db(lambda db: accounts.delete_account(db, ben_id))
    assert turns(run_db) == set()


def test_visitors_peers_and_non_members_never_see_who_holds_a_meeting(rotating, visitor):
    event_id, m = rotating
    done(act(m["Adaora"], event_id, "hold"))
    done(act(m["Benedikt"], event_id, "co_hold"))
    done(act(m["Adaora"], event_id, "ask_swap"))
    assert "Adaora" in page(m["Cyrilla"], event_id)
    pages = [f"/groups/{SLUG}", f"/events/{event_id}", f"/events/{event_id}?on={local_key(FIRST)}",
             f"/events/{event_id}.ics", f"/groups/{SLUG}/events.ics", "/events.ics", "/feed.atom",
             "/meetings.json", f"/groups/{SLUG}/meetings.json", f"/groups/{SLUG}/embed.html"]
    documents = [f"/groups/{SLUG}", f"/groups/{SLUG}/outbox", f"/events/{event_id}"]
    as_peer = {"Accept": "application/activity+json"}
    for who in (visitor(), register(visitor, "Stranger")):
        answers = [who.get(url) for url in pages] + [who.get(url, headers=as_peer)
                                                     for url in documents]
        for url, r in zip(pages + documents, answers, strict=True):
            assert r.status_code == 200, url
            for shown in ("Adaora", "Benedikt", "would like to swap", "Who holds"):
                assert shown not in r.text, (url, shown)
    assert "activity+json" in answers[-1].headers["content-type"]
