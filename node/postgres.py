"""The node's schema on PostgreSQL (``database_url``): migrated as the SQLite file is.

asyncpg is imported inside the functions, so a node on SQLite never loads it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from node.db import migration_files, refuse_unknown

if TYPE_CHECKING:
    import asyncpg

ENGINE = "postgresql"
# pg_advisory_lock key held while migrating (any fixed number; "grassmig" in ASCII), so two
# processes starting at once apply each migration once: the second waits, then finds it done.
MIGRATION_LOCK = 0x67726173736D6967
NOW = """to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')"""  # as db.stamp


async def _connect(url: str) -> asyncpg.Connection:
    import asyncpg

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
