"""The node's database: the interface the storage layer uses on either engine, and SQLite's
(the embedded default). PostgreSQL's is in node.postgres."""
from __future__ import annotations

import asyncio
import json
import sqlite3
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import aiosqlite

T = TypeVar("T")

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# One list of migrations, written once per engine: the same file names in both folders.
ENGINE_MIGRATIONS = {"sqlite": MIGRATIONS_DIR, "postgresql": MIGRATIONS_DIR / "postgresql"}

PRAGMAS = (
    "PRAGMA journal_mode = WAL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA busy_timeout = 5000",
    # FULL: a commit is on disk (WAL fsynced) before it returns, so nothing a peer was
    # told 202 about, and no queued delivery, is lost to a power cut. Measured here:
    # ~5k single-row commits/s against ~33k with NORMAL; alike in 50-row commits
    # (~107k rows/s), which is why the inbox batches its commits (federation.acceptor).
    "PRAGMA synchronous = FULL",
)


def migration_files(engine: str = "sqlite") -> list[tuple[int, str, str]]:
    """(version, name, sql) of every numbered migration of ``engine``, in order."""
    found = []
    for entry in ENGINE_MIGRATIONS[engine].iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), name, entry.read_text(encoding="utf-8")))
    return sorted(found)


class NewerDatabase(Exception):
    """The database holds migrations this code does not know: a newer version wrote it."""


def applied_migrations(conn: sqlite3.Connection) -> list[tuple[int, str, str]]:
    """(version, name, applied_at) of every migration the database has, in order."""
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table'"
                          " AND name = 'schema_migrations'").fetchone()
    if not exists:
        return []
    return [tuple(row) for row in conn.execute(
        "SELECT version, name, applied_at FROM schema_migrations ORDER BY version")]


def check_not_newer(conn: sqlite3.Connection) -> None:
    """Raise NewerDatabase, saying so plainly, unless this code knows every migration."""
    refuse_unknown(applied_migrations(conn), "sqlite")


def refuse_unknown(applied: Iterable[tuple[int, str, str]], engine: str) -> None:
    """Raise NewerDatabase unless this code knows every ``applied`` migration (either engine)."""
    known = {version for version, _, _ in migration_files(engine)}
    unknown = [name for version, name, _ in applied if version not in known]
    if unknown:
        raise NewerDatabase(
            "The database was written by a newer version of Grassroots: it has "
            f"{', '.join(unknown)}, which this version does not know. Run that version,"
            " or restore a backup taken before the upgrade (grassroots restore).")


def migrate(conn: sqlite3.Connection, upto: int | None = None) -> list[int]:
    """Apply pending migrations in order, each in its own transaction."""
    check_not_newer(conn)
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    applied = []
    for version, name, sql in migration_files():
        if version in done or (upto is not None and version > upto):
            continue
        # executescript commits first; the migration's own BEGIN makes it atomic.
        conn.executescript(
            "BEGIN IMMEDIATE;\n" + sql + "\nINSERT INTO schema_migrations VALUES "
            f"({version}, '{name}', strftime('%Y-%m-%dT%H:%M:%SZ', 'now'));\nCOMMIT;"
        )
        applied.append(version)
    return applied


def connect_sync(path: Path) -> sqlite3.Connection:
    """A plain connection with the node's pragmas (CLI and migrations)."""
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in PRAGMAS:
        conn.execute(pragma)
    return conn


Row = Any  # a row of either engine: read by index, by column name, or as (key, value) pairs


class Writing(Protocol):
    """The connection inside ``Database.transaction()``, on either engine."""

    async def execute(self, sql: str, params: Sequence[Any] = ...) -> Any: ...

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Any: ...


class Conflict(Exception):
    """A write broke a uniqueness rule; ``where`` names it as ``table.column``."""

    def __init__(self, where: str) -> None:
        super().__init__(f"already taken: {where}")
        self.where = where


@dataclass(frozen=True)
class Dialect:
    """The few pieces of SQL the two engines write differently. The storage layer's other
    statements read alike on both; these are the only engine-specific ones, by name."""

    name: str
    # FROM-clause source of (rowid, rank) of groups_fts rows matching the bound search
    # terms (``terms``), the best match with the lowest rank.
    matches: str
    terms: Callable[[list[str]], str]
    # A column's value among a bound list (``listed``): "x IN (…)" without one variable each.
    among: str
    listed: Callable[[list[Any]], Any]
    # Text values of a group's rows joined with ", ", as an aggregate of ``%s``.
    joined: str
    # A stored moment ``%(at)s`` plus ``%(hours)s`` hours, as stored (STAMP_FORMAT).
    plus_hours: str
    # Whether text ``%(needle)s`` occurs in text ``%(haystack)s``.
    contains: str
    # After a claim's SELECT: rows other processes are claiming are passed over.
    skip_locked: str
    # Ties in an ORDER BY broken by when each row was written: SQLite's rowid, which the
    # table's index holds in that order; PostgreSQL's ctid, the row's place in the table.
    then_arrival: str


SQLITE = Dialect(
    name="sqlite",
    matches="(SELECT rowid, rank FROM groups_fts WHERE groups_fts MATCH ?)",
    terms=lambda words: " ".join(f'"{word}"*' for word in words),
    among="IN (SELECT value FROM json_each(?))",
    listed=json.dumps,
    joined="group_concat(%s, ', ')",
    plus_hours="strftime('%%Y-%%m-%%dT%%H:%%M:%%SZ', %(at)s, %(hours)s || ' hours')",
    contains="instr(%(haystack)s, %(needle)s) > 0",
    skip_locked="",
    then_arrival=", rowid",
)


