"""The schema on both engines: the same migrations end at the same logical schema on
SQLite and on a real PostgreSQL server (tests.postgres), and migrate alike."""
from __future__ import annotations

import asyncio
import difflib
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import asyncpg
import httpx
import pytest

from node import postgres
from node.config import write_config
from node.db import NewerDatabase, connect_sync, migrate, migration_files
from tests.helpers import draft, free_port, publish_listing, run_on, started
from tests.postgres import pg

# They use both engines themselves: run once, in the PostgreSQL run.
pytestmark = pytest.mark.postgresql_run

ROOT = Path(__file__).resolve().parent.parent
# Compared apart: the bookkeeping table, and full-text search (FTS5 and its shadow tables in
# SQLite, an ordinary table with a tsvector in PostgreSQL).
APART = re.compile(r"^(schema_migrations|groups_fts.*)$")
# Keyed by another table's id, these rowid aliases would be numbered by SQLite if a row came
# without one; none ever does, so PostgreSQL gives them no identity (a sequence nobody uses).
NUMBERED_ONLY_IN_SQLITE = {("mail_preferences", "account_id"), ("group_practice", "group_id")}
ON_ACTION = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL",
             "d": "SET DEFAULT"}


def sqlite_migrated(path: Path, upto: int | None = None) -> sqlite3.Connection:
    conn = connect_sync(path)
    migrate(conn, upto)
    return conn


# The logical schema, as lines of text on either engine ------------------------------------

def family(declared: str) -> str:
    """A declared type's family, by SQLite's affinity rules and PostgreSQL's names."""
    declared = declared.upper()
    if "INT" in declared:
        return "integer"
    if any(word in declared for word in ("CHAR", "CLOB", "TEXT")):
        return "text"
    if any(word in declared for word in ("REAL", "FLOA", "DOUB")):
        return "real"
    return "blob"  # BLOB, BYTEA, or no type


def plain(sql: str | None) -> str | None:
    """A default or a WHERE clause with PostgreSQL's casts, parentheses and spacing gone."""
    if sql is None:
        return None
    sql = re.sub(r"::[a-z ]+", "", sql)
    return re.sub(r"\s+", " ", sql.replace("(", "").replace(")", "")).strip().lower()


def column_line(name: str, kind: str, not_null: bool, pk: int, default: str | None,
                nocase: bool, numbered: bool) -> str:
    # A key column counts as NOT NULL on both: SQLite lets a rowid table's non-integer key
    # hold NULL (a documented legacy quirk; the node never writes one), PostgreSQL does not.
    not_null = not_null or pk > 0
    return (f"  column {name} {kind}{' not null' if not_null else ''}"
            f"{f' key#{pk}' if pk else ''}{f' default {default}' if default else ''}"
            f"{' collate nocase' if nocase else ''}{' numbered' if numbered else ''}")


def index_line(name: str, columns: list[str], collations: list[bool], unique: bool,
               where: str | None) -> str:
    shown = ", ".join(c + (" collate nocase" if nocase else "")
                      for c, nocase in zip(columns, collations))
    return (f"  {'unique ' if unique else ''}index {name} ({shown})"
            f"{f' where {where}' if where else ''}")


def fk_line(columns: list[str], table: str, to: list[str], on_update: str,
            on_delete: str) -> str:
    return (f"  foreign key ({', '.join(columns)}) -> {table}({', '.join(to)})"
            f" on update {on_update} on delete {on_delete}")


