"""Themes for meetings, through the real app: members propose and support them, a
facilitator or the support itself sets the theme, and a theme leaves the group (pages
for anyone, peers) only when the group made its themes public. Proposals and support
never do, and no one is shown who supported what."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from federation.objects import ObjectError, parse_themes
from federation.runner import process_inbox
from node.db import parse_stamp
from node.domain import EventDraft, Format, Practice, ThemeChoice
from node.storage import accounts, groups
from node.storage import remote as remote_store
from node.storage import themes as store
from node.storage.practice import save_practice
from tests.helpers import (
    FIRST_MEETING,
    draft,
    group_form,
    local_key,
    publish_listing,
    run_on,
)
from tests.test_events import SLUG, joined, register, schedule
from tests.test_ignoring import actor, deliver, meeting, remote, sent  # noqa: F401
from tests.test_ignoring import node as inbox_node  # noqa: F401

KEY = local_key(FIRST_MEETING)
AP = {"Accept": "application/activity+json"}


@pytest.fixture
def fay(visitor, open_registration):
    """The facilitator of an open public group."""
    b = register(visitor, "Fay")
    assert b.post("/groups/new", group_form(), page="/groups/new").status_code == 303
    return b


@pytest.fixture
def event_id(fay) -> int:
    """A one-off meeting a week ahead."""
    return schedule(fay)


@pytest.fixture
def ada(visitor, fay):
    return joined(visitor, "Ada")


@pytest.fixture
def ben(visitor, fay):
    return joined(visitor, "Ben")


def page(event_id: int) -> str:
    return f"/events/{event_id}?on={KEY}"


def propose(b, event_id: int, theme: str, signed: bool = False):
    data = {"on": KEY, "theme": theme, **({"signed": "yes"} if signed else {})}
    return b.post(f"/events/{event_id}/themes", data, page=page(event_id))


def support(b, event_id: int, proposal: int | str, action: str = "support"):
    return b.post(f"/events/{event_id}/themes/support",
                  {"on": KEY, "proposal": str(proposal), "action": action}, page=page(event_id))


def choose(b, event_id: int, **fields: str):
    return b.post(f"/events/{event_id}/theme", {"on": KEY, **fields}, page=page(event_id))


def proposal_ids(run_db, event_id: int) -> dict[str, int]:
    rows = run_db(lambda db: db.fetchall(
        "SELECT theme, id FROM theme_proposals WHERE event_id = ?", (event_id,)))
    return {r["theme"]: r["id"] for r in rows}


def votes(run_db) -> list[tuple[str, str]]:
    """(voter's name, theme) of each vote stored."""
    rows = run_db(lambda db: db.fetchall(
        "SELECT a.display_name, p.theme FROM theme_votes v JOIN accounts a"
        " ON a.id = v.account_id JOIN theme_proposals p ON p.id = v.proposal_id"
        " ORDER BY a.display_name"))
    return [(r[0], r[1]) for r in rows]


def count(run_db, table: str) -> int:
    return run_db(lambda db: db.fetchval(f"SELECT count(*) FROM {table}"))


def set_practice(run_db, **choices) -> None:
    group = run_db(lambda db: groups.get_group(db, SLUG))
    run_db(lambda db: save_practice(db, group.id, Practice(**choices)))


# Proposing and supporting ------------------------------------------------------------

def test_members_propose_support_and_move_their_support(event_id, ada, ben, run_db):
    assert propose(ada, event_id, "  talking   to family ").status_code == 303
    assert propose(ben, event_id, "Sleep").status_code == 303
    assert propose(ben, event_id, "anger").status_code == 303
    ids = proposal_ids(run_db, event_id)
    assert set(ids) == {"talking to family", "Sleep", "anger"}

    shown = ada.get(page(event_id)).text
    # Alphabetically, whatever the case and whoever proposed first.
    assert shown.index("anger") < shown.index("Sleep") < shown.index("talking to family")

    assert support(ada, event_id, ids["Sleep"]).status_code == 303
    assert support(ben, event_id, ids["Sleep"]).status_code == 303
    assert votes(run_db) == [("Ada", "Sleep"), ("Ben", "Sleep")]
    assert "You support this theme." in ada.get(page(event_id)).text

    assert support(ada, event_id, ids["anger"]).status_code == 303  # the vote moves
    assert votes(run_db) == [("Ada", "anger"), ("Ben", "Sleep")]
    assert support(ada, event_id, ids["anger"], action="withdraw").status_code == 303
    assert votes(run_db) == [("Ben", "Sleep")]
    assert "You support this theme." not in ada.get(page(event_id)).text


def test_a_member_withdraws_only_their_own_proposal(event_id, ada, ben, run_db):
    propose(ada, event_id, "sleep")
    proposal = proposal_ids(run_db, event_id)["sleep"]
    support(ben, event_id, proposal)
    withdraw = {"on": KEY, "proposal": str(proposal)}
    assert ben.post(f"/events/{event_id}/themes/withdraw", withdraw,
                    page=page(event_id)).status_code == 400
    assert proposal_ids(run_db, event_id) == {"sleep": proposal}
    assert "Withdraw my proposal" in ada.get(page(event_id)).text
    assert "Withdraw my proposal" not in ben.get(page(event_id)).text
    assert ada.post(f"/events/{event_id}/themes/withdraw", withdraw,
                    page=page(event_id)).status_code == 303
    assert proposal_ids(run_db, event_id) == {} and votes(run_db) == []


@pytest.mark.parametrize("theme, message", [
    ("", "Enter a theme."),
    ("x" * 81, "Keep a theme to 80 characters or fewer"),
])
def test_a_theme_is_required_and_short(event_id, ada, run_db, theme, message):
    r = propose(ada, event_id, theme)
    assert r.status_code == 400 and message in r.text
    assert 'aria-invalid="true"' in r.text
    assert count(run_db, "theme_proposals") == 0


def test_the_same_theme_twice_is_refused_politely(event_id, ada, ben, run_db):
    propose(ada, event_id, "Sleep")
    r = propose(ben, event_id, "sleep")
    assert r.status_code == 400
    assert "That theme is already proposed for this meeting. You can support it instead." in r.text
    assert 'value="sleep"' in r.text  # what was typed is kept
    assert count(run_db, "theme_proposals") == 1


def test_a_member_proposes_at_most_three_themes(event_id, ada, run_db):
    for theme in ("sleep", "anger", "family"):
        assert propose(ada, event_id, theme).status_code == 303
    r = propose(ada, event_id, "work")
    assert r.status_code == 400 and "You have proposed 3 themes for this meeting" in r.text
    assert count(run_db, "theme_proposals") == 3
    assert "You cannot propose more themes for this meeting." in ada.get(page(event_id)).text


def test_a_meeting_has_at_most_twenty_proposals(event_id, ada, run_db):
    async def twenty(db):
        for n in range(7):
            account = await accounts.create_account(db, email=None, display_name=f"M{n}",
                                                    password_hash=None)
            for k in range(3):
                if n * 3 + k < store.PER_MEETING:
                    assert await store.propose(db, event_id, KEY, account, f"theme {n}-{k}",
                                               False) is None
    run_db(twenty)
    r = propose(ada, event_id, "one more")
    assert r.status_code == 400 and "already has 20 proposed themes" in r.text
    assert count(run_db, "theme_proposals") == 20


def test_non_members_cannot_propose_support_or_set(event_id, ada, visitor, run_db):
    propose(ada, event_id, "sleep")
    proposal = proposal_ids(run_db, event_id)["sleep"]
    outsider = register(visitor, "Olu")
    assert propose(outsider, event_id, "mine").status_code == 403
    assert support(outsider, event_id, proposal).status_code == 403
    assert choose(outsider, event_id, own_theme="mine").status_code == 403
    assert choose(ada, event_id, own_theme="mine").status_code == 403  # members do not set
    anonymous = visitor()
    r = propose(anonymous, event_id, "mine")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert proposal_ids(run_db, event_id) == {"sleep": proposal}
    assert votes(run_db) == [] and count(run_db, "meeting_themes") == 0
    for viewer in (outsider, anonymous):
        shown = viewer.get(page(event_id)).text
        assert "sleep" not in shown and 'id="theme"' not in shown


def test_a_meeting_of_a_private_group_is_404_for_outsiders(event_id, fay, ada, visitor,
                                                           run_db):
    fay.post(f"/groups/{SLUG}/edit", group_form(visibility="private"),
             page=f"/groups/{SLUG}/edit")
    assert run_db(lambda db: groups.get_group(db, SLUG)).members_only
    outsider = register(visitor, "Olu")
    assert propose(outsider, event_id, "mine").status_code == 404
    assert count(run_db, "theme_proposals") == 0


def test_a_proposal_for_no_meeting_of_the_series_is_refused(event_id, ada, run_db):
    r = ada.post(f"/events/{event_id}/themes", {"on": "2001-01-01T19:00", "theme": "x"},
                 page=page(event_id))
    assert r.status_code == 400 and count(run_db, "theme_proposals") == 0


# Who sees what ------------------------------------------------------------------------

def test_support_is_counted_only_once_the_theme_is_set(event_id, fay, ada, ben, run_db):
    propose(ada, event_id, "sleep")
    propose(ben, event_id, "anger")
    ids = proposal_ids(run_db, event_id)
    support(ada, event_id, ids["sleep"])
    support(ben, event_id, ids["sleep"])
    for viewer in (ada, ben, fay):
        assert "supported it" not in viewer.get(page(event_id)).text
    assert choose(fay, event_id, proposal=str(ids["sleep"])).status_code == 303
    for viewer in (ada, ben, fay):
        shown = viewer.get(page(event_id)).text
        assert "2 members supported it" in shown and "0 members supported it" in shown
        # Nobody, facilitator included, is shown who supported what.
        assert "Ben" not in shown.split('id="theme"')[1].split("</section>")[0]


def test_an_unsigned_proposal_never_names_its_proposer(event_id, fay, ada, ben, run_db):
    propose(ada, event_id, "sleep")
    propose(ben, event_id, "anger", signed=True)
    for viewer in (ben, fay):
        section = viewer.get(page(event_id)).text.split('id="theme"')[1]
        assert "Ada" not in section
        assert "(proposed by Ben)" in section
    assert "(proposed by Ben)" in ada.get(page(event_id)).text


def test_a_facilitator_sets_the_theme_which_closes_proposals(event_id, fay, ada, ben, run_db):
    propose(ada, event_id, "sleep")
    r = choose(fay, event_id, own_theme="")
    assert r.status_code == 400 and "Enter the theme." in r.text
    assert choose(fay, event_id, own_theme="  First   year after a loss ").status_code == 303
    assert run_db(lambda db: store.meeting_theme(db, event_id, KEY)) == \
        "First year after a loss"
    for viewer in (ada, ben, fay):
        assert "<strong>First year after a loss</strong>" in viewer.get(page(event_id)).text
    assert propose(ben, event_id, "anger").status_code == 400
    assert support(ben, event_id, proposal_ids(run_db, event_id)["sleep"]).status_code == 400
    assert count(run_db, "theme_proposals") == 1 and votes(run_db) == []
    member_page = ben.get(f"/groups/{SLUG}").text
    assert "Themes of the next meetings" in member_page
    assert "Theme: First year after a loss" in member_page

    assert choose(fay, event_id, action="clear").status_code == 303
    assert run_db(lambda db: store.meeting_theme(db, event_id, KEY)) is None
    assert propose(ben, event_id, "anger").status_code == 303


def test_the_group_page_counts_open_proposals_for_members(event_id, ada, visitor):
    propose(ada, event_id, "sleep")
    propose(ada, event_id, "anger")
    assert "2 themes proposed" in ada.get(f"/groups/{SLUG}").text
    assert "themes proposed" not in visitor().get(f"/groups/{SLUG}").text


# Set by support ------------------------------------------------------------------------

@pytest.mark.parametrize("tallies, chosen", [
    ([], None),
    ([("sleep", 0)], "sleep"),
    ([("sleep", 1), ("anger", 2)], "anger"),
    ([("sleep", 2), ("Anger", 2), ("family", 1)], "Anger"),
    ([("b", 3), ("a", 3), ("C", 3)], "a"),
])
def test_the_most_supported_theme_wins_ties_alphabetically(tallies, chosen):
    assert store.most_supported(tallies) == chosen


@given(st.lists(st.tuples(st.text(min_size=1, max_size=8), st.integers(0, 30)), min_size=1,
                unique_by=lambda t: t[0]))
def test_the_chosen_theme_has_the_most_support(tallies):
    chosen = store.most_supported(tallies)
    best = max(n for _, n in tallies)
    assert dict(tallies)[chosen] == best
    assert store.most_supported(list(reversed(tallies))) == chosen  # order of arrival is moot


def test_settle_sets_the_most_supported_at_lead_time_and_not_before(event_id, ada, ben, fay,
                                                                    run_db):
    set_practice(run_db, theme_choice=ThemeChoice.MOST_SUPPORTED, theme_lead_hours=48)
    propose(ada, event_id, "sleep")
    propose(ben, event_id, "anger")
    ids = proposal_ids(run_db, event_id)
    support(ada, event_id, ids["sleep"])
    support(ben, event_id, ids["sleep"])
    support(fay, event_id, ids["anger"])
    start = parse_stamp(run_db(lambda db: db.fetchval(
        "SELECT starts_utc FROM occurrences WHERE event_id = ?", (event_id,))))

    assert run_db(lambda db: store.settle_due(db, start - timedelta(hours=49))) == 0
    assert run_db(lambda db: store.meeting_theme(db, event_id, KEY)) is None
    assert run_db(lambda db: store.settle_due(db, start - timedelta(hours=47))) == 1
    assert run_db(lambda db: store.meeting_theme(db, event_id, KEY)) == "sleep"
    assert run_db(lambda db: store.settle_due(db, start - timedelta(hours=46))) == 0
    assert "2 members supported it" in ada.get(page(event_id)).text


def test_settle_leaves_groups_whose_facilitator_chooses(event_id, ada, run_db):
    propose(ada, event_id, "sleep")
    start = parse_stamp(run_db(lambda db: db.fetchval(
        "SELECT starts_utc FROM occurrences WHERE event_id = ?", (event_id,))))
    assert run_db(lambda db: store.settle_due(db, start - timedelta(hours=1))) == 0
    assert run_db(lambda db: store.meeting_theme(db, event_id, KEY)) is None


def test_settle_with_nothing_proposed_gives_no_theme_and_closes(event_id, ada, run_db):
    set_practice(run_db, theme_choice=ThemeChoice.MOST_SUPPORTED, theme_lead_hours=300)
    start = parse_stamp(run_db(lambda db: db.fetchval("SELECT starts_utc FROM occurrences")))
    assert run_db(lambda db: store.settle_due(db, start - timedelta(hours=1))) == 1
    assert run_db(lambda db: store.meeting_theme(db, event_id, KEY)) == store.NO_THEME
    assert "This meeting has no theme." in ada.get(page(event_id)).text


@pytest.mark.parametrize("choice", list(ThemeChoice))
def test_proposals_and_support_close_at_lead_time_and_the_totals_show(event_id, ada, fay,
                                                                      run_db, choice):
    set_practice(run_db, theme_choice=choice, theme_lead_hours=48)
    propose(ada, event_id, "sleep")
    support(ada, event_id, proposal_ids(run_db, event_id)["sleep"])
    assert "member supported it" not in fay.get(page(event_id)).text
    set_practice(run_db, theme_choice=choice, theme_lead_hours=300)  # the meeting is closer
    r = propose(ada, event_id, "anger")
    assert r.status_code == 400 and count(run_db, "theme_proposals") == 1
    assert "can no longer be proposed" in ada.get(page(event_id)).text
    # All at once, and before anything is chosen: a facilitator chooses by them.
    assert "1 member supported it" in fay.get(page(event_id)).text
    assert run_db(lambda db: store.meeting_theme(db, event_id, KEY)) is None


def test_clearing_after_lead_time_leaves_no_theme_rather_than_settling_again(event_id, fay,
                                                                             ada, run_db):
    set_practice(run_db, theme_choice=ThemeChoice.MOST_SUPPORTED, theme_lead_hours=300)
    assert choose(fay, event_id, own_theme="Sleep").status_code == 303
    assert choose(fay, event_id, action="clear").status_code == 303
    assert run_db(lambda db: store.meeting_theme(db, event_id, KEY)) == store.NO_THEME
    start = parse_stamp(run_db(lambda db: db.fetchval("SELECT starts_utc FROM occurrences")))
    assert run_db(lambda db: store.settle_due(db, start - timedelta(hours=1))) == 0
    assert "This meeting has no theme." in ada.get(page(event_id)).text


# Public or not ---------------------------------------------------------------------

def test_a_private_theme_never_reaches_visitors_feeds_or_peers(event_id, fay, ada, visitor,
                                                               run_db):
    propose(ada, event_id, "Sleep and worry")
    choose(fay, event_id, own_theme="Sleep and worry")
    anonymous = visitor()
    assert "Sleep and worry" not in anonymous.get(page(event_id)).text
    assert "Sleep and worry" not in anonymous.get(f"/groups/{SLUG}").text
    document = anonymous.get(f"/events/{event_id}", headers=AP).json()
    assert "themes" not in document["recurrence"] and "Sleep and worry" not in json.dumps(
        document)
    for url in ("/events.ics", "/feed.atom", f"/events/{event_id}.ics", "/meetings.json",
                f"/groups/{SLUG}/events.ics", f"/groups/{SLUG}/meetings.json",
                f"/groups/{SLUG}/embed.html", f"/events/{event_id}/note"):
        assert "Sleep and worry" not in anonymous.get(url, headers=AP if "note" in url
                                                      else {}).text, url


def test_a_public_theme_is_shown_to_anyone_and_sent_to_peers(event_id, fay, ada, visitor,
                                                             run_db):
    set_practice(run_db, themes_public=True)
    propose(ada, event_id, "Proposed only")
    choose(fay, event_id, own_theme="Sleep and worry")
    anonymous = visitor()
    shown = anonymous.get(page(event_id)).text
    assert "<strong>Sleep and worry</strong>" in shown and "Proposed only" not in shown
    assert "Theme: Sleep and worry" in anonymous.get(f"/groups/{SLUG}").text
    document = anonymous.get(f"/events/{event_id}", headers=AP).json()
    assert document["recurrence"]["themes"] == [{"original": KEY, "name": "Sleep and worry"}]
    assert "Proposed only" not in json.dumps(document)
    note = anonymous.get(f"/events/{event_id}/note", headers=AP).text
    assert "Sleep and worry" not in note
    for url in ("/events.ics", "/feed.atom", f"/events/{event_id}.ics"):
        assert "Sleep and worry" not in anonymous.get(url).text, url
    # What this node sends, its peers read back.
    assert parse_themes(document) == [(KEY, "Sleep and worry")]


def test_setting_a_public_theme_records_a_change_for_peers(data_dir, admin_link):
    series = EventDraft(title="Evening circle", description="", starts_at=FIRST_MEETING,
                        duration_minutes=90, timezone="Europe/London", rrule=None,
                        format=Format.IN_PERSON, place="", address="", online_url="",
                        capacity=None)

    async def scenario(db):
        group_id, (event,) = await publish_listing(db, draft(), series)

        async def changes() -> int:
            return await db.fetchval(
                "SELECT count(*) FROM listing_changes WHERE kind = 'event' AND local_id = ?",
                (event,))
        before = await changes()
        await store.set_theme(db, event, KEY, "private")
        private = await changes()
        await save_practice(db, group_id, Practice(themes_public=True))
        flipped = await changes()
        await store.set_theme(db, event, KEY, "public")
        await store.clear_theme(db, event, KEY)
        return before, private, flipped, await changes()

    before, private, flipped, after = run_on(data_dir / "grassroots.db", scenario)
    assert private == before and flipped == before + 1 and after == flipped + 2


# A peer's themes --------------------------------------------------------------------

def event_document(themes) -> dict:
    return {"type": "Event", "recurrence": {"themes": themes}}


def test_incoming_themes_are_read_strictly():
    good = [{"original": KEY, "name": "  Sleep  "}, {"original": "2030-01-02T18:30",
                                                      "name": "<b>Family</b>"}]
    assert parse_themes(event_document(good)) == [(KEY, "Sleep"),
                                                  ("2030-01-02T18:30", "Family")]
    assert parse_themes({"type": "Event"}) == []
    assert parse_themes(event_document("Sleep")) == []
    assert parse_themes(event_document(["Sleep", 3, None])) == []
    many = [{"original": f"2030-01-{d:02d}T18:30", "name": f"t{d}"} for d in range(1, 29)] * 5
    assert len(parse_themes(event_document(many))) == 28  # the first 100 items only
    for bad in ({"original": "next Tuesday", "name": "Sleep"},
                {"original": KEY, "name": "x" * 81},
                {"original": KEY, "name": "   "},
                {"original": KEY, "name": ["Sleep"]},
                {"name": "Sleep"}):
        with pytest.raises(ObjectError):
            parse_themes(event_document([bad]))


def test_a_peers_themes_are_stored_replaced_and_shown(client, visitor, run_db):
    from tests.test_remote_pages import (
        CHANGES,
        EVENT_ID,
        EVENT_URL,
        FIRST,
        GROUP_ID,
        GROUP_URL,
        LISTING,
        ORIGIN,
        SERIES,
    )
    first = local_key(FIRST)

    async def store_it(db, themes):
        group_id = await remote_store.upsert_remote_group(
            db, origin=ORIGIN, ap_id=GROUP_ID, url=GROUP_URL, username="lantern",
            draft=LISTING)
        return await remote_store.upsert_remote_event(
            db, group_id=group_id, ap_id=EVENT_ID, url=EVENT_URL, draft=SERIES,
            changes=CHANGES, cancelled=False, themes=themes)

    event = run_db(lambda db: store_it(db, [(first, "Sleep")]))
    assert run_db(lambda db: store.meeting_theme(db, event, first)) == "Sleep"
    shown = visitor().get(f"/events/{event}?on={first}").text
    assert "<dt>Theme</dt><dd>Sleep</dd>" in shown
    run_db(lambda db: store_it(db, [(first, "Family")]))
    assert [tuple(r) for r in run_db(lambda db: db.fetchall(
        "SELECT occurrence, theme FROM meeting_themes WHERE event_id = ?", (event,)))] == \
        [(first, "Family")]
    run_db(lambda db: store_it(db, []))  # a group that no longer shares its themes
    assert run_db(lambda db: store.meeting_theme(db, event, first)) is None
    assert "<dt>Theme</dt>" not in visitor().get(f"/events/{event}?on={first}").text


# Through the real inbox, database and runner of tests/test_ignoring.py and its peers.
def test_a_peers_meeting_with_themes_through_the_inbox(inbox_node, remote):  # noqa: F811
    """A peer group's Create of its meeting, applied by the runner: the themes it carries
    are stored with the meeting, and malformed ones refuse the document."""
    circle = actor(inbox_node, remote, "circle", type="Group")
    good = {**meeting(circle, 1), "recurrence": {
        "dtstart": "2031-05-06T18:00", "timezone": "UTC", "durationMinutes": 60,
        "rrule": None, "cancelled": [], "moved": [],
        "themes": [{"original": "2031-05-06T18:00", "name": "Sleep"}, "ignored"]}}
    bad = {**meeting(circle, 2), "recurrence": {**good["recurrence"], "themes": [
        {"original": "soon", "name": "Sleep"}]}}
    deliver(inbox_node, circle, sent(circle, "Create", good, 1))
    deliver(inbox_node, circle, sent(circle, "Create", bad, 2))
    inbox_node.call(process_inbox, inbox_node.fed)
    stored = inbox_node.call(inbox_node.db.fetchall,
                             "SELECT e.ap_id, t.occurrence, t.theme FROM events e"
                             " LEFT JOIN meeting_themes t ON t.event_id = e.id")
    assert [tuple(r) for r in stored] == [(good["id"], "2031-05-06T18:00", "Sleep")]
