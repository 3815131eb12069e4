"""The node on PostgreSQL (``database_url``): its schema, migrated as the SQLite file is,
and the Database the storage layer reads and writes through.

Only a node given a PostgreSQL URL imports this module (and asyncpg with it).
"""
from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any

import asyncpg

from node.db import Conflict, Database, Dialect, migration_files, refuse_unknown

ENGINE = "postgresql"
# pg_advisory_lock key held while migrating (any fixed number; "grassmig" in ASCII), so two
# processes starting at once apply each migration once: the second waits, then finds it done.
MIGRATION_LOCK = 0x67726173736D6967
NOW = """to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')"""  # as db.stamp


async def _connect(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(url)


async def applied_on(conn: asyncpg.Connection) -> list[tuple[int, str, str]]:
    """``applied_migrations`` on an open connection (and within its transaction)."""
    if await conn.fetchval("SELECT to_regclass('schema_migrations') IS NULL"):
        return []
    return [tuple(row) for row in await conn.fetch(
        "SELECT version, name, applied_at FROM schema_migrations ORDER BY version")]


async def applied_migrations(url: str) -> list[tuple[int, str, str]]:
    """(version, name, applied_at) of every migration the database has, in order."""
    conn = await _connect(url)
    try:
        return await applied_on(conn)
    finally:
        await conn.close()


async def migrate(url: str, upto: int | None = None) -> list[int]:
    """Apply pending migrations in order, each in its own transaction; their versions.

    NewerDatabase, and nothing applied, when the database has a migration this code does
    not know."""
    conn = await _connect(url)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
        refuse_unknown(await applied_on(conn), ENGINE)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)")
        done = {version for version, _, _ in await applied_on(conn)}
        applied = []
        for version, name, sql in migration_files(ENGINE):
            if version in done or (upto is not None and version > upto):
                continue
            async with conn.transaction():
                await conn.execute(sql)  # no arguments: several statements in one go
                await conn.execute(f"INSERT INTO schema_migrations VALUES ($1, $2, {NOW})",
                                   version, name)
            applied.append(version)
        return applied
    finally:
        await conn.close()  # and with it the lock


# pg_advisory_xact_lock key ("grasswri") every write transaction takes first: one write
# transaction at a time across every process, as SQLite's writer has it, so each storage
# function reads and writes as if alone (READ COMMITTED then sees every earlier commit).
# Claims of queued work take it too, so each sees the leases of those before it (which
# keeps one worker at a time on an inbox); their FOR UPDATE SKIP LOCKED keeps a claim
# from waiting on, or taking, a row another transaction holds even without it.
WRITE_LOCK = 0x6772617373777269
# pg_advisory_lock key ("grasslea") held, for as long as its connection lasts, by the one
# worker process that runs the loops one process runs at a time (node.work); PostgreSQL
# frees it when that process's connection ends, killed or not.
LEAD_LOCK = 0x67726173736C6561
BEGIN_WRITING = f"BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK})"

POSTGRESQL = Dialect(
    name="postgresql",
    matches=("(SELECT rowid, -ts_rank(document, query) AS rank FROM groups_fts,"
             " to_tsquery('simple', unaccented(?)) query WHERE document @@ query)"),
    # Every word as a prefix; words are \w+ only, so no tsquery syntax leaks in.
    terms=lambda words: " & ".join(f"{word}:*" for word in words),
    among="= ANY(?)",
    listed=list,
    joined="string_agg(%s, ', ')",
    plus_hours=("to_char(CAST(CAST(%(at)s AS text) AS timestamp)"
                " + make_interval(hours => CAST(%(hours)s AS integer)),"
                ' \'YYYY-MM-DD"T"HH24:MI:SS"Z"\')'),
    contains="strpos(%(haystack)s, %(needle)s) > 0",
    skip_locked="FOR UPDATE SKIP LOCKED",
    then_arrival=", ctid",
)

_QUOTED_OR_MARK = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\?")
# SQLite's planner hints, which PostgreSQL's planner does without: "t INDEXED BY i" names
# the index to read, and "CROSS JOIN t ON …" keeps the join order as written (otherwise an
# inner join, as PostgreSQL's "JOIN t ON …" is).
_HINTS = re.compile(r"\s+INDEXED BY \w+|\bCROSS JOIN(?=\s+\w+(?:\s+\w+)?\s+(?:INDEXED BY"
                    r" \w+\s+)?ON\b)")
