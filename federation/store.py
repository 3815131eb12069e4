"""All SQL of the federation tables: keys, peers, remote actors, inbox, queue."""
from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.concurrency import run_in_threadpool

from federation.keys import generate_key, public_pem
from node.db import Database, Row, Writing, stamp, timestamp

INBOX_LEASE_SECONDS = 60


def later(seconds: float) -> str:
    return stamp(datetime.now(UTC) + timedelta(seconds=seconds))


# Keys ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class KeyPair:
    private_pem: str
    public_pem: str


async def key_for(db: Database, owner: str) -> KeyPair:
    """The actor's key pair, made on first use ('node' or 'group:<id>')."""
    row = await db.fetchone("SELECT private_pem, public_pem FROM actor_keys WHERE owner = ?",
                            (owner,))
    if row is not None:
        return KeyPair(row[0], row[1])
    private = await run_in_threadpool(generate_key)
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO actor_keys (owner, private_pem, public_pem, created_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (owner, private, public_pem(private), timestamp()),
        )
        cursor = await conn.execute(
            "SELECT private_pem, public_pem FROM actor_keys WHERE owner = ?", (owner,))
        row = await cursor.fetchone()
    return KeyPair(row[0], row[1])


# Peers -----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Peer:
    host: str
    actor_id: str
    inbox: str
    outbox: str | None
    following: str      # none | requested | accepted | rejected
    follow_id: str | None
    follower: str       # none | pending | approved | rejected
    their_follow_id: str | None
    last_success_at: str | None
    last_inbound_at: str | None = None
    blocked: bool = False
    listings: int = 0
    stale: int = 0  # listings its origin has not confirmed within the stale period


def _peer(row: Row) -> Peer:
    keys = row.keys()
    return Peer(
        host=row["host"], actor_id=row["actor_id"], inbox=row["inbox"], outbox=row["outbox"],
        following=row["following"], follow_id=row["follow_id"], follower=row["follower"],
        their_follow_id=row["their_follow_id"], last_success_at=row["last_success_at"],
        last_inbound_at=row["last_inbound_at"],
        blocked=bool(row["blocked"]) if "blocked" in keys else False,
        **{name: row[name] for name in ("listings", "stale") if name in keys},
    )


async def save_peer(db: Database, host: str, actor_id: str, inbox: str,
                    outbox: str | None) -> None:
    now = timestamp()
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO peers (host, actor_id, inbox, outbox, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (host) DO UPDATE SET"
            " actor_id = excluded.actor_id, inbox = excluded.inbox,"
            " outbox = excluded.outbox, updated_at = excluded.updated_at",
            (host, actor_id, inbox, outbox, now, now),
        )


async def get_peer(db: Database, host: str) -> Peer | None:
    row = await db.fetchone("SELECT * FROM peers WHERE host = ?", (host,))
    return None if row is None else _peer(row)


async def list_peers(db: Database, stale_before: str = "") -> list[Peer]:
    """Every peer, whether it is blocked, its listings here and how many of them were
    last confirmed before ``stale_before``."""
    rows = await db.fetchall(
        "SELECT p.*,"
        " p.host IN (SELECT domain FROM blocked_domains) AS blocked,"
        " (SELECT count(*) FROM groups g WHERE g.origin = p.host) AS listings,"
        " (SELECT count(*) FROM groups g WHERE g.origin = p.host"
        "  AND g.confirmed_at < ?) AS stale"
        " FROM peers p ORDER BY p.host", (stale_before,)
    )
    return [_peer(r) for r in rows]


async def note_inbound(db: Database, hosts: Collection[str]) -> None:
    """Activities from these peers were just applied."""
    if hosts:
        async with db.transaction() as conn:
            await conn.executemany("UPDATE peers SET last_inbound_at = ? WHERE host = ?",
                                   [(timestamp(), host) for host in hosts])


async def set_following(db: Database, host: str, state: str,
                        follow_id: str | None = None) -> None:
    async with db.transaction() as conn:
        await conn.execute(
            "UPDATE peers SET following = ?, follow_id = coalesce(?, follow_id),"
            " updated_at = ? WHERE host = ?",
            (state, follow_id, timestamp(), host),
        )


