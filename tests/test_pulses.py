"""Check-out pulses through the real app: one anonymous answer per member, a summary for
facilitators only in whole batches of five, nothing for anyone else, erased on time."""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from node.db import parse_stamp
from node.domain import EventDraft, Format, MembershipStatus, Practice
from node.storage import accounts, events, groups, pulses
from node.storage.practice import save_practice
from tests.helpers import group_form, local_key, meeting_form

SLUG = "tuesday-grief-circle"
LONDON = ZoneInfo("Europe/London")
TABLES = ("pulse_meetings", "pulse_answers", "pulse_answered", "pulse_summaries")


def register(visitor, name: str):
    b = visitor()
    b.register(name, f"{name.lower()}@example.org")
    return b


def joined(visitor, name: str):
    b = register(visitor, name)
    assert b.post(f"/groups/{SLUG}/join", {"accept_agreements": "yes"}).status_code == 303
    return b


def group_started_by_fay(visitor):
    """Fay, logged in, who has just started the group."""
    b = register(visitor, "Fay")
    assert b.post("/groups/new", group_form(), page="/groups/new").status_code == 303
    return b


@pytest.fixture
def facilitator(visitor, open_registration):
    return group_started_by_fay(visitor)


@pytest.fixture
def group_id(facilitator, run_db) -> int:
    return run_db(lambda db: groups.get_group(db, SLUG)).id


def held(run_db, group_id: int, *, hours_ago: float = 3, rrule: str | None = None,
         title: str = "Evening circle") -> tuple[int, str]:
    """A meeting seeded in the database that started ``hours_ago``: (series id, its key)."""
    start = (datetime.now(LONDON) - timedelta(hours=hours_ago)).replace(
        tzinfo=None, second=0, microsecond=0)
    event_id = run_db(lambda db: events.create_event(db, group_id, EventDraft(
        title=title, description="", starts_at=start, duration_minutes=90,
        timezone="Europe/London", rrule=rrule, format=Format.IN_PERSON)))
    return event_id, local_key(start)


def seeded_members(run_db, group_id: int, count: int) -> list[int]:
    """Active members added straight to the database (they answer through storage)."""
    async def seed(db):
        ids = []
        for n in range(count):
            account_id = await accounts.create_account(
                db, email=f"seeded{n}@example.org", display_name=f"Seeded {n}",
                password_hash=None)
            await groups.add_membership(db, group_id, account_id, MembershipStatus.ACTIVE)
            ids.append(account_id)
        return ids
    return run_db(seed)


def answer(run_db, event_id: int, key: str, group_id: int, account_id: int, scale: int,
           word: str = "") -> bool:
    return run_db(lambda db: pulses.answer_pulse(
        db, event_id=event_id, occurrence=key, group_id=group_id, account_id=account_id,
        scale=scale, word=word, erase_after=datetime.now(LONDON) + timedelta(days=90)))


def rows(run_db, table: str) -> list[tuple]:
    return [tuple(r) for r in run_db(lambda db: db.fetchall(f"SELECT * FROM {table}"))]


def columns(run_db, table: str) -> list[str]:
    """A table's column names, in order, as a stored row of it reads."""
    return list(run_db(lambda db: db.fetchone(f"SELECT * FROM {table}")).keys())


def stored_count(run_db) -> dict[str, int]:
    return {t: run_db(lambda db, t=t: db.fetchval(f"SELECT count(*) FROM {t}")) for t in TABLES}


def page(b, event_id: int, key: str) -> str:
    return b.get(f"/events/{event_id}?on={key}").text


def summary_shown(html: str) -> int | None:
    found = re.search(r"A summary of (\d+) answers?", html)
    return int(found.group(1)) if found else None


# Answering ---------------------------------------------------------------------

def test_member_answers_once_and_cannot_change_it(facilitator, group_id, visitor, run_db):
    event_id, key = held(run_db, group_id)
    sam = joined(visitor, "Sam")
    assert "How was it for you?" in page(sam, event_id, key)
    r = sam.post(f"/events/{event_id}/pulse", {"on": key, "scale": "4", "word": "  quiet   and warm "})
    assert r.status_code == 303
    shown = sam.get(r.headers["location"]).text
    assert "Thank you. Your pulse is in, with no name on it." in shown
    assert "Thank you for your pulse on this meeting." in shown
    assert "How was it for you?" not in shown
    again = sam.post(f"/events/{event_id}/pulse", {"on": key, "scale": "1", "word": "awful"})
    assert again.status_code == 303
    assert "already left a pulse" in sam.get(again.headers["location"]).text
    assert [(r[3], r[4]) for r in rows(run_db, "pulse_answers")] == [(4, "quiet and warm")]
    assert stored_count(run_db) == {"pulse_meetings": 1, "pulse_answers": 1,
                                    "pulse_answered": 1, "pulse_summaries": 0}
    # Their own data says that they answered, never what.
    export = sam.get("/account/export").json()
    assert export["pulses_answered"] == [{"meeting": "Evening circle", "occurrence": key}]
    assert "quiet and warm" not in str(export)


