"""grassroots db copy: a node's data moved from SQLite to a real PostgreSQL server and back,
every row the same; refusals that write nothing; a digest that names the table changed."""
from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from federation import store
from node import postgres
from node.cli import initialise
from node.config import DATABASE_FILE
from node.db import Database, connect_sync, migrate, migration_files
from node.dbcopy import (
    PostgresSide,
    SqliteSide,
    TableCheck,
    compare,
    copy_database,
    database,
    opened,
    table_digest,
)
from node.demo import seed_demo
from node.domain import EventDraft, Format
from node.storage import remote
from tests.helpers import FIRST_MEETING, draft, run_on
from tests.postgres import pg

# They use both engines themselves: run once, in the PostgreSQL run.
pytestmark = pytest.mark.postgresql_run

ROOT = Path(__file__).resolve().parent.parent
PEER_GROUP = "https://peer.example/groups/circle"


async def _federation(db: Database) -> None:
    """A peer, its group and meeting listed here, an activity queued for it, one received."""
    await store.save_peer(db, "peer.example", "https://peer.example/actor",
                          "https://peer.example/inbox", None)
    group_id = await remote.upsert_remote_group(
        db, origin="peer.example", ap_id=PEER_GROUP, url=PEER_GROUP, username="circle",
        draft=draft(name="Peer listening circle", summary="Über das Zuhören, à la café"))
    await remote.upsert_remote_event(
        db, group_id=group_id, ap_id="https://peer.example/events/1",
        url="https://peer.example/events/1", changes=[], cancelled=False,
        draft=EventDraft(title="Listening", description="", starts_at=FIRST_MEETING,
                         duration_minutes=60, timezone="Europe/Berlin", rrule="FREQ=WEEKLY",
                         format=Format.ONLINE))
    await store.publish(db, {"id": "https://node.example/a/1", "type": "Follow"}, "node",
                        ["https://peer.example/inbox"])
    await store.accept_inbox_items(db, [store.Arrival(
        "https://peer.example/a/9", "https://peer.example/actor", "peer.example", "Update",
        '{"type": "Update", "note": "🌱 é"}')])


@pytest.fixture(scope="module")
def node_db(tmp_path_factory) -> Path:
    """A node's SQLite file: an admin, the demo, a peer's group and meeting, queued work."""
    data = tmp_path_factory.mktemp("node") / "node"
    initialise(data, "http://node.example")

    async def fill(db: Database) -> None:
        assert await seed_demo(db)
        await _federation(db)

    run_on(data / DATABASE_FILE, fill)
    return data / DATABASE_FILE


def sqlite_url(path: Path) -> str:
    return f"sqlite://{path}"


def sqlite_rows(path: Path) -> dict[str, list[tuple]]:
    """Every table's rows, sorted (FTS5 with its rowid; its shadow tables left out)."""
    conn = sqlite3.connect(path)
    try:
        tables = [(name, kind) for _, name, kind, *_ in conn.execute("PRAGMA table_list")
                  if kind in ("table", "virtual") and not name.startswith("sqlite_")
                  and name != "schema_migrations"]
        return {name: sorted(conn.execute(
                    f"SELECT {'rowid, ' if kind == 'virtual' else ''}* FROM {name}").fetchall(),
                    key=repr)
                for name, kind in tables}
    finally:
        conn.close()


def copied(path: Path, to: Path) -> Path:
    """A copy of the SQLite file at ``path``, to change without changing it."""
    conn, into = sqlite3.connect(path), sqlite3.connect(to)
    conn.backup(into)
    conn.close()
    into.close()
    return to


def write(path: Path, statement: str) -> None:
    conn = sqlite3.connect(path)
    conn.execute(statement)
    conn.commit()
    conn.close()