async def set_follower(db: Database, host: str, state: str,
                       their_follow_id: str | None = None) -> None:
    async with db.transaction() as conn:
        await conn.execute(
            "UPDATE peers SET follower = ?, their_follow_id = coalesce(?, their_follow_id),"
            " updated_at = ? WHERE host = ?",
            (state, their_follow_id, timestamp(), host),
        )


async def follower_inboxes(db: Database) -> list[str]:
    """Inboxes of peer nodes approved to follow this node."""
    rows = await db.fetchall(
        "SELECT inbox FROM peers WHERE follower = 'approved' AND host NOT IN"
        " (SELECT domain FROM blocked_domains)")
    return [r[0] for r in rows]


async def block_domain(db: Database, domain: str, reason: str = "") -> None:
    """Block ``domain``; blocking it again replaces the public reason."""
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO blocked_domains (domain, reason, created_at) VALUES (?, ?, ?)"
            " ON CONFLICT (domain) DO UPDATE SET reason = excluded.reason",
            (domain, reason, timestamp()))
        await conn.execute("UPDATE peers SET following = 'none', follower = 'rejected'"
                           " WHERE host = ?", (domain,))
        await conn.execute("DELETE FROM group_followers WHERE actor_id IN"
                           " (SELECT id FROM remote_actors WHERE host = ?)", (domain,))
        # Nothing more is sent to a blocked peer.
        await conn.execute(
            "UPDATE deliveries SET state = 'failed', last_error = 'peer blocked',"
            " state_changed = ? WHERE state = 'queued' AND inbox IN"
            " (SELECT inbox FROM peers WHERE host = ?)", (timestamp(), domain))


async def unblock_domain(db: Database, domain: str) -> bool:
    async with db.transaction() as conn:
        cursor = await conn.execute("DELETE FROM blocked_domains WHERE domain = ?", (domain,))
        return cursor.rowcount == 1


async def is_blocked(db: Database, host: str) -> bool:
    return await db.fetchval("SELECT 1 FROM blocked_domains WHERE domain = ?",
                             (host,)) is not None


async def standing(db: Database, domains: Collection[str], host: str) -> tuple[bool, Peer | None]:
    """In one read: whether any of ``domains`` is blocked, and the peer at ``host``."""
    marks = ",".join("?" * len(domains))
    row = await db.fetchone(
        f"SELECT EXISTS (SELECT 1 FROM blocked_domains WHERE domain IN ({marks})) AS blocked,"
        " peers.* FROM (SELECT 1) AS one LEFT JOIN peers ON peers.host = ?", (*domains, host))
    assert row is not None
    return bool(row["blocked"]), None if row["host"] is None else _peer(row)


@dataclass(frozen=True, slots=True)
class Block:
    domain: str
    reason: str  # public, unless the admin keeps the block list private
    created_at: str


async def blocked_domains(db: Database) -> list[Block]:
    rows = await db.fetchall("SELECT domain, reason, created_at FROM blocked_domains"
                             " ORDER BY domain")
    return [Block(*r) for r in rows]


@dataclass(frozen=True, slots=True)
class Neighbour:
    """A peer as the node's public policy names it: its host and its node actor."""

    host: str
    actor_id: str


async def neighbours(db: Database) -> tuple[list[Neighbour], list[Neighbour]]:
    """(peers this node follows, peers following it): accepted both ways, none blocked."""
    rows = await db.fetchall(
        "SELECT host, actor_id, following = 'accepted', follower = 'approved' FROM peers"
        " WHERE (following = 'accepted' OR follower = 'approved')"
        " AND host NOT IN (SELECT domain FROM blocked_domains) ORDER BY host")
    return ([Neighbour(r[0], r[1]) for r in rows if r[2]],
            [Neighbour(r[0], r[1]) for r in rows if r[3]])


# Remote actors (the key cache) -------------------------------------------------

@dataclass(frozen=True, slots=True)
class RemoteActor:
    id: str
    host: str
    type: str
    username: str
    inbox: str
    shared_inbox: str | None
    outbox: str | None
    key_id: str
    public_pem: str
    # (key id, publicKeyMultibase) of its Ed25519 Multikeys (FEP-521a): all of them when
    # read from its document, the one asked for when found by that key's id, else none.
    multikeys: tuple[tuple[str, str], ...] = ()

    @property
    def delivery_inbox(self) -> str:
        return self.shared_inbox or self.inbox

    def public_key(self, key_id: str) -> str | None:
        """Its key ``key_id``: the RSA publicKeyPem or a Multikey's publicKeyMultibase."""
        if key_id == self.key_id:
            return self.public_pem
        return next((key for listed, key in self.multikeys if listed == key_id), None)


