"""How a group runs itself: the facilitators' choices, kept and checked."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from node.domain import AgreementDecision, Facilitation, Practice, ThemeChoice
from node.storage import accounts, agreements, groups, pulses, rota, themes
from node.storage.practice import get_practice
from node.storage.rota import Holding
from tests.helpers import FIRST_MEETING, group_form, local_key, meeting_form

SLUG = "tuesday-grief-circle"
CHOICES = {"theme_choice": "most_supported", "themes_public": "yes", "theme_lead_hours": "24",
           "facilitation": "rotating", "agreement_decision": "facilitator",
           "discussion_days": "10", "pulse_keep_days": "30"}


def practice_of(run_db) -> Practice:
    async def read(db):
        return await get_practice(db, (await groups.get_group(db, SLUG)).id)
    return run_db(read)


def test_a_group_runs_on_the_defaults_until_its_facilitators_choose(visitor, open_registration,
                                                                     run_db):
    fay = visitor()
    fay.register("Fay", "fay@example.org")
    fay.post("/groups/new", group_form(), page="/groups/new")
    assert practice_of(run_db) == Practice()
    page = fay.get(f"/groups/{SLUG}/practice").text
    assert 'value="facilitator" checked' in page and 'value="facilitator_led" checked' in page

    r = fay.post(f"/groups/{SLUG}/practice", CHOICES, page=f"/groups/{SLUG}/practice")
    assert r.status_code == 303 and r.headers["location"] == f"/groups/{SLUG}"
    assert "How the group runs is saved." in fay.get(f"/groups/{SLUG}").text
    assert practice_of(run_db) == Practice(
        theme_choice=ThemeChoice.MOST_SUPPORTED, themes_public=True, theme_lead_hours=24,
        facilitation=Facilitation.ROTATING, agreement_decision=AgreementDecision.FACILITATOR,
        discussion_days=10, pulse_keep_days=30)
    page = fay.get(f"/groups/{SLUG}/practice").text
    assert 'value="rotating" checked' in page and 'name="themes_public" value="yes" checked' in page


def test_bad_choices_are_refused_beside_their_field_and_nothing_is_changed(
        visitor, open_registration, run_db):
    fay = visitor()
    fay.register("Fay", "fay@example.org")
    fay.post("/groups/new", group_form(), page="/groups/new")
    bad = {**CHOICES, "theme_choice": "coin_toss", "theme_lead_hours": "0",
           "discussion_days": "", "pulse_keep_days": "9999"}
    r = fay.post(f"/groups/{SLUG}/practice", bad, page=f"/groups/{SLUG}/practice")
    assert r.status_code == 400
    for message in ("Choose who sets a meeting",
                    "the hours before a meeting as a whole number from 1 to 336",
                    "Enter the days of discussion.",
                    "the days pulses are kept as a whole number from 1 to 365"):
        assert message in r.text.replace("&#39;", "'"), message
    assert 'value="rotating" checked' in r.text  # what was right is kept
    assert practice_of(run_db) == Practice()


def test_only_the_groups_facilitators_choose(visitor, open_registration, run_db):
    fay = visitor()
    fay.register("Fay", "fay@example.org")
    fay.post("/groups/new", group_form(join_policy="open"), page="/groups/new")
    sam = visitor()
    sam.register("Sam", "sam@example.org")
    sam.post(f"/groups/{SLUG}/join", {"accept_agreements": "yes"}, page=f"/groups/{SLUG}")
    assert sam.get(f"/groups/{SLUG}/practice").status_code == 403
    r = sam.post(f"/groups/{SLUG}/practice", CHOICES, page=f"/groups/{SLUG}")
    assert r.status_code == 403
    assert visitor().get(f"/groups/{SLUG}/practice", follow_redirects=False).status_code == 303
    assert practice_of(run_db) == Practice()
    assert f'href="/groups/{SLUG}/practice"' in fay.get(f"/groups/{SLUG}").text
    assert f'href="/groups/{SLUG}/practice"' not in sam.get(f"/groups/{SLUG}").text


def test_making_themes_public_sends_the_groups_meetings_to_peers_again(
        visitor, open_registration, run_db):
    fay = visitor()
    fay.register("Fay", "fay@example.org")
    fay.post("/groups/new", group_form(), page="/groups/new")

    async def changes(db):
        return await db.fetchval("SELECT count(*) FROM listing_changes WHERE kind = 'event'")

    fay.post(f"/groups/{SLUG}/events/new", meeting_form(), page=f"/groups/{SLUG}/events/new")
    before = run_db(changes)
    fay.post(f"/groups/{SLUG}/practice", {**CHOICES, "themes_public": ""},
             page=f"/groups/{SLUG}/practice")
    assert run_db(changes) == before  # nothing public changed
    fay.post(f"/groups/{SLUG}/practice", CHOICES, page=f"/groups/{SLUG}/practice")
    assert run_db(changes) == before + 1


def test_a_members_export_holds_their_part_in_the_group_and_never_a_pulse_answer(
        visitor, open_registration, run_db):
    """Themes proposed and supported, turns, proposals, comments and objections are the
    member's own records; a pulse is theirs only as "answered", never what they said."""
    fay = visitor()
    fay.register("Fay", "fay@example.org")
    fay.post("/groups/new", group_form(join_policy="open"), page="/groups/new")
    event_id = int(fay.post(f"/groups/{SLUG}/events/new", meeting_form(),
                            page=f"/groups/{SLUG}/events/new").headers["location"]
                   .removeprefix("/events/"))
    fay.post(f"/groups/{SLUG}/practice", {**CHOICES, "theme_choice": "facilitator"},
             page=f"/groups/{SLUG}/practice")
    people = {}
    for name in ("Nia", "Oli"):
        b = visitor()
        b.register(name, f"{name.lower()}@example.org")
        b.post(f"/groups/{SLUG}/join", {"accept_agreements": "yes"}, page=f"/groups/{SLUG}")
        people[name] = b
    key = local_key(FIRST_MEETING)

    async def take_part(db):
        group = await groups.get_group(db, SLUG)
        nia, oli = [(await accounts.find_account(db, f"{n}@example.org")).id
                    for n in ("nia", "oli")]
        await themes.propose(db, event_id, key, nia, "Sleep", signed=False)
        await themes.propose(db, event_id, key, oli, "Oli's own theme", signed=False)
        [olis] = [p for p in await themes.proposals(db, event_id, key, None, counted=False)
                  if p.theme == "Oli's own theme"]
        await themes.support(db, event_id, key, nia, olis.id)
        await rota.volunteer(db, group.id, event_id, key, nia, Holding.HOLDER,
                             datetime.now(UTC))
        version = await agreements.current_version(db, group.id)
        mine = await agreements.propose(db, group.id, nia, version, "Be kind.", "Shorter.",
                                        discussion_days=7, now=datetime.now(UTC))
        theirs = await agreements.propose(db, group.id, oli, version, "Be brief.", "Oli's.",
                                          discussion_days=7, now=datetime.now(UTC))
        await agreements.add_comment(db, mine, nia, "Happy to talk it through.")
        await agreements.object_to(db, theirs, nia, "Too short for me.")
        await pulses.answer_pulse(db, event_id=event_id, occurrence=key, group_id=group.id,
                                  account_id=nia, scale=2, word="nia-only-word",
                                  erase_after=datetime.now(UTC) + timedelta(days=9))

    run_db(take_part)
    export = people["Nia"].get("/account/export")
    data = export.json()
    assert [p["theme"] for p in data["themes_proposed"]] == ["Sleep"]
    assert [s["theme"] for s in data["themes_supported"]] == ["Oli's own theme"]
    assert [(h["occurrence"], h["role"]) for h in data["meetings_held"]] == [(key, "holder")]
    assert [p["text"] for p in data["agreement_proposals"]] == ["Be kind."]
    assert [c["body"] for c in data["agreement_comments"]] == ["Happy to talk it through."]
    assert [o["reason"] for o in data["agreement_objections"]] == ["Too short for me."]
    assert [a["version"] for a in data["agreements_accepted"]] == [1]
    assert [p["occurrence"] for p in data["pulses_answered"]] == [key]
    assert "nia-only-word" not in export.text and '"scale"' not in export.text
    assert "oli@example.org" not in export.text and "Oli's." not in export.text