def sqlite_schema(conn: sqlite3.Connection) -> dict[str, list[str]]:
    tables = {name: sql for name, sql in conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table'"
        " AND name NOT LIKE 'sqlite_%'") if not APART.match(name)}
    schema = {}
    conn.execute("BEGIN")  # the probe indexes below are rolled back
    for table, table_sql in sorted(tables.items()):
        info = conn.execute(f"PRAGMA table_info({table})").fetchall()
        keys = [row for row in info if row[5]]
        lines = []
        for _, name, declared, notnull, default, pk in info:
            # A column's collation shows as that of an index made on it without one.
            conn.execute(f'CREATE INDEX probe ON "{table}"("{name}")')
            collation = conn.execute("PRAGMA index_xinfo(probe)").fetchone()[4]
            conn.execute("DROP INDEX probe")
            numbered = (len(keys) == 1 and pk == 1 and declared.upper() == "INTEGER"
                        and "WITHOUT ROWID" not in table_sql.upper()
                        and (table, name) not in NUMBERED_ONLY_IN_SQLITE)
            lines.append(column_line(name, family(declared), bool(notnull), pk, plain(default),
                                     collation == "NOCASE", numbered))
        indexes = []
        for _, name, unique, origin, partial in conn.execute(f"PRAGMA index_list({table})"):
            if origin == "pk":
                continue  # the key, compared by its columns above
            xinfo = [row for row in conn.execute(f"PRAGMA index_xinfo({name})") if row[5]]
            where = None
            if partial:
                sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?",
                                   (name,)).fetchone()[0]
                where = plain(re.split(r"\bWHERE\b", sql, maxsplit=1, flags=re.IGNORECASE)[1])
            indexes.append(index_line(
                "(unique constraint)" if origin == "u" else name,
                [row[2] for row in xinfo], [row[4] == "NOCASE" for row in xinfo],
                bool(unique), where))
        fks: dict[int, list] = {}
        for fk_id, _, other, column, to, on_update, on_delete, _ in conn.execute(
                f"PRAGMA foreign_key_list({table})"):
            fks.setdefault(fk_id, [[], other, [], on_update, on_delete])
            fks[fk_id][0].append(column)
            fks[fk_id][2].append(to)
        schema[table] = lines + sorted(indexes) + sorted(fk_line(*fk) for fk in fks.values())
    conn.execute("ROLLBACK")
    return schema


def names(numbers: str, table: str) -> str:
    """SQL: the names, in order, of the columns ``numbers`` (an array) of ``table`` (oid)."""
    return (f"(SELECT array_agg(a.attname ORDER BY n) FROM unnest({numbers}) WITH ORDINALITY"
            f" AS c(attnum, n) JOIN pg_attribute a ON a.attrelid = {table}"
            " AND a.attnum = c.attnum)")


PG_COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       coalesce(array_position(k.conkey, a.attnum), 0),
       pg_get_expr(d.adbin, d.adrelid), coalesce(co.collname = 'nocase', false),
       a.attidentity != ''
FROM pg_attribute a
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
LEFT JOIN pg_collation co ON co.oid = a.attcollation
LEFT JOIN pg_constraint k ON k.conrelid = a.attrelid AND k.contype = 'p'
WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
PG_INDEXES = f"""
SELECT i.relname, x.indisunique, k.contype::text, {names("x.indkey::int2[]", "x.indrelid")},
       (SELECT array_agg(coalesce(co.collname = 'nocase', false) ORDER BY n)
               FROM unnest(x.indcollation::oid[]) WITH ORDINALITY AS c(coll, n)
               LEFT JOIN pg_collation co ON co.oid = c.coll),
       pg_get_expr(x.indpred, x.indrelid)
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
LEFT JOIN pg_constraint k ON k.conindid = x.indexrelid AND k.conrelid = x.indrelid
                         AND k.contype IN ('p', 'u')
WHERE x.indrelid = $1::text::regclass
"""
PG_FOREIGN_KEYS = f"""
SELECT {names("k.conkey", "k.conrelid")}, k.confrelid::regclass::text,
       {names("k.confkey", "k.confrelid")}, k.confupdtype::text, k.confdeltype::text
FROM pg_constraint k WHERE k.conrelid = $1::text::regclass AND k.contype = 'f'
"""