async def save_actor(db: Database, actor: RemoteActor) -> None:
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO remote_actors (id, host, type, username, inbox, shared_inbox, outbox,"
            " key_id, public_pem, fetched_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET host = excluded.host, type = excluded.type,"
            " username = excluded.username, inbox = excluded.inbox,"
            " shared_inbox = excluded.shared_inbox, outbox = excluded.outbox,"
            " key_id = excluded.key_id, public_pem = excluded.public_pem,"
            " fetched_at = excluded.fetched_at",
            (actor.id, actor.host, actor.type, actor.username, actor.inbox,
             actor.shared_inbox, actor.outbox, actor.key_id, actor.public_pem, timestamp()),
        )
        await conn.execute("DELETE FROM remote_actor_keys WHERE actor_id = ?", (actor.id,))
        await conn.executemany(
            "INSERT INTO remote_actor_keys (key_id, actor_id, public_key) VALUES (?, ?, ?)"
            " ON CONFLICT (key_id) DO UPDATE SET actor_id = excluded.actor_id,"
            " public_key = excluded.public_key",
            [(key_id, actor.id, key) for key_id, key in actor.multikeys])
        await conn.execute("DELETE FROM fetch_failures WHERE url = ?", (actor.id,))


def _actor(row: Row) -> RemoteActor:
    return RemoteActor(row["id"], row["host"], row["type"], row["username"], row["inbox"],
                       row["shared_inbox"], row["outbox"], row["key_id"], row["public_pem"])


async def get_actor(db: Database, actor_id: str) -> RemoteActor | None:
    row = await db.fetchone("SELECT * FROM remote_actors WHERE id = ?", (actor_id,))
    return None if row is None else _actor(row)


async def actor_fetched_at(db: Database, actor_id: str) -> str | None:
    return await db.fetchval("SELECT fetched_at FROM remote_actors WHERE id = ?", (actor_id,))


async def record_failure(db: Database, url: str, reason: str) -> None:
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO fetch_failures (url, reason, failed_at) VALUES (?, ?, ?)"
            " ON CONFLICT (url) DO UPDATE SET reason = excluded.reason,"
            " failed_at = excluded.failed_at", (url, reason[:300], timestamp()))


async def recent_failure(db: Database, url: str, within_seconds: float) -> str | None:
    """Why fetching ``url`` failed, if it failed that recently (negative cache)."""
    return await db.fetchval(
        "SELECT reason FROM fetch_failures WHERE url = ? AND failed_at > ?",
        (url, stamp(datetime.now(UTC) - timedelta(seconds=within_seconds))))


# Followers of local groups ----------------------------------------------------

async def add_group_follower(db: Database, group_id: int, actor_id: str, inbox: str,
                             follow_id: str) -> None:
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO group_followers (group_id, actor_id, inbox, follow_id, created_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (group_id, actor_id) DO UPDATE"
            " SET inbox = excluded.inbox,"
            " follow_id = excluded.follow_id", (group_id, actor_id, inbox, follow_id,
                                                timestamp()))


async def remove_group_follower(db: Database, group_id: int, actor_id: str) -> bool:
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "DELETE FROM group_followers WHERE group_id = ? AND actor_id = ?",
            (group_id, actor_id))
        return cursor.rowcount == 1


async def group_follower_count(db: Database, group_id: int) -> int:
    return await db.fetchval("SELECT count(*) FROM group_followers WHERE group_id = ?",
                             (group_id,))


async def group_follower_inboxes(db: Database, group_id: int) -> list[str]:
    rows = await db.fetchall("SELECT DISTINCT inbox FROM group_followers WHERE group_id = ?",
                             (group_id,))
    return [r[0] for r in rows]


# Inbox ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class InboxItem:
    activity_id: str
    actor: str
    host: str
    type: str
    activity: dict[str, Any]
    attempts: int
    received_at: str = ""


@dataclass(frozen=True, slots=True)
class Arrival:
    """A verified activity as the inbox hands it over, before it is stored."""

    activity_id: str
    actor: str
    host: str
    type: str
    body: str


