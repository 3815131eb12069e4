"""The directory at scale: 10,000 groups and 100,000 meetings, 80% federated from 200 peers.

Built through the node's own storage functions (``node.storage.remote`` for
peers' listings, ``node.storage.groups``/``events`` for local ones), so every
row, tag, search entry and expanded occurrence is what the node itself
writes. Only the driver differs: statements run inline on one sqlite3
connection in one transaction, instead of one aiosqlite round trip per
statement and one commit per write, and the two secondary indexes of the
occurrences are made once at the end (sorting 20 million rows beats
inserting each into two B-trees); that is what makes a 110,000-write import
take seconds rather than minutes, and a 1,100,000-write one minutes.

The node publishes each recorded change of a local listing to its
followers; this one has none, so the build settles every change as the
publisher would with nobody to send to (``federation.store.settle_change``),
leaving the node idle when it starts, as one that has been running is.
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
from federation import store
from node.db import SqliteDatabase, migrate
from node.domain import Visibility
from node.storage import accounts, events, groups, remote

BATCH = 1000  # changes settled a read at a time
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


# Made after the rows are in: nothing the build does reads through them.
DEFERRED_INDEXES = ("occurrences_time", "occurrences_group")


class InlineDatabase(SqliteDatabase):
    """A SQLite ``Database`` for bulk building: inline statements in one transaction."""

    async def open(self) -> None:
        self._conn = sqlite3.connect(self.path, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        migrate(self._conn)
        self._conn.execute("PRAGMA foreign_keys = ON")
        # Test data: a crash means building it again, so no journal and no fsync.
        self._conn.execute("PRAGMA journal_mode = OFF")
        self._conn.execute("PRAGMA synchronous = OFF")
        self._conn.execute("PRAGMA cache_size = -1048576")  # 1 GB: the indexes stay in memory
        marks = ",".join("?" * len(DEFERRED_INDEXES))
        self._deferred = [sql for (sql,) in self._conn.execute(
            f"SELECT sql FROM sqlite_master WHERE type = 'index' AND name IN ({marks})",
            DEFERRED_INDEXES)]
        for name in DEFERRED_INDEXES:
            self._conn.execute(f"DROP INDEX {name}")
        self._conn.execute("BEGIN")

    async def close(self) -> None:
        for sql in self._deferred:
            self._conn.execute(sql)
        self._conn.execute("COMMIT")
        self._conn.execute("PRAGMA journal_mode = WAL")  # as the node keeps it
        self._conn.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_Connection]:
        yield _Connection(self._conn)

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
    if not owners:  # every group local, or every group federated
        return []
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
    while changes := await store.take_changes(db, BATCH):
        for seq, kind, local_id in changes:
            await store.settle_change(db, seq, kind, local_id, [], f"{kind}:{local_id}", None)
    occurrences = (await db.fetchone("SELECT count(*) FROM occurrences"))[0]
    await db.close()
    return Built(n_groups, n_meetings, occurrences, time.perf_counter() - started)


def node_holding(data: Path, n_groups: int, n_meetings: int) -> Built:
    """A new node data directory at ``data`` whose database holds the data set."""
    import asyncio

    from node.cli import initialise
    from node.config import load_config

    initialise(data, "http://127.0.0.1:8000")
    return asyncio.run(build(load_config(data).db_path, n_groups, n_meetings))


if __name__ == "__main__":
    import asyncio
    import sys

    target = Path(sys.argv[1])
    scale = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
    built = asyncio.run(build(target, int(10_000 * scale), int(100_000 * scale)))
    print(built, f"{built.writes_per_second:.0f} writes/s")