def test_non_members_cannot_answer(facilitator, group_id, visitor, run_db):
    event_id, key = held(run_db, group_id)
    outsider = register(visitor, "Olu")
    assert "How was it for you?" not in page(outsider, event_id, key)
    assert outsider.post(f"/events/{event_id}/pulse",
                         {"on": key, "scale": "5"}).status_code == 403
    anonymous = visitor()
    r = anonymous.post(f"/events/{event_id}/pulse", {"on": key, "scale": "5"}, page="/groups")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert set(stored_count(run_db).values()) == {0}


def test_future_cancelled_and_long_past_meetings_take_no_pulse(facilitator, group_id, visitor,
                                                               run_db):
    sam = joined(visitor, "Sam")
    r = facilitator.post(f"/groups/{SLUG}/events/new", meeting_form(),
                         page=f"/groups/{SLUG}/events/new")
    future = int(r.headers["location"].removeprefix("/events/"))
    cancelled, cancelled_key = held(run_db, group_id, title="Cancelled circle")
    assert facilitator.post(f"/events/{cancelled}/occurrence",
                            {"on": cancelled_key, "action": "cancel"}).status_code == 303
    long_past, long_past_key = held(run_db, group_id, hours_ago=8 * 24 + 2, title="Old circle")
    for event_id, key in ((future, meeting_form()["starts_at"]), (cancelled, cancelled_key),
                          (long_past, long_past_key)):
        assert "How was it for you?" not in page(sam, event_id, key)
        r = sam.post(f"/events/{event_id}/pulse", {"on": key, "scale": "3"})
        assert r.status_code == 400, key
        assert "takes no pulse" in r.text
    assert set(stored_count(run_db).values()) == {0}


def test_a_wrong_answer_is_shown_again_with_its_values(facilitator, group_id, visitor, run_db):
    event_id, key = held(run_db, group_id)
    sam = joined(visitor, "Sam")
    r = sam.post(f"/events/{event_id}/pulse", {"on": key, "word": "tired"})
    assert r.status_code == 400
    assert "Choose how it was for you" in r.text and 'value="tired"' in r.text
    r = sam.post(f"/events/{event_id}/pulse", {"on": key, "scale": "2", "word": "x" * 41})
    assert r.status_code == 400
    assert "40 characters or fewer" in r.text
    assert 'id="f-scale-2" name="scale" value="2" checked' in r.text
    assert set(stored_count(run_db).values()) == {0}


def test_a_member_is_asked_about_the_meeting_just_held(facilitator, group_id, visitor, run_db):
    # A weekly series: one meeting six days ago, the next one tomorrow.
    event_id, _ = held(run_db, group_id, hours_ago=6 * 24, rrule="FREQ=WEEKLY")
    sam = joined(visitor, "Sam")
    upcoming = sam.get(f"/events/{event_id}").text
    link = re.search(r'href="(/events/\d+\?on=[^"]+)">How was the meeting on', upcoming)
    assert link, upcoming
    assert "How was it for you?" in sam.get(link.group(1).replace("&amp;", "&")).text


# What facilitators see -----------------------------------------------------------

def test_facilitators_see_a_summary_only_in_whole_batches_of_five(facilitator, group_id,
                                                                  visitor, run_db):
    event_id, key = held(run_db, group_id)
    members = seeded_members(run_db, group_id, 10)
    sam = joined(visitor, "Sam")
    answers = [(5, "held"), (4, "Calm"), (2, ""), (4, "tired"), (1, "alone"), (3, ""),
               (5, "brave"), (4, ""), (3, "ok"), (5, "home")]
    for count, (account_id, (scale, word)) in enumerate(zip(members, answers), start=1):
        assert answer(run_db, event_id, key, group_id, account_id, scale, word)
        html = page(facilitator, event_id, key)
        assert summary_shown(html) == ((count - count % 5) or None), count
        assert "Check-out pulse" in html
        assert summary_shown(page(sam, event_id, key)) is None  # members see no summary
        if count == 4:
            assert "tired" not in html
        if count in (5, 7):
            assert "Their words: alone, Calm, held, tired" in html
            counts = re.findall(r'<th scope="row">(\d) · [^<]+</th><td>(\d+)</td>', html)
            assert counts == [("1", "1"), ("2", "1"), ("3", "0"), ("4", "2"), ("5", "1")]
            assert "brave" not in html
        if count == 10:
            assert "Their words: alone, brave, Calm, held, home, ok, tired" in html
    stored = rows(run_db, "pulse_summaries")
    assert [r[2] for r in stored] == [10]