async def accept_inbox_items(db: Database, arrivals: list[Arrival]) -> list[bool]:
    """Store verified activities once by id, all in one write; per arrival, False if seen.

    An id repeated within ``arrivals`` is new only at its first place.
    """
    now = timestamp()
    # One statement is one transaction and one trip to the writer, however many arrivals.
    rows = await db.write(
        "INSERT INTO inbox_items (activity_id, actor, host, type, body, received_at,"
        " next_attempt_at) VALUES " + ",".join(["(?, ?, ?, ?, ?, ?, ?)"] * len(arrivals))
        + " ON CONFLICT DO NOTHING RETURNING activity_id",
        [value for a in arrivals
         for value in (a.activity_id, a.actor, a.host, a.type, a.body, now, now)])
    new = {row[0] for row in rows}
    fresh = []
    for arrival in arrivals:
        fresh.append(arrival.activity_id in new)
        new.discard(arrival.activity_id)
    return fresh


async def inbox_backlog(db: Database) -> int:
    """Stored activities not yet applied (the inbox queue's length)."""
    return await db.fetchval("SELECT count(*) FROM inbox_items WHERE state = 'received'")


async def claim_inbox_items(db: Database, limit: int = 50) -> list[InboxItem]:
    """Due items, longest due first (new ones in arrival order), leased so a crash leaves
    them to retry; the order is the index's, so a long queue is not sorted on each claim."""
    now = timestamp()
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "SELECT activity_id FROM inbox_items WHERE state = 'received'"
            f" AND next_attempt_at <= ? ORDER BY next_attempt_at{db.dialect.then_arrival}"
            f" LIMIT ? {db.dialect.skip_locked}", (now, limit))
        due = [row[0] for row in await cursor.fetchall()]
        if not due:
            return []
        cursor = await conn.execute(
            "UPDATE inbox_items SET next_attempt_at = ?, attempts = attempts + 1"
            f" WHERE activity_id {db.dialect.among} RETURNING *",
            (later(INBOX_LEASE_SECONDS), db.dialect.listed(due)))
        rows = await cursor.fetchall()
    place = {activity_id: n for n, activity_id in enumerate(due)}  # ties in arrival order
    rows = sorted(rows, key=lambda r: (r["received_at"], place[r["activity_id"]]))
    return [InboxItem(r["activity_id"], r["actor"], r["host"], r["type"],
                      json.loads(r["body"]), r["attempts"], r["received_at"]) for r in rows]


async def release_leases(db: Database) -> None:
    """End every lease this node's runner holds: for a runner starting after a crash, or
    stopping with rows claimed but not tried. Only one process serves a data directory.

    An inbox item's lease is its next attempt moved a lease ahead, so an item in its
    first 60 s of backoff is made due too: one early retry, never a lost item.
    """
    now = timestamp()
    async with db.transaction() as conn:
        await conn.execute("UPDATE deliveries SET locked_until = NULL"
                           " WHERE state = 'queued' AND locked_until IS NOT NULL")
        await conn.execute(
            "UPDATE inbox_items SET next_attempt_at = ? WHERE state = 'received'"
            " AND next_attempt_at > ? AND next_attempt_at <= ?",
            (now, now, later(INBOX_LEASE_SECONDS)))


async def prune_inbox(db: Database, before: str) -> int:
    """Forget activities done with before ``before``: past the window a repeat is recognised in."""
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "DELETE FROM inbox_items WHERE state != 'received' AND received_at < ?", (before,))
        return cursor.rowcount


@dataclass(slots=True)
class Finish:
    """Marks one inbox item applied inside the transaction that applies it.

    A handler gives it to its last write, after which nothing can fail or be
    ignored; ``done`` then says the mark is part of that write, which commits
    or rolls back with it (so the runner need not mark the item again).
    """

    activity_id: str
    done: bool = False

    async def __call__(self, conn: Writing) -> None:
        await conn.execute(_FINISHED, ("applied", None, self.activity_id))
        self.done = True


# Done with: the raw body goes, the id stays to recognise a repeat.
_FINISHED = "UPDATE inbox_items SET state = ?, last_error = ?, body = '' WHERE activity_id = ?"


