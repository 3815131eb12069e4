"""The directory at scale: 10,000 groups and 100,000 meetings, 80% federated from 200 peers.

Built through the node's own storage functions (``node.storage.remote`` for
peers' listings, ``node.storage.groups``/``events`` for local ones), so every
row, tag, search entry and expanded occurrence is what the node itself
writes. Only the driver differs: statements run inline on one sqlite3
connection and commit every ``BATCH`` writes, instead of one aiosqlite
round trip per statement and one commit per write; that is what makes a
110,000-write import take seconds rather than minutes.
"""
from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import corpus
from node.db import Database, migrate
from node.domain import Visibility
from node.storage import accounts, events, groups, remote

BATCH = 1000
SEED = 20261127


class _Cursor:
    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor
        self.lastrowid = cursor.lastrowid
        self.rowcount = cursor.rowcount

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()


class _Connection:
    """The part of aiosqlite's connection the storage layer uses, run inline."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> _Cursor:
        return _Cursor(self._conn.execute(sql, tuple(params)))

    async def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> _Cursor:
        return _Cursor(self._conn.executemany(sql, rows))


class InlineDatabase(Database):
    """A ``Database`` for bulk building: inline statements, one commit per ``BATCH`` writes."""

    async def open(self) -> None:
        self._conn = sqlite3.connect(self.path, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        migrate(self._conn)
        self._conn.execute("PRAGMA foreign_keys = ON")
        # Test data: a crash means building it again, so no journal and no fsync.
        self._conn.execute("PRAGMA journal_mode = OFF")
        self._conn.execute("PRAGMA synchronous = OFF")
        self._conn.execute("PRAGMA cache_size = -262144")  # 256 MB: the indexes stay in memory
        self._writes = 0
        self._conn.execute("BEGIN")

    async def close(self) -> None:
        self._conn.execute("COMMIT")
        self._conn.execute("PRAGMA journal_mode = WAL")  # as the node keeps it
        self._conn.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_Connection]:
        yield _Connection(self._conn)
        self._writes += 1
        if self._writes % BATCH == 0:
            self._conn.execute("COMMIT")
            self._conn.execute("BEGIN")

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        return self._conn.execute(sql, tuple(params)).fetchall()

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        return self._conn.execute(sql, tuple(params)).fetchone()


@dataclass(frozen=True, slots=True)
class Built:
    groups: int
    meetings: int
    occurrences: int
    seconds: float

    @property
    def writes_per_second(self) -> float:
        return (self.groups + self.meetings) / self.seconds


def _spread(rng: random.Random, total: int, owners: int) -> list[int]:
    """How many meetings each group has: most a few, some many, some none."""
    weights = [rng.paretovariate(1.5) for _ in range(owners)]
    picks = rng.choices(range(owners), weights, k=total)
    counts = [0] * owners
    for owner in picks:
        counts[owner] += 1
    return counts


async def build(path: Path, n_groups: int = 10_000, n_meetings: int = 100_000,
                n_peers: int = 200, federated_share: float = 0.8,
                today: datetime | None = None) -> Built:
    """Write the data set into a new database at ``path`` (the node's schema)."""
    rng = random.Random(SEED)
    today = today or datetime.now().replace(microsecond=0)
    started = time.perf_counter()
    db = InlineDatabase(path)
    await db.open()
    facilitator = await accounts.create_account(
        db, email="facilitator@bench.invalid", display_name="Facilitator", password_hash=None)
    n_remote = int(n_groups * federated_share)
    owners: list[tuple[int, corpus.Listing, str | None]] = []  # (group id, listing, peer)
    for serial in range(n_groups):
        listing = corpus.group(rng, serial)
        if serial < n_remote:
            peer = f"peer{serial % n_peers:03d}.example"
            slug = f"g{serial}"
            draft = replace(listing.draft, visibility=Visibility.PUBLIC, contact="")
            group_id = await remote.upsert_remote_group(
                db, origin=peer, ap_id=f"https://{peer}/groups/{slug}",
                url=f"https://{peer}/groups/{slug}", username=slug, draft=draft)
        else:
            peer = None
            slug = await groups.create_group(db, listing.draft, facilitator)
            group_id = (await groups.get_group(db, slug)).id
        owners.append((group_id, listing, peer))
    # Federated groups hold the federated share of meetings, local groups the rest.
    per_group = (_spread(rng, int(n_meetings * federated_share), n_remote)
                 + _spread(rng, n_meetings - int(n_meetings * federated_share),
                           n_groups - n_remote))
    serial = 0
    for (group_id, listing, peer), count in zip(owners, per_group):
        for _ in range(count):
            draft = corpus.meeting(rng, listing, today)
            if peer is None:
                await events.create_event(db, group_id, draft)
            else:
                serial += 1
                await remote.upsert_remote_event(
                    db, group_id=group_id, ap_id=f"https://{peer}/events/{serial}",
                    url=f"https://{peer}/events/{serial}", draft=draft, changes=[],
                    cancelled=False)
    occurrences = (await db.fetchone("SELECT count(*) FROM occurrences"))[0]
    await db.close()
    return Built(n_groups, n_meetings, occurrences, time.perf_counter() - started)


if __name__ == "__main__":
    import asyncio
    import sys

    target = Path(sys.argv[1])
    scale = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
    built = asyncio.run(build(target, int(10_000 * scale), int(100_000 * scale)))
    print(built, f"{built.writes_per_second:.0f} writes/s")
