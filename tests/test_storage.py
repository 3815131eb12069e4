"""The database layer on real SQLite files: migrations, pragmas, atomic writes."""
from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest

from node.db import (
    Conflict,
    Database,
    connect_sync,
    migrate,
    migration_files,
    parse_stamp,
    stamp,
)
from node.domain import EventDraft, Format, OccurrenceChange
from node.storage import events, groups, remote
from tests.helpers import database, draft, publish_listing


@pytest.mark.sqlite_only
def test_migrations_are_numbered_applied_in_order_and_recorded(tmp_path):
    conn = connect_sync(tmp_path / "n.db")
    applied = migrate(conn)
    versions = [v for v, _, _ in migration_files()]
    assert applied == versions == sorted(versions)
    recorded = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]
    assert recorded == versions
    assert migrate(conn) == []  # a second start applies nothing


@pytest.mark.sqlite_only
def test_a_node_made_by_an_older_version_upgrades_in_place(tmp_path):
    """A database at migration 1 with a group in it gains search over that group."""
    path = tmp_path / "old.db"
    conn = connect_sync(path)
    migrate(conn, upto=1)
    conn.execute(
        "INSERT INTO groups (id, slug, name, summary, visibility, join_policy, format, cost,"
        " created_at, updated_at) VALUES (1, 'old', 'Old Friends', 'Long-standing walkers',"
        " 'public', 'open', 'in_person', 'free', '2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z')"
    )
    conn.execute("INSERT INTO group_tags VALUES (1, 'topic', 'loneliness')")
    assert migrate(conn) == [v for v, _, _ in migration_files() if v > 1]
    hits = conn.execute("SELECT rowid FROM groups_fts WHERE groups_fts MATCH 'loneliness'")
    assert [r[0] for r in hits] == [1]
    conn.close()