async def pg_schema(conn: asyncpg.Connection) -> dict[str, list[str]]:
    tables = [name for name in await conn.fetchval(
        "SELECT array_agg(relname::text) FROM pg_class WHERE relkind = 'r'"
        " AND relnamespace = 'public'::regnamespace") if not APART.match(name)]
    schema = {}
    for table in sorted(tables):
        lines = [column_line(name, family(declared), not_null, pk, plain(default), nocase,
                             identity)
                 for name, declared, not_null, pk, default, nocase, identity
                 in await conn.fetch(PG_COLUMNS, table)]
        indexes = [index_line("(unique constraint)" if constraint == "u" else name,
                              list(columns), list(collations), unique, plain(where))
                   for name, unique, constraint, columns, collations, where
                   in await conn.fetch(PG_INDEXES, table) if constraint != "p"]
        fks = [fk_line(list(columns), other, list(to), ON_ACTION[on_update],
                       ON_ACTION[on_delete])
               for columns, other, to, on_update, on_delete
               in await conn.fetch(PG_FOREIGN_KEYS, table)]
        schema[table] = lines + sorted(indexes) + sorted(fks)
    return schema


def as_text(schema: dict[str, list[str]]) -> list[str]:
    return [line for table, lines in schema.items() for line in (f"table {table}", *lines)]


# The tests -----------------------------------------------------------------------------------

def test_both_engines_have_the_same_migrations():
    listed = {engine: [(version, name) for version, name, _ in migration_files(engine)]
              for engine in ("sqlite", "postgresql")}
    assert listed["sqlite"], "no migrations found"
    assert listed["postgresql"] == listed["sqlite"]


def test_both_engines_end_at_the_same_logical_schema(pg_url, tmp_path):
    conn = sqlite_migrated(tmp_path / "node.db")
    try:
        lite = sqlite_schema(conn)
    finally:
        conn.close()
    asyncio.run(postgres.migrate(pg_url))
    server = pg(pg_url, pg_schema)
    assert len(lite) > 30 and "  column email text collate nocase" in lite["accounts"]
    if lite != server:
        pytest.fail("the engines' schemas differ:\n" + "\n".join(difflib.unified_diff(
            as_text(lite), as_text(server), "sqlite", "postgresql", lineterm="", n=2)))


def test_groups_fts_has_the_same_columns_and_finds_words_without_their_accents(pg_url,
                                                                                 tmp_path):
    row = (7, "Café des parents", "Un café, le mardi", "Parler de l'école", "écoute")
    conn = sqlite_migrated(tmp_path / "node.db")
    try:
        lite_columns = [r[1] for r in conn.execute("PRAGMA table_info(groups_fts)")]
        conn.execute("INSERT INTO groups_fts (rowid, name, summary, description, topics)"
                     " VALUES (?, ?, ?, ?, ?)", row)
        lite_found = [r[0] for r in conn.execute(
            "SELECT rowid FROM groups_fts WHERE groups_fts MATCH 'cafe ecole'")]
    finally:
        conn.close()

    async def search(conn: asyncpg.Connection):
        await postgres.migrate(pg_url)
        columns = await conn.fetchval(
            "SELECT array_agg(attname::text ORDER BY attnum) FROM pg_attribute WHERE attrelid"
            " = 'groups_fts'::regclass AND attnum > 0 AND attname NOT IN ('rowid', 'document')")
        await conn.execute("INSERT INTO groups_fts (rowid, name, summary, description, topics)"
                           " VALUES ($1, $2, $3, $4, $5)", *row)
        found = await conn.fetch(
            "SELECT rowid FROM groups_fts WHERE document @@ plainto_tsquery('simple',"
            " unaccented($1))", "cafe ecole")
        weights = await conn.fetchval("SELECT document::text FROM groups_fts")
        return list(columns), [r[0] for r in found], weights

    server_columns, server_found, document = pg(pg_url, search)
    assert lite_columns == server_columns == ["name", "summary", "description", "topics"]
    assert lite_found == server_found == [7]
    assert "'cafe':1A,6B" in document and "'ecoute':4B" in document  # name A, summary B