_WRITES = re.compile(r"^\s*(INSERT|UPDATE|DELETE)\b|\)\s*(INSERT|UPDATE|DELETE)\b", re.IGNORECASE)
_RETURNING = re.compile(r"\bRETURNING\b", re.IGNORECASE)


@lru_cache(maxsize=4096)
def statement(sql: str) -> tuple[str, bool]:
    """The storage layer's SQL (``?`` marks, SQLite's planner hints) in PostgreSQL's
    (``$1``, ``$2``…, no hints), and whether it returns rows (a query, or a write with
    RETURNING) rather than a count."""
    marks = iter(range(1, 1 << 16))

    def number(m: re.Match[str]) -> str:
        return f"${next(marks)}" if m.group(0) == "?" else m.group(0)

    sql = _HINTS.sub(lambda m: "" if m.group(0).lstrip().startswith("INDEXED") else "JOIN",
                     sql)
    return (_QUOTED_OR_MARK.sub(number, sql),
            not _WRITES.search(sql) or bool(_RETURNING.search(sql)))


def _conflict(e: asyncpg.UniqueViolationError) -> Conflict:
    """"Key (email)=(…) already exists." on accounts as Conflict("accounts.email")."""
    found = re.match(r"Key \(([^,)]+)", e.detail or "")
    return Conflict(f"{e.table_name}.{found.group(1) if found else e.constraint_name}")


class Cursor:
    """What one statement gave: its rows, or how many rows it changed."""

    def __init__(self, rows: list[asyncpg.Record], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    async def fetchone(self) -> asyncpg.Record | None:
        return self._rows[0] if self._rows else None

    async def fetchall(self) -> list[asyncpg.Record]:
        return self._rows


class Connection:
    """A connection inside a write transaction, as the storage layer uses SQLite's."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        text, returns_rows = statement(sql)
        if returns_rows:
            rows = await self._conn.fetch(text, *params)
            return Cursor(rows, len(rows))
        status = await self._conn.execute(text, *params)  # "UPDATE 3", "INSERT 0 1"
        count = status.rsplit(" ", 1)[-1]
        return Cursor([], int(count) if count.isdigit() else -1)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Cursor:
        await self._conn.executemany(statement(sql)[0], list(rows))
        return Cursor([], -1)

    async def execute_fetchall(self, sql: str, params: Sequence[Any] = ()
                               ) -> list[asyncpg.Record]:
        return await self._conn.fetch(statement(sql)[0], *params)


class PostgresDatabase(Database):
    """The node's data on a PostgreSQL server, through a pool of connections."""

    dialect = POSTGRESQL

    def __init__(self, url: str, pool_size: int = 8) -> None:
        super().__init__()
        self.url = url
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._leading: asyncpg.Connection | None = None  # holds LEAD_LOCK
        # One of this process's transactions waits for the write lock at a time; the rest
        # of the pool stays free for reads (a transaction may read beside itself).
        self._write_lock = asyncio.Lock()

    async def open(self) -> None:
        await migrate(self.url)
        self._pool = await asyncpg.create_pool(self.url, min_size=1, max_size=self.pool_size)

    async def close(self) -> None:
        if self._leading is not None:
            await self._leading.close()
            self._leading = None
        if self._pool is not None:
            await self._pool.close()
        self._pool = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        assert self._pool is not None, "database is not open"
        async with self._write_lock, self._pool.acquire() as conn:
            await conn.execute(BEGIN_WRITING)
            try:
                yield Connection(conn)
            except BaseException as e:
                if not conn.is_closed():
                    await conn.execute("ROLLBACK")
                if isinstance(e, asyncpg.UniqueViolationError):
                    raise _conflict(e) from e
                raise
            await conn.execute("COMMIT")

    async def write(self, sql: str, params: Iterable[Any] = ()) -> list[asyncpg.Record]:
        async with self.transaction() as conn:
            return await conn.execute_fetchall(sql, tuple(params))

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[asyncpg.Record]:
        assert self._pool is not None, "database is not open"
        return await self._pool.fetch(statement(sql)[0], *params)

    async def lead(self) -> bool:
        if self._leading is None:
            conn = await asyncpg.connect(self.url)
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", LEAD_LOCK):
                await conn.close()
                return False
            self._leading = conn
        return True

    async def sizes(self) -> dict[str, int]:
        return {"database": await self.fetchval("SELECT pg_database_size(current_database())")}

    async def data_version(self) -> str:
        # The snapshot names the next transaction and every one still running: it is the
        # same text exactly while nothing has been committed (or begun writing).
        return await self.fetchval("SELECT pg_current_snapshot()::text")