async def finish_inbox_item(db: Database, activity_id: str, state: str,
                            error: str | None = None, retry_in: float | None = None) -> None:
    async with db.transaction() as conn:
        if retry_in is not None:
            await conn.execute(
                "UPDATE inbox_items SET last_error = ?, next_attempt_at = ?"
                " WHERE activity_id = ?", (error, later(retry_in), activity_id))
        else:
            await conn.execute(_FINISHED, (state, error, activity_id))


# Published activities and their deliveries ---------------------------------------

async def publish(db: Database, activity: dict[str, Any], owner: str, inboxes: list[str],
                  object_id: str | None = None) -> None:
    """Store an activity and one queued delivery per distinct inbox, in one write."""
    async with db.transaction() as conn:
        await store_activity(conn, activity, owner, inboxes, object_id)


async def store_activity(conn, activity: dict[str, Any], owner: str, inboxes: list[str],
                         object_id: str | None = None, subject: str | None = None) -> None:
    """``subject`` is the local object the activity speaks of ('group:<id>', 'event:<id>')."""
    now = timestamp()
    cursor = await conn.execute("SELECT coalesce(max(seq), 0) + 1 FROM activities")
    (seq,) = await cursor.fetchone()
    await conn.execute(
        "INSERT INTO activities (id, actor, type, object_id, body, published, seq, subject)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (activity["id"], owner, activity["type"], object_id, json.dumps(activity), now, seq,
         subject))
    await conn.executemany(
        "INSERT INTO deliveries (activity_id, inbox, signer, next_attempt_at, created_at,"
        " state_changed) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [(activity["id"], inbox, owner, now, now, now) for inbox in dict.fromkeys(inboxes)])


async def get_activity(db: Database, activity_id: str) -> dict[str, Any] | None:
    """A published activity, unless what it speaks of was taken back since."""
    body = await db.fetchval("SELECT body FROM activities WHERE id = ? AND withdrawn = 0",
                             (activity_id,))
    return None if body is None else json.loads(body)


def _outbox_where(owner: str | None, kinds: tuple[str, ...]) -> tuple[str, list[Any]]:
    where = f"withdrawn = 0 AND type IN ({','.join('?' * len(kinds))})"
    params: list[Any] = list(kinds)
    if owner is not None:
        where += " AND actor = ?"
        params.append(owner)
    return where, params


async def outbox_total(db: Database, owner: str | None, kinds: tuple[str, ...]) -> int:
    """How many activities the outbox serves; ``owner`` None means all actors."""
    where, params = _outbox_where(owner, kinds)
    return await db.fetchval(f"SELECT count(*) FROM activities WHERE {where}", params)


async def outbox_page(db: Database, owner: str | None, kinds: tuple[str, ...], *,
                      before: int | None = None, after: int | None = None,
                      limit: int) -> list[tuple[int, dict[str, Any]]]:
    """(seq, activity) pairs, newest first: the newest older than ``before`` or, with
    ``after``, the oldest newer than it; ``owner`` None means all actors."""
    where, params = _outbox_where(owner, kinds)
    if after is not None:
        rows = await db.fetchall(f"SELECT seq, body FROM activities WHERE {where} AND seq > ?"
                                 " ORDER BY seq LIMIT ?", [*params, after, limit])
        rows.reverse()
    else:
        rows = await db.fetchall(
            f"SELECT seq, body FROM activities WHERE {where} AND seq < ?"
            " ORDER BY seq DESC LIMIT ?", [*params, before if before is not None else 1 << 62,
                                           limit])
    return [(r[0], json.loads(r[1])) for r in rows]


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    activity_id: str
    inbox: str
    signer: str
    attempts: int
    created_at: str
    body: str
    activity_type: str


async def claim_deliveries(db: Database, lease_seconds: float, limit: int) -> list[Delivery]:
    """Due deliveries, leased in one statement; an expired lease is due again.

    An inbox with a delivery leased is passed over: one worker at a time sends to an
    inbox, in order, whichever process it runs in (claims are write transactions, so
    each sees the leases of those before it)."""
    now = timestamp()
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "UPDATE deliveries SET locked_until = ? WHERE id IN ("
            " SELECT id FROM deliveries d WHERE state = 'queued' AND next_attempt_at <= ?"
            " AND (locked_until IS NULL OR locked_until <= ?)"
            " AND NOT EXISTS (SELECT 1 FROM deliveries h WHERE h.inbox = d.inbox"
            "  AND h.state = 'queued' AND h.locked_until > ?)"
            f" ORDER BY next_attempt_at, id LIMIT ? {db.dialect.skip_locked}) RETURNING id",
            (later(lease_seconds), now, now, now, limit))
        ids = [r[0] for r in await cursor.fetchall()]
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        cursor = await conn.execute(
            "SELECT d.id, d.activity_id, d.inbox, d.signer, d.attempts, d.created_at, a.body,"
            " a.type"
            f" FROM deliveries d JOIN activities a ON a.id = d.activity_id WHERE d.id IN ({marks})"
            " ORDER BY d.id", ids)
        rows = await cursor.fetchall()
    return [Delivery(*r) for r in rows]


