"""The /groups directory: every filter, free-text search, and its query plan."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from node.domain import Cost, EventDraft, Format, OccurrenceChange, Visibility
from node.storage import events, groups, remote
from tests.helpers import draft


@pytest.fixture
def listed(run_db, open_registration, visitor):
    """Five groups with distinct attributes, created by one facilitator."""
    b = visitor()
    b.register("Lee", "lee@example.org")
    lee = run_db(lambda db: db.fetchval("SELECT id FROM accounts WHERE email = 'lee@example.org'"))
    specs = [
        draft(name="Grief Circle Leith", summary="Loss and bereavement", topics=("grief",),
              languages=("en",), format=Format.IN_PERSON, area="Leith", cost=Cost.FREE,
              accessibility=("step_free", "quiet_space")),
        draft(name="Ansiedad Juntos", summary="Apoyo mutuo", topics=("anxiety",),
              languages=("es",), format=Format.ONLINE, cost=Cost.DONATION,
              description="Hablamos de la ansiedad y el estrés."),
        draft(name="New Parents Café", summary="Sleepless together", topics=("new-parents",),
              languages=("en", "pl"), format=Format.HYBRID, area="Gorgie", cost=Cost.SLIDING_SCALE,
              accessibility=("childcare", "step_free")),
        draft(name="Recovery Friday", summary="Twelve-step friendly", topics=("addiction-recovery",),
              languages=("en",), format=Format.IN_PERSON, area="leith", cost=Cost.FEE,
              description="Sobriety, honesty and coffee."),
        draft(name="Secret Grief", summary="private", topics=("grief",),
              visibility=Visibility.PRIVATE),
    ]

    async def make(db):
        ids = {}
        for spec in specs:
            slug = await groups.create_group(db, spec, lee)
            ids[spec.name] = (await groups.get_group(db, slug)).id
        soon = (datetime.now(UTC) + timedelta(days=3)).replace(tzinfo=None, second=0, microsecond=0)
        await events.create_event(db, ids["Recovery Friday"], EventDraft(
            title="Friday meeting", description="", starts_at=soon, duration_minutes=60,
            timezone="UTC", rrule=None, format=Format.IN_PERSON))
        return soon

    return run_db(make)


def names(browser, url: str) -> set[str]:
    page = browser.get(url)
    assert page.status_code == 200, page.text
    return {name for name in ("Grief Circle Leith", "Ansiedad Juntos", "New Parents Café",
                              "Recovery Friday", "Secret Grief") if name in page.text}


def test_each_filter_narrows_the_directory(listed, visitor):
    v = visitor()
    assert names(v, "/groups") == {"Grief Circle Leith", "Ansiedad Juntos", "New Parents Café",
                                   "Recovery Friday"}
    assert names(v, "/groups?topic=grief") == {"Grief Circle Leith"}
    assert names(v, "/groups?language=pl") == {"New Parents Café"}
    assert names(v, "/groups?format=online") == {"Ansiedad Juntos"}
    assert names(v, "/groups?cost=fee") == {"Recovery Friday"}
    assert names(v, "/groups?area=LEITH") == {"Grief Circle Leith", "Recovery Friday"}
    assert names(v, "/groups?accessibility=step_free") == {"Grief Circle Leith", "New Parents Café"}
    assert names(v, "/groups?accessibility=step_free&accessibility=childcare") == {
        "New Parents Café"}
    assert names(v, "/groups?origin=local&format=hybrid") == {"New Parents Café"}
    assert names(v, "/groups?origin=federated") == set()


def test_free_text_search_covers_name_summary_description_and_topics(listed, visitor):
    v = visitor()
    assert names(v, "/groups?q=bereavement") == {"Grief Circle Leith"}
    assert names(v, "/groups?q=estres") == {"Ansiedad Juntos"}  # accents folded
    assert names(v, "/groups?q=sobri") == {"Recovery Friday"}  # prefix match
    assert names(v, "/groups?q=addiction") == {"Recovery Friday"}  # topic
    assert names(v, "/groups?q=grief+leith") == {"Grief Circle Leith"}
    # FTS syntax in user input is treated as words, never as an error.
    assert names(v, '/groups?q="unbalanced+OR+NEAR(*') == set()


def test_date_range_keeps_groups_meeting_in_it(listed, visitor):
    soon = listed
    v = visitor()
    day = soon.date().isoformat()
    assert names(v, f"/groups?from={day}&to={day}") == {"Recovery Friday"}
    later = (soon + timedelta(days=30)).date().isoformat()
    assert names(v, f"/groups?from={later}") == set()


@pytest.mark.parametrize("days", [0, 6, 30])  # read in time order, or group by group
def test_date_window_edges_skip_cancelled_and_hidden_meetings(listed, run_db, days):
    """A meeting counts from its window's first day 00:00 UTC until its last day ends;
    a cancelled meeting or one an admin hid does not make its group meet there."""
    from node.domain import DirectoryQuery
    from node.storage.moderation import hide_listing

    last = (datetime.now(UTC) + timedelta(days=40)).date()  # after the fixture's meeting
    at = {"Grief Circle Leith": datetime.combine(last, datetime.min.time()).replace(hour=23,
                                                                                    minute=59),
          "New Parents Café": datetime.combine(last + timedelta(days=1), datetime.min.time())}

    async def window(db, first, final, q=""):
        page = await groups.search_directory(db, DirectoryQuery(
            q=q, date_from=first.isoformat(), date_to=final.isoformat()), None)
        assert page.total == len(page.groups)
        return {group.name for group, _, _ in page.groups}

    async def go(db):
        ids = {name: await db.fetchval("SELECT id FROM groups WHERE name = ?", (name,))
               for name in ("Grief Circle Leith", "New Parents Café", "Ansiedad Juntos")}
        for name, start in at.items():
            await events.create_event(db, ids[name], EventDraft(
                title="Meeting", description="", starts_at=start, duration_minutes=60,
                timezone="UTC", rrule=None, format=Format.IN_PERSON))
        cancelled = await events.create_event(db, ids["Ansiedad Juntos"], EventDraft(
            title="Called off", description="", starts_at=at["Grief Circle Leith"],
            duration_minutes=60, timezone="UTC", rrule=None, format=Format.ONLINE))
        await events.change_occurrence(db, cancelled, OccurrenceChange(
            at["Grief Circle Leith"], cancelled=True))
        assert await db.fetchval("SELECT cancelled FROM occurrences WHERE event_id = ?",
                                 (cancelled,)) == 1
        peer = await remote.upsert_remote_group(
            db, origin="peer.example", ap_id="https://peer.example/groups/tide",
            url="https://peer.example/groups/tide", username="tide",
            draft=draft(name="Tide Circle"))
        await remote.upsert_remote_event(
            db, group_id=peer, ap_id="https://peer.example/events/9",
            url="https://peer.example/events/9", changes=[], cancelled=False,
            draft=EventDraft(title="Tide", description="", starts_at=at["Grief Circle Leith"],
                             duration_minutes=60, timezone="UTC", rrule=None,
                             format=Format.ONLINE))
        ending = await window(db, last - timedelta(days=days), last)
        starting = await window(db, last + timedelta(days=1), last + timedelta(days=1 + days))
        searched = await window(db, last - timedelta(days=days), last, q="circle")
        await hide_listing(db, "https://peer.example/events/9")
        hidden = await window(db, last - timedelta(days=days), last)
        return ending, starting, searched, hidden

    ending, starting, searched, hidden = run_db(go)
    assert ending == {"Grief Circle Leith", "Tide Circle"}
    assert starting == {"New Parents Café"}
    assert searched == {"Grief Circle Leith", "Tide Circle"}
    assert hidden == {"Grief Circle Leith"}


def test_malformed_filters_get_a_clear_error(listed, visitor):
    r = visitor().get("/groups?from=tomorrow&format=teleport")
    assert r.status_code == 400
    assert "Use a date like" in r.text and 'id="e-format"' in r.text


@pytest.mark.sqlite_only  # SQLite's query plan and its FTS5 table
def test_directory_query_uses_fts_and_indexes_not_a_scan_per_filter(listed, run_db):
    """Filters become index lookups: the plan never scans a tag or FTS table."""
    from node.domain import DirectoryQuery

    captured: list[tuple[str, list]] = []

    async def plan(db):
        original = db.fetchall

        async def spy(sql, params=()):
            captured.append((sql, list(params)))
            return await original(sql, params)

        db.fetchall = spy
        await groups.search_directory(db, DirectoryQuery(
            q="grief", topic="grief", language="en", accessibility=("step_free",),
            date_from="2026-01-01"), None)
        sql, params = next(c for c in captured if "LIMIT" in c[0])
        return await original("EXPLAIN QUERY PLAN " + sql, params)

    details = [row["detail"] for row in run_db(plan)]
    assert any("VIRTUAL TABLE INDEX" in d and "groups_fts" in d for d in details), details
    for table in ("group_tags", "occurrences"):
        assert not any(d.startswith(f"SCAN {table}") for d in details), details


def test_a_cards_next_meeting_is_in_the_meetings_own_zone(listed, visitor, run_db):
    soon = listed
    group_id = run_db(lambda db: db.fetchval("SELECT id FROM groups WHERE name = 'Grief Circle Leith'"))
    run_db(lambda db: events.create_event(db, group_id, EventDraft(
        title="Tokyo circle", description="", starts_at=soon, duration_minutes=60,
        timezone="Asia/Tokyo", rrule=None, format=Format.ONLINE)))
    page = visitor().get("/groups", params={"q": "grief circle leith"}).text
    card = page[page.index("Grief Circle Leith"):]
    assert (f'{soon.day} {soon:%b %Y, %H:%M} <abbr title="Asia/Tokyo">JST</abbr>'
            in card.split("</article>")[0])


def test_active_filters_show_as_chips_that_each_remove_one(listed, visitor):
    page = visitor().get("/groups", params=[("topic", "grief"), ("accessibility", "step_free"),
                                             ("accessibility", "quiet_space")]).text
    chips = page[page.index('aria-label="Active filters"'):].split("</ul>")[0]
    assert "Filters (3)" in page
    assert 'href="?accessibility=step_free&amp;accessibility=quiet_space"' in chips  # topic gone
    assert 'href="?topic=grief&amp;accessibility=quiet_space"' in chips
    assert "Step-free access" in chips and "Topic: grief" in chips
    assert "Filters (" not in visitor().get("/groups").text


def test_the_count_and_the_menus_are_worked_out_once_between_changes(
        listed, visitor, run_db, monkeypatch):
    worked_out = []
    menus = groups._directory_choices

    async def counted_menus(db):
        worked_out.append("menus")
        return await menus(db)

    monkeypatch.setattr(groups, "_directory_choices", counted_menus)
    v = visitor()
    first = v.get("/groups?language=en").text
    assert "3 groups found" in first and v.get("/groups?language=en").text == first
    assert worked_out == ["menus"]  # the second page was the first's count and menus

    async def one_more(db):
        lee = await db.fetchval("SELECT id FROM accounts WHERE email = 'lee@example.org'")
        await groups.create_group(db, draft(name="Portobello Walkers", area="Portobello",
                                            topics=("loneliness",), languages=("en",)), lee)

    run_db(one_more)
    after = v.get("/groups?language=en").text
    assert "4 groups found" in after and "Portobello Walkers" in after
    assert '<option value="Portobello"' in after and '<option value="loneliness"' in after
    assert worked_out == ["menus", "menus"]
    assert "0 groups found" in v.get("/groups?language=en&area=Nowhere").text