@pytest.mark.sqlite_only
def test_connections_use_wal_and_foreign_keys(tmp_path):
    async def check():
        db = database(tmp_path / "n.db")
        await db.open()
        try:
            return (await db.fetchval("PRAGMA journal_mode"),
                    await db.fetchval("PRAGMA foreign_keys"))
        finally:
            await db.close()

    mode, _ = asyncio.run(check())
    assert mode == "wal"
    conn = sqlite3.connect(tmp_path / "n.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_failed_write_leaves_nothing_half_written(tmp_path):
    async def run():
        db = database(tmp_path / "n.db")
        await db.open()
        try:
            async with db.transaction() as conn:
                await conn.execute(
                    "INSERT INTO accounts (email, display_name, created_at) VALUES ('a@b.c', 'A', 'x')")
            with pytest.raises(Conflict):
                async with db.transaction() as conn:
                    await conn.execute(
                        "INSERT INTO accounts (email, display_name, created_at)"
                        " VALUES ('z@b.c', 'Z', 'x')")
                    await conn.execute(
                        "INSERT INTO accounts (email, display_name, created_at)"
                        " VALUES ('A@B.C', 'dup', 'x')")  # same email, case-insensitively
            return await db.fetchval("SELECT count(*) FROM accounts")
        finally:
            await db.close()

    assert asyncio.run(run()) == 1


def test_group_listing_tags_and_search_row_follow_edits(tmp_path):
    async def run():
        db = database(tmp_path / "n.db")
        await db.open()
        try:
            async with db.transaction() as conn:
                await conn.execute("INSERT INTO accounts (id, display_name, created_at)"
                                   " VALUES (1, 'F', 'x')")
            slug = await groups.create_group(db, draft(topics=("anxiety", "panic")), 1)
            group = await groups.get_group(db, slug)
            await groups.update_group(db, group.id, draft(topics=("stress",)))
            tags = await db.fetchall("SELECT value FROM group_tags WHERE group_id = ?"
                                     " AND kind = 'topic'", (group.id,))
            found = f"SELECT count(*) FROM {db.dialect.matches} AS m"
            old = await db.fetchval(found, (db.dialect.terms(["panic"]),))
            new = await db.fetchval(found, (db.dialect.terms(["stress"]),))
            await groups.delete_group(db, group.id)
            gone = await db.fetchval("SELECT count(*) FROM groups_fts")
            return [t[0] for t in tags], old, new, gone
        finally:
            await db.close()

    assert asyncio.run(run()) == (["stress"], 0, 1, 0)


# The expanded occurrences of meeting series ---------------------------------------

def meeting(**overrides: object) -> EventDraft:
    """A weekly online meeting at 19:00 in London, begun two months ago."""
    start = datetime.now().replace(hour=19, minute=0, second=0, microsecond=0)
    series = EventDraft(title="Evening circle", description="", duration_minutes=90,
                        starts_at=start - timedelta(days=60), timezone="Europe/London",
                        rrule="FREQ=WEEKLY", format=Format.ONLINE)
    return replace(series, **overrides)


@pytest.mark.parametrize("zone, rule", [
    ("Europe/London", "FREQ=WEEKLY"),
    ("America/New_York", "FREQ=MONTHLY;BYDAY=1MO"),
    ("Australia/Sydney", "FREQ=DAILY;INTERVAL=3;COUNT=100"),
])
def test_stored_occurrences_stay_right_until_the_horizon_is_due(zone, rule):
    """Between refreshes the stored rows are what expanding afresh would give."""
    series = meeting(timezone=zone, rrule=rule, starts_at=datetime(2026, 1, 5, 19, 0))
    slot = datetime(2026, 6, 1, 19, 0) if "MONTHLY" in rule else datetime(2026, 6, 8, 19, 0)
    changes = [OccurrenceChange(slot, cancelled=False, starts_at=slot + timedelta(days=40)),
               OccurrenceChange(slot + timedelta(days=63), cancelled=True)]
    moment, refreshes = datetime(2026, 2, 1, 12, 0, tzinfo=UTC), 0
    while moment < datetime(2027, 9, 1, tzinfo=UTC):  # across clock changes and the series' end
        stored = events.expansion(series, False, changes, moment)
        due = parse_stamp(stored.due)
        assert due >= moment
        assert events.expansion(series, False, changes, due).rows == stored.rows
        moment, refreshes = due + timedelta(seconds=1), refreshes + 1
    assert refreshes < 2 * 83  # about twice a slot at most (one comes in, one falls out)


def test_one_off_and_cancelled_series_are_never_refreshed():
    now = datetime.now(UTC)
    assert events.expansion(meeting(rrule=None), False, [], now).due is None
    assert events.expansion(meeting(), True, [], now) == events.Expansion([], None)


async def _noting_rewrites(db: Database) -> None:
    """From now on, every occurrence row deleted (rewritten) is noted with its series."""
    async with db.transaction() as conn:
        await conn.execute("CREATE TABLE rewritten (event_id INTEGER)")
        if db.dialect.name == "postgresql":  # a trigger runs a function of its own there
            await conn.execute("CREATE FUNCTION note() RETURNS trigger LANGUAGE plpgsql AS"
                               " $$BEGIN INSERT INTO rewritten VALUES (old.event_id);"
                               " RETURN old; END$$")
            await conn.execute("CREATE TRIGGER note AFTER DELETE ON occurrences"
                               " FOR EACH ROW EXECUTE FUNCTION note()")
        else:
            await conn.execute("CREATE TRIGGER note AFTER DELETE ON occurrences"
                               " BEGIN INSERT INTO rewritten VALUES (old.event_id); END")


async def _rows(db: Database, event_id: int) -> list[tuple]:
    rows = await db.fetchall("SELECT original_start, starts_utc, ends_utc FROM occurrences"
                             " WHERE event_id = ? ORDER BY 1", (event_id,))
    return [tuple(r) for r in rows]


def test_refresh_extends_the_series_the_horizon_reached_and_leaves_the_rest(tmp_path):
    async def run():
        db = database(tmp_path / "n.db")
        await db.open()
        try:
            async with db.transaction() as conn:
                await conn.execute("INSERT INTO accounts (id, display_name, created_at)"
                                   " VALUES (1, 'F', 'x')")
            group = await groups.get_group(db, await groups.create_group(db, draft(), 1))
            short = await events.create_event(db, group.id, meeting())
            await events.create_event(db, group.id, meeting(rrule="FREQ=MONTHLY"))
            full = await _rows(db, short)
            # As if expanded a week ago: the newest slot is not stored yet, and it is due.
            async with db.transaction() as conn:
                await conn.execute("DELETE FROM occurrences WHERE event_id = ? AND"
                                   " original_start = ?", (short, full[-1][0]))
                await conn.execute("UPDATE events SET horizon_due = ? WHERE id = ?",
                                   (stamp(datetime.now(UTC) - timedelta(hours=1)), short))
            await _noting_rewrites(db)
            await events.refresh_occurrences(db)
            rewritten = await db.fetchall("SELECT DISTINCT event_id FROM rewritten")
            due = await db.fetchval("SELECT horizon_due FROM events WHERE id = ?", (short,))
            return [r[0] for r in rewritten], short, await _rows(db, short) == full, due
        finally:
            await db.close()

    rewritten, short, extended, due = asyncio.run(run())
    assert rewritten == [short] and extended
    assert parse_stamp(due) > datetime.now(UTC)


def test_a_repeated_update_of_a_remote_meeting_leaves_its_occurrences(tmp_path):
    middle = 20  # the occurrence the last Update moves

    async def run():
        db = database(tmp_path / "n.db")
        await db.open()
        try:
            group_id = await remote.upsert_remote_group(
                db, origin="peer.example", ap_id="https://peer.example/groups/circle",
                url="https://peer.example/groups/circle", username="circle", draft=draft())
            upsert = partial(remote.upsert_remote_event, db, group_id=group_id,
                             ap_id="https://peer.example/events/1",
                             url="https://peer.example/events/1", draft=meeting(), cancelled=False)
            event_id = await upsert(changes=[])
            before = await _rows(db, event_id)
            await _noting_rewrites(db)
            assert await upsert(changes=[]) == event_id
            repeated = await db.fetchval("SELECT count(*) FROM rewritten"), await _rows(db, event_id)
            slot = datetime.fromisoformat(before[middle][0])
            moved = OccurrenceChange(slot, cancelled=False, starts_at=slot + timedelta(hours=1))
            await upsert(changes=[moved])
            changed = await db.fetchval("SELECT count(*) FROM rewritten"), await _rows(db, event_id)
            return before, repeated, changed
        finally:
            await db.close()

    before, (rewrites, after), (rewrites_then, moved) = asyncio.run(run())
    assert rewrites == 0 and after == before
    assert rewrites_then == len(before)
    assert moved[middle][1] > before[middle][1]
    assert moved[:middle] + moved[middle + 1:] == before[:middle] + before[middle + 1:]


@pytest.mark.sqlite_only  # a SQLite file made by an older version, migrated
def test_series_stored_before_the_horizon_was_tracked_are_expanded_at_the_next_start(tmp_path):
    path = tmp_path / "old.db"
    conn = connect_sync(path)
    migrate(conn, upto=4)
    conn.execute("INSERT INTO groups (id, slug, name, visibility, join_policy, format, cost,"
                 " created_at, updated_at) VALUES (1, 'old', 'Old', 'public', 'open', 'online',"
                 " 'free', '2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z')")
    conn.execute("INSERT INTO events (group_id, title, starts_at, duration_minutes, timezone,"
                 " rrule, format, created_at, updated_at) VALUES (1, 'Circle', '2025-01-06T19:00',"
                 " 60, 'UTC', 'FREQ=WEEKLY', 'online', '2025-01-01T00:00:00Z',"
                 " '2025-01-01T00:00:00Z')")
    migrate(conn)
    conn.close()

    async def run():
        db = database(path)
        await db.open()
        try:
            await events.refresh_occurrences(db)
            return await db.fetchval("SELECT count(*) FROM occurrences")
        finally:
            await db.close()

    assert asyncio.run(run()) > 50  # a year of weekly meetings


def test_a_deleted_remote_listing_leaves_no_raw_activity_about_it(tmp_path):
    """Waiting activities about it are erased with it; others, and applied ones' ids, stay."""
    group_ap_id = "https://peer.example/groups/circle"

    async def run():
        db = database(tmp_path / "n.db")
        await db.open()
        try:
            await remote.upsert_remote_group(db, origin="peer.example", ap_id=group_ap_id,
                                             url=group_ap_id, username="circle", draft=draft())
            now = stamp(datetime.now(UTC))
            for activity_id, body in (
                    ("https://peer.example/a/1", f'{{"object": {{"id": "{group_ap_id}",'
                                                 ' "name": "Circle of Secrets"}}'),
                    ("https://peer.example/a/2", '{"object": "https://peer.example/groups/other"}')):
                await db.write("INSERT INTO inbox_items (activity_id, actor, host, type, body,"
                               " received_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                               (activity_id, group_ap_id, "peer.example", "Update", body, now,
                                now))
            assert await remote.delete_remote(db, group_ap_id, "peer.example")
            return await db.fetchall("SELECT activity_id, state, body FROM inbox_items"
                                     " ORDER BY activity_id")
        finally:
            await db.close()

    erased, other = asyncio.run(run())
    assert (erased["state"], erased["body"]) == ("ignored", "")
    assert other["state"] == "received" and "groups/other" in other["body"]


def test_a_bounded_calendar_takes_the_series_meeting_soonest(tmp_path):
    """With a limit, the series whose next meeting comes first, and a lately cancelled one."""
    now = datetime.now().replace(hour=19, minute=0, second=0, microsecond=0)

    async def run():
        db = database(tmp_path / "n.db")
        await db.open()
        try:
            group_id, ids = await publish_listing(db, draft(), *(
                meeting(title=title, rrule=None, starts_at=now + timedelta(days=days))
                for title, days in (("In a week", 7), ("Tomorrow", 1), ("In a month", 30),
                                    ("Long past", -90), ("Called off", 3))))
            await events.set_cancelled(db, ids[-1], True)
            return ([s.event.title for s in await events.listed_series(db, limit=2)],
                    len(await events.listed_series(db)))
        finally:
            await db.close()

    bounded, unbounded = asyncio.run(run())
    assert sorted(bounded) == ["Called off", "In a week", "Tomorrow"]
    assert unbounded == 5