@dataclass(frozen=True, slots=True)
class Attempted:
    """One attempt's answer: 'sent', 'failed', or 'queued' again at ``retry_at``."""

    delivery_id: int
    state: str
    status: int | None
    error: str | None
    retry_at: str | None = None


@dataclass(frozen=True, slots=True)
class Held:
    """A failing peer: its queued deliveries wait until ``until``; ``release`` ends those leases."""

    inbox: str
    until: str
    release: tuple[int, ...]


@dataclass(slots=True)
class Cycle:
    """What one cycle of the delivery worker learnt, recorded at its end in one write.

    ``reached``: (inbox, host) of each peer that took a delivery (the peer's shared
    inbox, or an actor's on ``host``); ``due``: inboxes whose held deliveries are
    due at once, the peer having answered again.
    """

    attempted: list[Attempted] = field(default_factory=list)
    held: list[Held] = field(default_factory=list)
    reached: list[tuple[str, str]] = field(default_factory=list)
    due: list[str] = field(default_factory=list)


async def record_cycle(db: Database, cycle: Cycle) -> None:
    """A delivery cycle's answers, in one transaction (one commit, not one per POST).

    A crash before it commits leaves the cycle's rows queued and leased: they go
    again when the lease ends, and the peers drop what they already hold.
    """
    now = timestamp()
    async with db.transaction() as conn:
        await conn.executemany(
            "UPDATE deliveries SET state = ?, attempts = attempts + 1, last_status = ?,"
            " last_error = ?, next_attempt_at = coalesce(?, next_attempt_at),"
            " first_failed_at = CASE WHEN ? = 'sent' THEN first_failed_at"
            "  ELSE coalesce(first_failed_at, ?) END,"
            " locked_until = NULL, state_changed = ? WHERE id = ?",
            [(a.state, a.status, a.error, a.retry_at, a.state, now, now, a.delivery_id)
             for a in cycle.attempted])
        for held in cycle.held:
            await conn.execute(
                "UPDATE deliveries SET next_attempt_at = CASE WHEN next_attempt_at > ?"
                " THEN next_attempt_at ELSE ? END WHERE inbox = ? AND state = 'queued'",
                (held.until, held.until, held.inbox))
            if held.release:
                marks = ",".join("?" * len(held.release))
                await conn.execute(
                    f"UPDATE deliveries SET locked_until = NULL WHERE id IN ({marks})"
                    " AND state = 'queued'", held.release)
        await conn.executemany(
            "UPDATE peers SET last_success_at = ? WHERE inbox = ? OR host = ?",
            [(now, inbox, host) for inbox, host in cycle.reached])
        await conn.executemany(
            "UPDATE deliveries SET next_attempt_at = ? WHERE inbox = ? AND state = 'queued'"
            " AND next_attempt_at > ?", [(now, inbox, now) for inbox in cycle.due])


async def delivery_of(db: Database, activity_id: str) -> tuple[str, int, str | None] | None:
    """(state, attempts, last error) of an activity sent to one inbox, as it stands."""
    row = await db.fetchone("SELECT state, attempts, last_error FROM deliveries"
                            " WHERE activity_id = ?", (activity_id,))
    return None if row is None else (row[0], row[1], row[2])


# What an admin sees of the queue, and does with it (/admin/peers) -----------------

@dataclass(frozen=True, slots=True)
class Queue:
    """One inbox's deliveries not sent: waiting (queued) and failed for good."""

    inbox: str
    queued: int
    failed: int
    failing_since: str | None  # the first failure of its oldest failing delivery still waiting
    next_retry: str | None     # when its next waiting delivery is due
    oldest: str | None = None  # when its oldest waiting delivery was queued