def test_answers_keep_no_account_and_no_time(facilitator, group_id, visitor, run_db):
    event_id, key = held(run_db, group_id)
    members = seeded_members(run_db, group_id, 3)
    for n, account_id in enumerate(members):
        answer(run_db, event_id, key, group_id, account_id, n + 1, f"w{n}")
    assert columns(run_db, "pulse_answers") == ["event_id", "occurrence", "token", "scale",
                                                "word"]
    stored = rows(run_db, "pulse_answers")
    for _, occurrence, token, _, _ in stored:
        assert occurrence == key and re.fullmatch(r"[0-9a-f]{32}", token)
    assert columns(run_db, "pulse_answered") == ["event_id", "occurrence", "account_id"]


@pytest.mark.sqlite_only  # a PostgreSQL table's rows lie where, and when, they were written
def test_answers_are_kept_in_token_order_in_the_sqlite_file(facilitator, group_id, visitor,
                                                            run_db):
    event_id, key = held(run_db, group_id)
    for n, account_id in enumerate(seeded_members(run_db, group_id, 3)):
        answer(run_db, event_id, key, group_id, account_id, n + 1, f"w{n}")
    stored = rows(run_db, "pulse_answers")
    # The rows are kept in token order: nothing of who came first.
    assert [r[2] for r in stored] == sorted(r[2] for r in stored)


def test_facilitator_is_told_when_pulses_are_erased_and_they_are(facilitator, group_id,
                                                                 visitor, run_db):
    run_db(lambda db: save_practice(db, group_id, Practice(pulse_keep_days=30)))
    event_id, key = held(run_db, group_id)
    sam = joined(visitor, "Sam")
    assert sam.post(f"/events/{event_id}/pulse", {"on": key, "scale": "4"}).status_code == 303
    erase_after = run_db(lambda db: pulses.erase_time(db, event_id, key))
    end = (datetime.strptime(key, "%Y-%m-%dT%H:%M").replace(tzinfo=LONDON)
           + timedelta(minutes=90))
    assert erase_after == end + timedelta(days=30)
    day = f"{erase_after.astimezone(LONDON).day} {erase_after.astimezone(LONDON):%b %Y}"
    assert "The pulses of this meeting are erased on" in page(facilitator, event_id, key)
    assert day in page(facilitator, event_id, key)
    assert run_db(lambda db: pulses.erase_expired(db, erase_after - timedelta(seconds=1))) == 0
    assert stored_count(run_db)["pulse_answers"] == 1
    assert run_db(lambda db: pulses.erase_expired(db, erase_after)) == 1
    assert set(stored_count(run_db).values()) == {0}


def test_erasing_takes_the_summary_and_who_answered_too(facilitator, group_id, run_db):
    event_id, key = held(run_db, group_id)
    for account_id in seeded_members(run_db, group_id, 5):
        answer(run_db, event_id, key, group_id, account_id, 3, "ok")
    assert stored_count(run_db) == {"pulse_meetings": 1, "pulse_answers": 5,
                                    "pulse_answered": 5, "pulse_summaries": 1}
    later = parse_stamp(rows(run_db, "pulse_meetings")[0][3]) + timedelta(seconds=1)
    assert run_db(lambda db: pulses.erase_expired(db, later)) == 1
    assert set(stored_count(run_db).values()) == {0}
    assert summary_shown(page(facilitator, event_id, key)) is None


def test_pulses_never_reach_anonymous_visitors_or_feeds(facilitator, group_id, visitor, run_db):
    event_id, key = held(run_db, group_id)
    for account_id in seeded_members(run_db, group_id, 5):
        answer(run_db, event_id, key, group_id, account_id, 5, "sunlit")
    assert "sunlit" in page(facilitator, event_id, key)
    anonymous = visitor()
    for path in (f"/events/{event_id}?on={key}", f"/events/{event_id}", f"/groups/{SLUG}",
                 f"/events/{event_id}.ics", f"/groups/{SLUG}/events.ics", "/feed.atom",
                 f"/groups/{SLUG}/meetings.json", "/meetings.json"):
        shown = anonymous.get(path).text
        for word in ("sunlit", "pulse", "How was it for you", "A summary of"):
            assert word not in shown, (path, word)
