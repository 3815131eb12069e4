"""The database layer on real SQLite files: migrations, pragmas, atomic writes."""
from __future__ import annotations

import asyncio
import sqlite3

import pytest

from node.db import Database, connect_sync, migrate, migration_files
from node.storage import groups
from tests.helpers import draft


def test_migrations_are_numbered_applied_in_order_and_recorded(tmp_path):
    conn = connect_sync(tmp_path / "n.db")
    applied = migrate(conn)
    versions = [v for v, _, _ in migration_files()]
    assert applied == versions == sorted(versions)
    recorded = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]
    assert recorded == versions
    assert migrate(conn) == []  # a second start applies nothing


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


def test_connections_use_wal_and_foreign_keys(tmp_path):
    async def check():
        db = Database(tmp_path / "n.db")
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
        db = Database(tmp_path / "n.db")
        await db.open()
        try:
            async with db.transaction() as conn:
                await conn.execute(
                    "INSERT INTO accounts (email, display_name, created_at) VALUES ('a@b.c', 'A', 'x')")
            with pytest.raises(sqlite3.IntegrityError):
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
        db = Database(tmp_path / "n.db")
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
            old = await db.fetchval("SELECT count(*) FROM groups_fts WHERE groups_fts MATCH 'panic'")
            new = await db.fetchval("SELECT count(*) FROM groups_fts WHERE groups_fts MATCH 'stress'")
            await groups.delete_group(db, group.id)
            gone = await db.fetchval("SELECT count(*) FROM groups_fts")
            return [t[0] for t in tags], old, new, gone
        finally:
            await db.close()

    assert asyncio.run(run()) == (["stress"], 0, 1, 0)