async def delivery_queues(db: Database) -> list[Queue]:
    """Every inbox with a delivery waiting or failed."""
    rows = await db.fetchall(
        "SELECT inbox, sum(CASE WHEN state = 'queued' THEN 1 ELSE 0 END),"
        " sum(CASE WHEN state = 'failed' THEN 1 ELSE 0 END),"
        " min(CASE WHEN state = 'queued' THEN first_failed_at END),"
        " min(CASE WHEN state = 'queued' THEN next_attempt_at END),"
        " min(CASE WHEN state = 'queued' THEN created_at END)"
        " FROM deliveries WHERE state IN ('queued', 'failed') GROUP BY inbox ORDER BY inbox")
    return [Queue(*r) for r in rows]


@dataclass(frozen=True, slots=True)
class Pending:
    """A delivery not sent, as the admin sees it."""

    id: int
    inbox: str
    activity_type: str
    object_id: str | None
    state: str                  # queued | failed
    attempts: int
    created_at: str
    first_failed_at: str | None
    next_attempt_at: str
    state_changed: str
    last_status: int | None
    last_error: str | None


async def pending_deliveries(db: Database, inboxes: Collection[str],
                             limit: int = 100) -> tuple[list[Pending], int]:
    """The oldest ``limit`` deliveries waiting or failed to these inboxes, and how many
    there are in all."""
    marks = ",".join("?" * len(inboxes))
    where = f"d.state IN ('queued', 'failed') AND d.inbox IN ({marks})"
    total = await db.fetchval(f"SELECT count(*) FROM deliveries d WHERE {where}", [*inboxes])
    rows = await db.fetchall(
        "SELECT d.id, d.inbox, a.type, a.object_id, d.state, d.attempts, d.created_at,"
        " d.first_failed_at, d.next_attempt_at, d.state_changed, d.last_status, d.last_error"
        f" FROM deliveries d JOIN activities a ON a.id = d.activity_id WHERE {where}"
        " ORDER BY d.id LIMIT ?", [*inboxes, limit])
    return [Pending(*r) for r in rows], total


async def retry_deliveries(db: Database, inboxes: Collection[str],
                           delivery_id: int | None = None) -> int:
    """Make the waiting and failed deliveries to these inboxes (or the one) due now; how
    many. A failed one is queued again and starts a new give-up period."""
    now = timestamp()
    marks = ",".join("?" * len(inboxes))
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "UPDATE deliveries SET next_attempt_at = ?,"
            " attempts = CASE WHEN state = 'failed' THEN 0 ELSE attempts END,"
            " created_at = CASE WHEN state = 'failed' THEN ? ELSE created_at END,"
            " first_failed_at = CASE WHEN state = 'failed' THEN NULL ELSE first_failed_at END,"
            " state_changed = CASE WHEN state = 'failed' THEN ? ELSE state_changed END,"
            " state = 'queued'"
            f" WHERE state IN ('queued', 'failed') AND inbox IN ({marks})"
            " AND (CAST(? AS BIGINT) IS NULL OR id = ?)",
            (now, now, now, *inboxes, delivery_id, delivery_id))
        return cursor.rowcount


async def drop_deliveries(db: Database, inboxes: Collection[str],
                          delivery_id: int | None = None) -> int:
    """Forget the waiting and failed deliveries to these inboxes (or the one); how many."""
    marks = ",".join("?" * len(inboxes))
    async with db.transaction() as conn:
        cursor = await conn.execute(
            f"DELETE FROM deliveries WHERE state IN ('queued', 'failed') AND inbox IN ({marks})"
            " AND (CAST(? AS BIGINT) IS NULL OR id = ?)", (*inboxes, delivery_id, delivery_id))
        return cursor.rowcount


# Publications of local listings ---------------------------------------------------

async def take_changes(db: Database, limit: int = 100) -> list[tuple[int, str, int]]:
    rows = await db.fetchall(
        "SELECT seq, kind, local_id FROM listing_changes ORDER BY seq LIMIT ?", (limit,))
    return [(r[0], r[1], r[2]) for r in rows]


