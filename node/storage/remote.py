"""Federated copies of peers' public listings, as the directory shows them.

The narrow interface federation calls: upsert a remote group or meeting,
remove one, remove everything of a peer. Remote rows carry ``origin`` (the
peer's host) and ``ap_id``; they have no members, RSVPs or invite codes.
"""
from __future__ import annotations

from datetime import UTC, datetime

import aiosqlite

from node.db import Database, stamp, timestamp
from node.domain import EventDraft, GroupDraft, OccurrenceChange, occurrence_key
from node.storage.events import (
    LOCAL_FORMAT,
    _draft_values,
    expansion,
    insert_occurrences,
)
from node.storage.groups import _listing_values, _write_listing


async def upsert_remote_group(db: Database, *, origin: str, ap_id: str, url: str,
                              username: str, draft: GroupDraft) -> int:
    """Create or refresh a peer's group listing; its row id."""
    now = timestamp()
    async with db.transaction() as conn:
        cursor = await conn.execute("SELECT id, origin FROM groups WHERE ap_id = ?", (ap_id,))
        row = await cursor.fetchone()
        if row is not None and row[1] != origin:
            raise ValueError(f"{ap_id} is listed from {row[1]}, not {origin}")
        if row is None:
            cursor = await conn.execute(
                "INSERT INTO groups (name, summary, description, agreements, visibility,"
                " join_policy, format, cost, area, address, contact, slug, origin, ap_id, url,"
                " created_at, updated_at) VALUES"
                " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                _listing_values(draft) + (f"{username}@{origin}", origin, ap_id, url, now, now))
            group_id = cursor.lastrowid
        else:
            group_id = row[0]
            await conn.execute(
                "UPDATE groups SET name = ?, summary = ?, description = ?, agreements = ?,"
                " visibility = ?, join_policy = ?, format = ?, cost = ?, area = ?,"
                " address = ?, contact = ?, url = ?, updated_at = ? WHERE id = ?",
                _listing_values(draft) + (url, now, group_id))
        await _write_listing(conn, group_id, draft)
    return group_id


async def remote_group_id(db: Database, ap_id: str) -> int | None:
    return await db.fetchval("SELECT id FROM groups WHERE ap_id = ? AND origin IS NOT NULL",
                             (ap_id,))


async def upsert_remote_event(db: Database, *, group_id: int, ap_id: str, url: str,
                              draft: EventDraft, changes: list[OccurrenceChange],
                              cancelled: bool) -> int:
    """Create or refresh a peer's meeting series under its (remote) group.

    The occurrences are expanded before the write, which rewrites them only if they
    differ from those stored (a repeated Update leaves them be).
    """
    now = datetime.now(UTC)
    # One change per slot: the first named, as when the exceptions table kept the first.
    changes = list({occurrence_key(c.original_start): c for c in reversed(changes)}.values())
    found = expansion(draft, cancelled, changes, now)
    values = _draft_values(draft) + (int(cancelled), url, found.due, stamp(now))
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "INSERT INTO events (title, description, starts_at, duration_minutes, timezone,"
            " rrule, format, place, address, online_url, capacity, cancelled, url,"
            " horizon_due, updated_at, group_id, ap_id, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING", values + (group_id, ap_id, stamp(now)))
        if cursor.rowcount:
            event_id = cursor.lastrowid
            await _insert_changes(conn, event_id, changes)
            await insert_occurrences(conn, [(event_id, group_id, found)])
            return event_id
        cursor = await conn.execute(
            "SELECT e.id, e.group_id, o.original_start, o.starts_utc, o.ends_utc FROM events e"
            " LEFT JOIN occurrences o ON o.event_id = e.id WHERE e.ap_id = ?", (ap_id,))
        stored = await cursor.fetchall()
        event_id = stored[0]["id"]
        if stored[0]["group_id"] != group_id:
            raise ValueError(f"{ap_id} belongs to another group")
        await conn.execute(
            "UPDATE events SET title = ?, description = ?, starts_at = ?,"
            " duration_minutes = ?, timezone = ?, rrule = ?, format = ?, place = ?,"
            " address = ?, online_url = ?, capacity = ?, cancelled = ?, url = ?,"
            " horizon_due = ?, updated_at = ? WHERE id = ?", values + (event_id,))
        await conn.execute("DELETE FROM event_exceptions WHERE event_id = ?", (event_id,))
        await _insert_changes(conn, event_id, changes)
        if sorted(tuple(r)[2:] for r in stored if r["original_start"]) != sorted(found.rows):
            await conn.execute("DELETE FROM occurrences WHERE event_id = ?", (event_id,))
            await insert_occurrences(conn, [(event_id, group_id, found)])
    return event_id


async def _insert_changes(conn: aiosqlite.Connection, event_id: int,
                          changes: list[OccurrenceChange]) -> None:
    if changes:
        await conn.executemany(
            "INSERT INTO event_exceptions (event_id, original_start, cancelled, starts_at,"
            " duration_minutes) VALUES (?, ?, ?, ?, ?)",
            [(event_id, occurrence_key(c.original_start), int(c.cancelled),
              c.starts_at.strftime(LOCAL_FORMAT) if c.starts_at else None, c.duration_minutes)
             for c in changes])


async def delete_remote(db: Database, ap_id: str, origin: str) -> bool:
    """Remove the peer's group (with its meetings) or meeting with this id."""
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "DELETE FROM groups WHERE ap_id = ? AND origin = ? RETURNING id", (ap_id, origin))
        gone = [r[0] for r in await cursor.fetchall()]
        for group_id in gone:
            await conn.execute("DELETE FROM groups_fts WHERE rowid = ?", (group_id,))
        cursor = await conn.execute(
            "DELETE FROM events WHERE ap_id = ? AND group_id IN"
            " (SELECT id FROM groups WHERE origin = ?)", (ap_id, origin))
        return bool(gone) or cursor.rowcount > 0


async def remove_listings_of(db: Database, origin: str) -> int:
    """Unfollowed or blocked: every listing from that peer goes."""
    async with db.transaction() as conn:
        await conn.execute(
            "DELETE FROM groups_fts WHERE rowid IN (SELECT id FROM groups WHERE origin = ?)",
            (origin,))
        cursor = await conn.execute("DELETE FROM groups WHERE origin = ?", (origin,))
        return cursor.rowcount


async def count_listings_of(db: Database, origin: str) -> int:
    return await db.fetchval("SELECT count(*) FROM groups WHERE origin = ?", (origin,))