def test_keeping_pulses_for_less_time_erases_those_given_sooner(visitor, open_registration,
                                                                  run_db):
    fay = visitor()
    fay.register("Fay", "fay@example.org")
    fay.post("/groups/new", group_form(), page="/groups/new")
    event_id = int(fay.post(f"/groups/{SLUG}/events/new", meeting_form(),
                            page=f"/groups/{SLUG}/events/new").headers["location"]
                   .removeprefix("/events/"))
    ends = datetime(2026, 3, 1, 20, 30, tzinfo=UTC)

    async def answer(db):
        group = await groups.get_group(db, SLUG)
        fay_id = (await accounts.find_account(db, "fay@example.org")).id
        await pulses.answer_pulse(db, event_id=event_id, occurrence="2026-03-01T19:00",
                                  group_id=group.id, account_id=fay_id, scale=4, word="",
                                  erase_after=ends + timedelta(days=90))

    run_db(answer)
    fay.post(f"/groups/{SLUG}/practice", CHOICES, page=f"/groups/{SLUG}/practice")  # 30 days
    erase = run_db(lambda db: db.fetchval("SELECT erase_after FROM pulse_meetings"))
    assert erase == "2026-03-31T20:30:00Z"
    assert run_db(lambda db: pulses.erase_expired(db, datetime(2026, 4, 1, tzinfo=UTC))) == 1