async def publication(db: Database, kind: str, local_id: int) -> tuple[str, str] | None:
    row = await db.fetchone("SELECT ap_id, actor FROM publications WHERE kind = ?"
                            " AND local_id = ?", (kind, local_id))
    return None if row is None else (row[0], row[1])


async def settle_change(db: Database, seq: int, kind: str, local_id: int,
                        sends: list[tuple[dict[str, Any], list[str]]], owner: str,
                        published: tuple[str, str] | None) -> None:
    """One write: the activities and their deliveries, the publication record, the change gone.

    ``published`` is (ap_id, owner) to record, or None when the object was taken back:
    then nothing it published is served any more (a group takes its meetings with it),
    and a group published again later publishes its meetings again.
    """
    subject = f"{kind}:{local_id}"
    async with db.transaction() as conn:
        cursor = await conn.execute("DELETE FROM listing_changes WHERE seq = ? RETURNING seq",
                                    (seq,))
        if await cursor.fetchone() is None:
            return  # another process settled it first: sent once
        for activity, inboxes in sends:
            obj = activity["object"]
            object_id = obj if isinstance(obj, str) else obj.get("id")
            await store_activity(conn, activity, owner, inboxes, object_id, subject)
        if published is None:
            await conn.execute("DELETE FROM publications WHERE kind = ? AND local_id = ?",
                               (kind, local_id))
            if kind == "group":
                await conn.execute("UPDATE activities SET withdrawn = 1 WHERE actor = ?",
                                   (subject,))
                await conn.execute("DELETE FROM publications WHERE kind = 'event' AND actor = ?",
                                   (subject,))
            else:
                await conn.execute("UPDATE activities SET withdrawn = 1 WHERE subject = ?",
                                   (subject,))
        else:
            cursor = await conn.execute(
                "SELECT 1 FROM publications WHERE kind = ? AND local_id = ?", (kind, local_id))
            existed = await cursor.fetchone() is not None
            await conn.execute(
                "INSERT INTO publications (kind, local_id, ap_id, actor) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (kind, local_id) DO UPDATE"
                " SET ap_id = excluded.ap_id, actor = excluded.actor",
                (kind, local_id, *published))
            if kind == "group" and not existed:  # its meetings follow it out (again)
                await conn.execute(
                    "INSERT INTO listing_changes (kind, local_id, created_at)"
                    " SELECT 'event', id, ? FROM events WHERE group_id = ? AND id NOT IN"
                    " (SELECT local_id FROM listing_changes WHERE kind = 'event')",
                    (timestamp(), local_id))


async def audience_of(db: Database, owner: str) -> list[str]:
    """Every inbox that was ever sent something of ``owner``'s, but blocked peers':
    a Delete reaches whoever holds a copy, even once the followers are gone."""
    rows = await db.fetchall(
        "SELECT DISTINCT d.inbox FROM deliveries d JOIN activities a ON a.id = d.activity_id"
        " WHERE a.actor = ? AND d.state = 'sent' AND d.inbox NOT IN"
        " (SELECT inbox FROM peers WHERE host IN (SELECT domain FROM blocked_domains))",
        (owner,))
    return [r[0] for r in rows]


async def actor_of(db: Database, owner: str) -> str | None:
    """The actor id ``owner`` last published as (its URL outlives a deleted group)."""
    body = await db.fetchval("SELECT body FROM activities WHERE actor = ?"
                             " ORDER BY seq DESC LIMIT 1", (owner,))
    return json.loads(body).get("actor") if body else None


async def get_actor_by_key(db: Database, key_id: str) -> RemoteActor | None:
    """The cached actor whose key is ``key_id`` (the inbox's key cache): its RSA key, else
    one of its Multikeys (then read a second time, so an RSA key costs one read as ever)."""
    row = await db.fetchone("SELECT * FROM remote_actors WHERE key_id = ?"
                            " ORDER BY fetched_at DESC LIMIT 1", (key_id,))
    if row is not None:
        return _actor(row)
    row = await db.fetchone(
        "SELECT remote_actors.*, remote_actor_keys.public_key FROM remote_actor_keys"
        " JOIN remote_actors ON remote_actors.id = remote_actor_keys.actor_id"
        " WHERE remote_actor_keys.key_id = ?", (key_id,))
    return None if row is None else replace(_actor(row), multikeys=((key_id, row["public_key"]),))