def test_migrating_again_applies_nothing(pg_url, tmp_path):
    conn = sqlite_migrated(tmp_path / "node.db")
    try:
        assert migrate(conn) == []
    finally:
        conn.close()
    every = [version for version, _, _ in migration_files("postgresql")]
    assert asyncio.run(postgres.migrate(pg_url, upto=12)) == every[:12]
    assert asyncio.run(postgres.migrate(pg_url)) == every[12:]
    assert asyncio.run(postgres.migrate(pg_url)) == []
    applied = asyncio.run(postgres.applied_migrations(pg_url))
    assert [(version, name) for version, name, _ in applied] == [
        (version, name) for version, name, _ in migration_files()]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", at) for _, _, at in applied)


def test_a_database_from_a_newer_version_is_refused_alike(pg_url, tmp_path):
    future = "INSERT INTO schema_migrations VALUES (9001, '9001_from_the_future.sql'," \
             " '2031-01-01T00:00:00Z')"
    conn = sqlite_migrated(tmp_path / "node.db", upto=3)
    conn.execute(future)
    with pytest.raises(NewerDatabase) as on_sqlite:
        migrate(conn)
    conn.close()
    asyncio.run(postgres.migrate(pg_url, upto=3))
    pg(pg_url, lambda conn: conn.execute(future))
    with pytest.raises(NewerDatabase) as on_postgresql:
        asyncio.run(postgres.migrate(pg_url))
    assert str(on_postgresql.value) == str(on_sqlite.value)
    assert "9001_from_the_future.sql" in str(on_sqlite.value)
    assert [v for v, _, _ in asyncio.run(postgres.applied_migrations(pg_url))] == [
        1, 2, 3, 9001]  # nothing applied


def test_two_migrations_at_once_apply_each_migration_once(pg_url):
    async def both():
        return await asyncio.gather(postgres.migrate(pg_url), postgres.migrate(pg_url))

    first, second = asyncio.run(both())
    every = [version for version, _, _ in migration_files("postgresql")]
    assert sorted([first, second]) == [[], every]
    assert pg(pg_url, lambda conn: conn.fetchval("SELECT count(*) FROM schema_migrations")) \
        == len(every)


GROUP = ("INSERT INTO groups (id, slug, name, visibility, join_policy, format, cost, created_at,"
         " updated_at) VALUES (1, 'g', 'G', '{visibility}', 'open', 'online', 'free',"
         " '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')")


@pytest.mark.parametrize("statement", [
    GROUP.format(visibility="secret"),
    "INSERT INTO invite_codes (code, uses_left, created_at) VALUES ('c', -1, 'now')",
    "INSERT INTO accounts (display_name, status, created_at) VALUES ('A', 'gone', 'now')",
    "INSERT INTO group_practice (group_id, discussion_days) VALUES (1, 61)",
    "INSERT INTO pulse_answers (event_id, occurrence, token, scale) VALUES (1, 'o', 't', 6)",
], ids=["visibility", "uses_left", "status", "discussion_days", "scale"])
def test_check_constraints_refuse_the_same_rows(pg_url, tmp_path, statement):
    conn = sqlite_migrated(tmp_path / "node.db")
    conn.execute(GROUP.format(visibility="public"))  # for the rows that refer to a group
    with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
        conn.execute(statement)
    conn.close()

    async def insert(conn: asyncpg.Connection) -> None:
        await postgres.migrate(pg_url)
        await conn.execute(GROUP.format(visibility="public"))
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(statement)

    pg(pg_url, insert)


