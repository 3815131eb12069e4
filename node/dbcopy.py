"""A neighbourhood's data moved between SQLite and PostgreSQL (``grassroots db copy``).

The source is read in one snapshot, the target written in one transaction, and both are
then compared table by table: a count and a SHA-256 digest of every row, each value
encoded with its type. One reader and one writer per engine; the rest knows no engine.
asyncpg is imported inside the functions, so a node on SQLite never loads it.
"""
from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from node.db import (
    applied_migrations,
    connect_sync,
    migrate,
    migration_files,
    refuse_unknown,
)

if TYPE_CHECKING:
    import asyncpg

BATCH = 1000  # rows read, and written, at a time


class CopyRefused(Exception):
    """The copy cannot start, and nothing was written: the message says why."""


@dataclass(frozen=True)
class Table:
    """A table as both engines must agree on it: its name, its columns (sorted), its
    primary key (else every column), the tables its foreign keys refer to."""

    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    parents: frozenset[str]
    # What one engine alone needs: columns ordered by a collation, identity columns.
    text: frozenset[str] = field(default=frozenset(), compare=False)
    identity: tuple[str, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class TableCheck:
    """A table's (row count, digest) on each side."""

    table: str
    source: tuple[int, str]
    target: tuple[int, str]

    @property
    def matches(self) -> bool:
        return self.source == self.target


class Side(Protocol):
    """One database, through one connection: a snapshot to read, or a transaction to write."""

    engine: str

    async def open(self, snapshot: bool) -> None: ...
    async def close(self) -> None: ...
    async def applied(self) -> list[tuple[int, str, str]]: ...
    async def migrate(self) -> None: ...
    async def tables(self) -> list[Table]: ...
    async def value(self, sql: str) -> Any: ...
    def rows(self, table: Table) -> AsyncIterator[list[tuple]]: ...
    async def begin(self) -> None: ...
    async def insert(self, table: Table, rows: list[tuple]) -> None: ...
    async def finish(self, tables: Sequence[Table]) -> None: ...
    async def commit(self) -> None: ...
    async def rollback(self) -> None: ...


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class SqliteSide:
    """A node's SQLite file through sqlite3."""

    engine = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None

    @property
    def conn(self) -> sqlite3.Connection:
        assert self._conn is not None, "not open"
        return self._conn

    async def open(self, snapshot: bool) -> None:
        if not snapshot:
            self._conn = connect_sync(self.path)
            return
        if not self.path.is_file():
            raise CopyRefused(f"{self.path} does not exist.")
        self._conn = sqlite3.connect(self.path.resolve().as_uri() + "?mode=ro", uri=True,
                                     isolation_level=None)
        self._conn.execute("PRAGMA busy_timeout = 5000")
        # WAL: the snapshot is taken at the transaction's first read, and kept to its end.
        self._conn.execute("BEGIN")
        self._conn.execute("SELECT count(*) FROM sqlite_master").fetchone()

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def applied(self) -> list[tuple[int, str, str]]:
        return applied_migrations(self.conn)

    async def migrate(self) -> None:
        migrate(self.conn)

    async def tables(self) -> list[Table]:
        found = []
        for schema, name, kind, *_ in self.conn.execute("PRAGMA table_list").fetchall():
            # 'shadow' tables hold an FTS5 table's index: written by inserting into it.
            if (schema != "main" or kind not in ("table", "virtual")
                    or name.startswith("sqlite_") or name == "schema_migrations"):
                continue
            info = self.conn.execute(f"PRAGMA table_info({quoted(name)})").fetchall()
            columns = [row[1] for row in info]
            key = [row[1] for row in sorted(info, key=lambda row: row[5]) if row[5]]
            if kind == "virtual":  # FTS5: its rowid is the group's id
                columns.append("rowid")
                key = ["rowid"]
            parents = {row[2] for row in self.conn.execute(
                f"PRAGMA foreign_key_list({quoted(name)})")}
            found.append(Table(name, tuple(sorted(columns)), tuple(key or sorted(columns)),
                               frozenset(parents - {name})))
        return found

    async def value(self, sql: str) -> Any:
        return self.conn.execute(sql).fetchone()[0]

    async def rows(self, table: Table) -> AsyncIterator[list[tuple]]:
        # BINARY: text in the byte order of its UTF-8, as PostgreSQL's "C" collation.
        order = ", ".join(f"{quoted(c)} COLLATE BINARY" for c in table.key)
        cursor = self.conn.execute(f"SELECT {', '.join(map(quoted, table.columns))}"
                                   f" FROM {quoted(table.name)} ORDER BY {order}")
        while batch := cursor.fetchmany(BATCH):
            yield batch

    async def begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    async def insert(self, table: Table, rows: list[tuple]) -> None:
        self.conn.executemany(
            f"INSERT INTO {quoted(table.name)} ({', '.join(map(quoted, table.columns))})"
            f" VALUES ({', '.join('?' * len(table.columns))})", rows)

    async def finish(self, tables: Sequence[Table]) -> None:
        """Nothing: a rowid is numbered past the largest there is."""

    async def commit(self) -> None:
        self.conn.execute("COMMIT")

    async def rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")


# Every ordinary table but schema_migrations: its columns (but generated ones), collatable
# columns, identity columns, primary key in order, and the tables it refers to.
PG_TABLES = """
SELECT c.relname::text,
       array_agg(a.attname::text) FILTER (WHERE a.attgenerated = ''),
       coalesce(array_agg(a.attname::text) FILTER (WHERE a.attcollation <> 0), '{}'),
       coalesce(array_agg(a.attname::text ORDER BY a.attnum) FILTER (WHERE a.attidentity <> ''),
                '{}'),
       (SELECT array_agg(k.attname::text ORDER BY u.n) FROM pg_constraint p
               CROSS JOIN LATERAL unnest(p.conkey) WITH ORDINALITY AS u(attnum, n)
               JOIN pg_attribute k ON k.attrelid = p.conrelid AND k.attnum = u.attnum
        WHERE p.conrelid = c.oid AND p.contype = 'p'),
       (SELECT coalesce(array_agg(p.confrelid::regclass::text), '{}') FROM pg_constraint p
        WHERE p.conrelid = c.oid AND p.contype = 'f')
FROM pg_class c
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace
  AND c.relname <> 'schema_migrations'
GROUP BY c.oid, c.relname
"""


class PostgresSide:
    """A PostgreSQL database through asyncpg."""

    engine = "postgresql"

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: asyncpg.Connection | None = None
        self._transaction: Any = None

    @property
    def conn(self) -> asyncpg.Connection:
        assert self._conn is not None, "not open"
        return self._conn

    async def open(self, snapshot: bool) -> None:
        import asyncpg

        self._conn = await asyncpg.connect(self.url)
        if snapshot:
            self._transaction = self._conn.transaction(isolation="repeatable_read",
                                                       readonly=True)
            await self._transaction.start()

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()  # and with it an open snapshot
            self._conn = self._transaction = None

    async def applied(self) -> list[tuple[int, str, str]]:
        from node.postgres import applied_on

        return await applied_on(self.conn)

    async def migrate(self) -> None:
        from node import postgres

        await postgres.migrate(self.url)  # on a connection of its own, under its lock

    async def tables(self) -> list[Table]:
        return [Table(name, tuple(sorted(columns)), tuple(key or sorted(columns)),
                      frozenset(parents) - {name}, frozenset(text), tuple(identity))
                for name, columns, text, identity, key, parents
                in await self.conn.fetch(PG_TABLES)]

    async def value(self, sql: str) -> Any:
        return await self.conn.fetchval(sql)

    async def rows(self, table: Table) -> AsyncIterator[list[tuple]]:
        # NULLS FIRST, and "C" (byte order) for text, as SQLite orders.
        order = ", ".join(quoted(c) + (' COLLATE "C"' if c in table.text else "")
                          + " NULLS FIRST" for c in table.key)
        cursor = await self.conn.cursor(f"SELECT {', '.join(map(quoted, table.columns))}"
                                        f" FROM {quoted(table.name)} ORDER BY {order}")
        while batch := await cursor.fetch(BATCH):
            yield [tuple(row) for row in batch]

    async def begin(self) -> None:
        self._transaction = self.conn.transaction()
        await self._transaction.start()

    async def insert(self, table: Table, rows: list[tuple]) -> None:
        await self.conn.copy_records_to_table(table.name, records=rows,
                                              columns=list(table.columns))

    async def finish(self, tables: Sequence[Table]) -> None:
        """Move each identity sequence past the largest id copied, so the next row's
        own id does not collide."""
        for table in tables:
            for column in table.identity:
                await self.conn.execute(
                    f"SELECT setval(pg_get_serial_sequence($1, $2),"
                    f" coalesce(max({quoted(column)}), 0) + 1, false)"
                    f" FROM {quoted(table.name)}", quoted(table.name), column)

    async def commit(self) -> None:
        await self._transaction.commit()
        self._transaction = None
        # The planner's statistics of the tables just filled, as autovacuum would gather
        # them later: until then it plans the node's first queries blind.
        await self.conn.execute("ANALYZE")

    async def rollback(self) -> None:
        if self._transaction is not None:
            await self._transaction.rollback()
            self._transaction = None


def database(url: str) -> Side:
    """The database a URL names: ``sqlite:///ABSOLUTE/PATH`` or ``sqlite:RELATIVE/PATH``,
    ``postgresql://…`` or ``postgres://…``."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite" and not parts.netloc and parts.path:
        return SqliteSide(Path(parts.path))
    if parts.scheme in ("postgresql", "postgres"):
        return PostgresSide(url)
    raise CopyRefused(f"{url.split('://')[0].split(':')[0]!r} is not a database this copies:"
                      " give sqlite:///ABSOLUTE/PATH/grassroots.db, sqlite:RELATIVE/PATH"
                      " or postgresql://USER@HOST/DATABASE.")


def in_order(tables: list[Table]) -> list[Table]:
    """Tables in an order where each comes after those it refers to (ties by name)."""
    by_name = {table.name: table for table in tables}
    placed: dict[str, Table] = {}
    while len(placed) < len(by_name):
        ready = [name for name, table in sorted(by_name.items()) if name not in placed
                 and all(p in placed or p not in by_name for p in table.parents)]
        if not ready:
            raise ValueError("the foreign keys of these tables form a cycle: "
                             + ", ".join(sorted(set(by_name) - set(placed))))
        placed.update((name, by_name[name]) for name in ready)
    return list(placed.values())


def encoded(row: Sequence[Any]) -> bytes:
    """A row as the digest reads it: each value as a type tag, a length and its bytes."""
    parts = []
    for value in row:
        if value is None:
            tag, data = b"n", b""
        elif isinstance(value, int):
            tag, data = b"i", str(value).encode()
        elif isinstance(value, float):
            tag, data = b"f", value.hex().encode()
        elif isinstance(value, str):
            tag, data = b"t", value.encode()
        elif isinstance(value, (bytes, memoryview)):
            tag, data = b"b", bytes(value)
        else:
            raise TypeError(f"no canonical form for a {type(value).__name__}")
        parts.append(tag + len(data).to_bytes(8, "big") + data)
    return b"".join(parts)


async def table_digest(side: Side, table: Table) -> tuple[int, str]:
    """The table's row count and the SHA-256 of its rows in key order."""
    digest, count = hashlib.sha256(), 0
    async for batch in side.rows(table):
        for row in batch:
            digest.update(encoded(row))
        count += len(batch)
    return count, digest.hexdigest()


async def compare(source: Side, target: Side) -> list[TableCheck]:
    """Every table's count and digest on both sides, as each side now sees it."""
    pairs = await _matched_tables(source, target)
    return [TableCheck(ours.name, await table_digest(source, ours),
                       await table_digest(target, theirs)) for ours, theirs in pairs]


@asynccontextmanager
async def opened(side: Side, snapshot: bool) -> AsyncIterator[Side]:
    """``side`` open for the block: a snapshot to read, or a connection to write on."""
    await side.open(snapshot)
    try:
        yield side
    finally:
        await side.close()


async def copy_database(source_url: str, target_url: str) -> list[TableCheck]:
    """Copy every table from a snapshot of the source into the empty target (migrated
    first), in one transaction; then each table's check against that same snapshot."""
    target = database(target_url)
    async with opened(database(source_url), snapshot=True) as source:
        await _latest(source, "source")
        async with opened(target, snapshot=False):
            await _empty(target)
            await target.migrate()
            await _latest(target, "target")
            pairs = await _matched_tables(source, target)
            await target.begin()
            try:
                for ours, theirs in pairs:
                    async for batch in source.rows(ours):
                        await target.insert(theirs, batch)
                await target.finish([theirs for _, theirs in pairs])
            except BaseException:
                await target.rollback()
                raise
            await target.commit()
        async with opened(target, snapshot=True):
            return await compare(source, target)


async def _latest(side: Side, role: str) -> None:
    applied = await side.applied()
    refuse_unknown(applied, side.engine)
    known = [version for version, _, _ in migration_files(side.engine)]
    done = {version for version, _, _ in applied}
    if done != set(known):
        raise CopyRefused(f"The {role} database has {len(done)} of the {len(known)} migrations"
                          " this version knows: run grassroots migrate on it first.")


async def _empty(target: Side) -> None:
    holding = [table.name for table in in_order(await target.tables())
               if await target.value(f"SELECT EXISTS (SELECT 1 FROM {quoted(table.name)})")]
    if holding:
        named = ", ".join(holding[:3]) + (f" and {len(holding) - 3} more" if holding[3:] else "")
        raise CopyRefused(f"The target database holds rows (in {named}):"
                          " copy into a new, empty database.")


async def _matched_tables(source: Side, target: Side) -> list[tuple[Table, Table]]:
    """Each table on both sides, in foreign key order; CopyRefused unless they agree."""
    ours, theirs = in_order(await source.tables()), in_order(await target.tables())
    if ours != theirs:
        differ = sorted({t.name for t in ours}.symmetric_difference(t.name for t in theirs)
                        or {a.name for a, b in zip(ours, theirs) if a != b})
        raise CopyRefused("The two databases' schemas differ, in: " + ", ".join(differ))
    return list(zip(ours, theirs))