def unique_violation(e: sqlite3.IntegrityError) -> Conflict | None:
    """SQLite's "UNIQUE constraint failed: accounts.email" as a Conflict; None for others."""
    prefix = "UNIQUE constraint failed: "
    text = str(e)
    return Conflict(text.removeprefix(prefix).split(",")[0]) if text.startswith(prefix) else None


class Database(ABC):
    """What the storage layer reads and writes through, on either engine: one transaction
    of writes at a time (``transaction``, ``write``), reads beside them."""

    KEPT = 64  # results kept by `kept`, the most lately asked for
    dialect: Dialect

    def __init__(self) -> None:
        self._kept: OrderedDict[tuple[object, ...], tuple[object, Any]] = OrderedDict()

    @abstractmethod
    async def open(self) -> None:
        """Migrate the database to this version, then connect."""

    @abstractmethod
    async def close(self) -> None:
        """Close every connection."""

    @abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Any]:
        """A connection inside one write transaction (``execute``, ``executemany``)."""

    @abstractmethod
    async def write(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        """One statement, committed on its own; its RETURNING rows."""

    @abstractmethod
    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        """One query's rows, read beside any write under way."""

    async def lead(self) -> bool:
        """Whether this process leads the node's work (see node.work); asked again by one
        that does not. A SQLite database has one process, which leads."""
        return True

    @abstractmethod
    async def sizes(self) -> dict[str, int]:
        """Bytes the database takes, by part ("database", and SQLite's "wal")."""

    @abstractmethod
    async def data_version(self) -> object:
        """A value that changes whenever anything is committed to the database (by this
        process or another), as this open database sees it."""

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, params: Iterable[Any] = ()) -> Any:
        row = await self.fetchone(sql, params)
        return None if row is None else row[0]

    async def kept(self, key: tuple[object, ...], build: Callable[[], Awaitable[T]]) -> T:
        """``await build()``; or what it gave last time for ``key``, when nothing has been
        committed to the database since. The result is shared: never change it."""
        version = await self.data_version()
        found = self._kept.get(key)
        if found is not None and found[0] == version:
            self._kept.move_to_end(key)
            return found[1]
        value = await build()  # a commit meanwhile changes the version: built again next time
        self._kept[key] = (version, value)
        self._kept.move_to_end(key)
        while len(self._kept) > self.KEPT:
            self._kept.popitem(last=False)
        return value


class SqliteDatabase(Database):
    """The node's SQLite file: one write connection, one read-only connection.

    Every write runs in a single ``BEGIN IMMEDIATE`` transaction on the writer; reads go
    through a read-only connection, which WAL lets run beside writes."""

    dialect = SQLITE

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()

    async def open(self) -> None:
        conn = connect_sync(self.path)
        try:
            migrate(conn)
        finally:
            conn.close()
        self._writer = await aiosqlite.connect(self.path, isolation_level=None)
        self._writer.row_factory = sqlite3.Row
        for pragma in PRAGMAS:
            await self._writer.execute(pragma)
        self._reader = await aiosqlite.connect(
            f"file:{self.path}?mode=ro", uri=True, isolation_level=None
        )
        self._reader.row_factory = sqlite3.Row
        await self._reader.execute("PRAGMA busy_timeout = 5000")

    async def close(self) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._reader = self._writer = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """The write connection inside one IMMEDIATE transaction."""
        assert self._writer is not None, "database is not open"
        async with self._write_lock:
            await self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield self._writer
            except BaseException as e:
                await self._writer.rollback()
                conflict = isinstance(e, sqlite3.IntegrityError) and unique_violation(e)
                if conflict:
                    raise conflict from e
                raise
            await self._writer.commit()

    async def write(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """One statement, committed on its own, in one trip to the writer; its RETURNING rows."""
        assert self._writer is not None, "database is not open"
        async with self._write_lock:
            try:
                return list(await self._writer.execute_fetchall(sql, tuple(params)))
            except sqlite3.IntegrityError as e:
                conflict = unique_violation(e)
                if conflict:
                    raise conflict from e
                raise

    # Reads are one trip to the reader's thread each: the statement and all its rows.

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        assert self._reader is not None, "database is not open"
        return list(await self._reader.execute_fetchall(sql, tuple(params)))

    async def data_version(self) -> int:
        return await self.fetchval("PRAGMA data_version")

    async def sizes(self) -> dict[str, int]:
        return {"database": _size(self.path),
                "wal": _size(self.path.with_name(self.path.name + "-wal"))}


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


STAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # every stored moment: ISO 8601 UTC to the second


def stamp(moment: datetime) -> str:
    """A moment as stored (sorts as text in time order)."""
    return moment.astimezone(UTC).strftime(STAMP_FORMAT)


def parse_stamp(text: str) -> datetime:
    """A stored moment (``STAMP_FORMAT`` only); ValueError for anything else."""
    if len(text) != 20 or text[10] != "T" or text[19] != "Z":
        raise ValueError(f"not a stored moment: {text!r}")
    return datetime.fromisoformat(text)  # a tenth of strptime's cost, read by every page


def timestamp() -> str:
    """Now, as stored."""
    return stamp(datetime.now(UTC))


def database_at(where: Path | str) -> Database:
    """The database at ``where``: a postgresql:// URL, or else a SQLite file's path."""
    if isinstance(where, str) and where.startswith(("postgresql://", "postgres://")):
        from node.postgres import PostgresDatabase

        return PostgresDatabase(where)
    return SqliteDatabase(Path(where))