def test_data_migrations_give_the_same_rows_on_both_engines(pg_url, tmp_path):
    rows_at_1 = [
        GROUP.format(visibility="public"),
        "INSERT INTO group_tags VALUES (1, 'topic', 'grief'), (1, 'language', 'en')",
        ("INSERT INTO accounts (id, email, display_name, created_at)"
         " VALUES (1, 'a@example.org', 'A', '2026-01-01T00:00:00Z')"),
        "INSERT INTO memberships VALUES (1, 1, 'member', 'active', '2026-01-01T00:00:00Z')",
        "UPDATE groups SET agreements = 'Be kind'",
    ]
    queries = [
        "SELECT rowid, name, topics FROM groups_fts",
        "SELECT review FROM groups",
        "SELECT group_id, version, text, how FROM agreement_versions",
        "SELECT agreements_version FROM memberships",
        "SELECT length(email_verified_at) FROM accounts",
    ]
    conn = sqlite_migrated(tmp_path / "node.db", upto=1)
    for statement in rows_at_1:
        conn.execute(statement)
    migrate(conn)
    lite = [[tuple(row) for row in conn.execute(query)] for query in queries]
    conn.close()

    async def run(conn: asyncpg.Connection):
        await postgres.migrate(pg_url, upto=1)
        for statement in rows_at_1:
            await conn.execute(statement)
        await postgres.migrate(pg_url)
        return [[tuple(row) for row in await conn.fetch(query)] for query in queries]

    assert pg(pg_url, run) == lite == [[(1, "G", "grief")], [("approved",)],
                                       [(1, 1, "Be kind", "written")], [(1,)], [(20,)]]


# The command ---------------------------------------------------------------------------------

STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def grassroots(*args: str | Path, database_url: str | None = None) -> list[str]:
    """The command's output lines, moments masked; GRASSROOTS_DATABASE_URL as given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRASSROOTS_")}
    if database_url:
        env["GRASSROOTS_DATABASE_URL"] = database_url
    done = subprocess.run([sys.executable, "-m", "node.cli", *map(str, args)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return STAMP.sub("STAMP", done.stdout).splitlines()


def test_grassroots_migrate_prints_the_same_lines_on_both_engines(pg_url, tmp_path):
    data = tmp_path / "node"
    write_config(data, "http://127.0.0.1:8000")
    sqlite_migrated(data / "grassroots.db", upto=12).close()
    asyncio.run(postgres.migrate(pg_url, upto=12))
    for command in (("migrate", "--status"), ("migrate",), ("migrate", "--status")):
        on_sqlite = grassroots(*command, "--data", data)
        on_postgresql = grassroots(*command, "--data", data, database_url=pg_url)
        assert on_postgresql == on_sqlite, command
    assert on_sqlite[-1] == f"{len(migration_files())} applied, 0 pending."


def test_a_node_given_a_database_url_keeps_everything_in_postgresql(pg_url, tmp_path,
                                                                    monkeypatch):
    """init and serve with GRASSROOTS_DATABASE_URL: the first admin, a group published
    beside the running node, and the pages all come from PostgreSQL; no SQLite file."""
    data = tmp_path / "node"
    port = free_port()
    monkeypatch.setenv("GRASSROOTS_DATABASE_URL", pg_url)
    done = subprocess.run(
        [sys.executable, "-m", "node.cli", "init", "--data", str(data), "--port", str(port)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert pg(pg_url, lambda conn: conn.fetchval(
        "SELECT count(*) FROM accounts WHERE is_admin = 1")) == 1
    url = f"http://127.0.0.1:{port}"
    with started([sys.executable, "-m", "node.cli", "serve", "--data", str(data),
                  "--port", str(port)], url):
        group_id, _ = run_on(data, lambda db: publish_listing(
            db, draft(name="Tuesday Night Listening")))
        slug = pg(pg_url, lambda conn: conn.fetchval("SELECT slug FROM groups WHERE id = $1",
                                                       group_id))
        page = httpx.get(f"{url}/groups/{slug}")
        listed = httpx.get(f"{url}/groups", params={"q": "listening"})
    assert page.status_code == 200 and "Tuesday Night Listening" in page.text
    assert f"/groups/{slug}" in listed.text
    assert not (data / "grassroots.db").exists()