def grassroots(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRASSROOTS_")}
    return subprocess.run([sys.executable, "-m", "node.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_a_node_copied_to_postgresql_and_back_has_every_row_and_finds_the_same_groups(
        node_db, pg_url, tmp_path):
    there = asyncio.run(copy_database(sqlite_url(node_db), pg_url))
    back_path = tmp_path / "back" / "grassroots.db"
    back_path.parent.mkdir()
    back = asyncio.run(copy_database(pg_url, sqlite_url(back_path)))

    assert all(c.matches for c in there + back)
    assert [(c.table, c.source) for c in back] == [(c.table, c.target) for c in there]
    original, copied = sqlite_rows(node_db), sqlite_rows(back_path)
    assert copied == original
    for table in ("accounts", "groups", "group_tags", "events", "occurrences", "memberships",
                  "agreement_versions", "pulse_answers", "activities", "deliveries",
                  "inbox_items", "peers", "groups_fts", "settings"):
        assert original[table], f"the node under test has no {table}"

    def found(path: Path, words: str) -> list[int]:
        conn = sqlite3.connect(path)
        try:
            return [row[0] for row in conn.execute(
                "SELECT rowid FROM groups_fts WHERE groups_fts MATCH ? ORDER BY rowid", (words,))]
        finally:
            conn.close()

    for words in ("grief", "circle", "uber cafe", "anxiety OR sleep"):
        assert found(back_path, words) == found(node_db, words)
    assert found(back_path, "uber cafe")
    on_server = pg(pg_url, lambda conn: conn.fetch(
        "SELECT rowid FROM groups_fts WHERE document @@ plainto_tsquery('simple',"
        " unaccented('uber cafe')) ORDER BY rowid"))
    assert [row[0] for row in on_server] == found(node_db, "uber cafe")


def test_the_command_prints_each_table_its_rows_and_digest_then_the_summary(node_db, pg_url):
    done = grassroots("db", "copy", "--from", sqlite_url(node_db), "--to", pg_url)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["TABLE", "ROWS", "DIGEST"]
    tables = {name: int(rows) for name, rows, digest in (line.split() for line in lines[1:-1])
              if re.fullmatch(r"[0-9a-f]{16}", digest)}
    assert len(tables) == len(lines) - 2
    original = sqlite_rows(node_db)
    assert tables == {name: len(rows) for name, rows in original.items()}
    assert lines[-1] == (f"{len(tables)} tables, {sum(tables.values())} rows copied;"
                         " every table's count and digest match.")
    # Parents before children: a group's rows come after the accounts and groups.
    names = list(tables)
    assert names.index("accounts") < names.index("groups") < names.index("memberships")


def test_a_target_holding_rows_is_refused_and_left_as_it_was(node_db, pg_url):
    async def one_account(conn: asyncpg.Connection) -> None:
        await postgres.migrate(pg_url)
        await conn.execute("INSERT INTO accounts (display_name, created_at) VALUES ('A', 'now')")

    pg(pg_url, one_account)
    done = grassroots("db", "copy", "--from", sqlite_url(node_db), "--to", pg_url)
    assert done.returncode == 1
    assert "holds rows (in accounts): copy into a new, empty database" in done.stderr
    assert pg(pg_url, lambda conn: conn.fetchval("SELECT count(*) FROM accounts")) == 1
    assert pg(pg_url, lambda conn: conn.fetchval("SELECT count(*) FROM groups")) == 0


def test_a_source_behind_on_migrations_is_refused_and_nothing_written(pg_url, tmp_path):
    old = tmp_path / "old.db"
    conn = connect_sync(old)
    migrate(conn, upto=10)
    conn.execute("INSERT INTO accounts (display_name, created_at) VALUES ('A', 'now')")
    conn.close()
    done = grassroots("db", "copy", "--from", sqlite_url(old), "--to", pg_url)
    assert done.returncode == 1
    assert (f"has 10 of the {len(migration_files())} migrations this version knows: run"
            " grassroots migrate on it first.") in done.stderr
    assert pg(pg_url, lambda conn: conn.fetchval(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")) == 0


def test_urls_name_a_sqlite_file_absolute_or_relative_or_a_postgresql_database():
    for url, path in (("sqlite:///srv/data/grassroots.db", "/srv/data/grassroots.db"),
                      ("sqlite:data/grassroots.db", "data/grassroots.db")):
        side = database(url)
        assert isinstance(side, SqliteSide) and side.path == Path(path)
    for url in ("postgresql://grassroots@db.example/node", "postgres://db.example/node"):
        side = database(url)
        assert isinstance(side, PostgresSide) and side.url == url


@pytest.mark.parametrize("source, target", [
    ("mysql://db.example/node", "sqlite:{new}"),
    ("sqlite:{node}", "https://db.example/node"),
], ids=["from", "to"])
def test_a_url_of_another_kind_is_refused_and_nothing_written(node_db, tmp_path, source,
                                                               target):
    new = tmp_path / "new.db"
    done = grassroots("db", "copy", "--from", source.format(node=node_db),
                      "--to", target.format(new=new))
    assert done.returncode == 1
    scheme = (source if source.startswith("mysql") else target).split(":")[0]
    assert f"'{scheme}' is not a database this copies" in done.stderr
    assert not new.exists()


def test_new_rows_on_postgresql_get_ids_past_the_copied_ones(node_db, pg_url):
    asyncio.run(copy_database(sqlite_url(node_db), pg_url))

    async def insert(conn: asyncpg.Connection) -> tuple[int, int, list]:
        copied = await conn.fetchval("SELECT max(id) FROM accounts")
        new = await conn.fetchval("INSERT INTO accounts (display_name, created_at)"
                                  " VALUES ('New', 'now') RETURNING id")
        # Every identity sequence: its next value is past its column's largest.
        behind = []
        for table, column in await conn.fetch(
                "SELECT attrelid::regclass::text, attname::text FROM pg_attribute"
                " WHERE attidentity <> '' AND attrelid::regclass::text <> 'accounts'"):
            largest = await conn.fetchval(f"SELECT coalesce(max({column}), 0) FROM {table}")
            following = await conn.fetchval(
                "SELECT nextval(pg_get_serial_sequence($1, $2))", table, column)
            if following <= largest:
                behind.append(table)
        return copied, new, behind

    copied, new, behind = pg(pg_url, insert)
    assert copied > 1 and new == copied + 1
    assert behind == []


def test_a_row_changed_behind_the_copy_is_named_by_the_check(node_db, pg_url):
    source = sqlite_url(node_db)
    assert all(c.matches for c in asyncio.run(copy_database(source, pg_url)))

    async def change(conn: asyncpg.Connection) -> None:
        await conn.execute("UPDATE groups SET name = name || '.'"
                           " WHERE id = (SELECT min(id) FROM groups)")
        await conn.execute("DELETE FROM settings WHERE key = (SELECT min(key) FROM settings)")

    pg(pg_url, change)

    async def check() -> list[TableCheck]:  # each side's snapshot, as the copy's own check
        async with (opened(database(source), snapshot=True) as ours,
                    opened(database(pg_url), snapshot=True) as theirs):
            return await compare(ours, theirs)

    checks = asyncio.run(check())
    assert sorted(c.table for c in checks if not c.matches) == ["groups", "settings"]
    groups, settings = (next(c for c in checks if c.table == name)
                        for name in ("groups", "settings"))
    assert groups.source[0] == groups.target[0] and groups.source[1] != groups.target[1]
    assert settings.target[0] == settings.source[0] - 1


def test_a_copy_that_fails_part_way_leaves_the_target_without_a_row(node_db, pg_url, tmp_path):
    source = copied(node_db, tmp_path / "source.db")
    # PostgreSQL's text holds no NUL character; SQLite's does. Late in the order: by then
    # the accounts, groups and meetings are written.
    write(source, "UPDATE pulse_answers SET word = 'a' || char(0) || 'b'")
    done = grassroots("db", "copy", "--from", sqlite_url(source), "--to", pg_url)
    assert done.returncode == 1 and "grassroots: the copy failed:" in done.stderr
    assert "0x00" in done.stderr

    async def holding(conn: asyncpg.Connection) -> list[str]:
        tables = await conn.fetch("SELECT tablename::text FROM pg_tables WHERE schemaname ="
                                  " 'public' AND tablename <> 'schema_migrations'")
        return [t for (t,) in tables if await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {t})")]

    assert pg(pg_url, holding) == []  # migrated, and empty: a second copy may go on


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_the_source_is_read_in_one_snapshot_while_the_node_writes(node_db, pg_url, tmp_path,
                                                                   engine):
    source = copied(node_db, tmp_path / "source.db")
    url = sqlite_url(source)
    if engine == "postgresql":
        asyncio.run(copy_database(url, pg_url))
        url = pg_url
    insert = ("INSERT INTO settings (key, value) VALUES ('written_during_the_copy', 'x')")

    async def read_around_a_write() -> tuple[int, int]:
        side = database(url)
        await side.open(snapshot=True)
        try:
            settings = next(t for t in await side.tables() if t.name == "settings")
            before, _ = await table_digest(side, settings)
            if engine == "sqlite":  # as the running node writes, on its own connection
                write(source, insert)
            else:
                conn = await asyncpg.connect(url)
                await conn.execute(insert)
                await conn.close()
            after, _ = await table_digest(side, settings)
            return before, after
        finally:
            await side.close()

    before, after = asyncio.run(read_around_a_write())
    assert before == after > 0
    assert len(sqlite_rows(source)["settings"]) == before + (engine == "sqlite")
