"""Federated copies of peers' public listings, as the directory shows them.

The narrow interface federation calls: upsert a remote group or meeting,
remove one, remove everything of a peer. Remote rows carry ``origin`` (the
peer's host) and ``ap_id``; they have no members, RSVPs or invite codes.
A group is its own owner; a meeting's owner is its group, fixed when first
stored. ``confirmed_at`` is when the origin last confirmed a copy.
"""
from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

from node.db import Database, Writing, stamp, timestamp
from node.domain import EventDraft, GroupDraft, OccurrenceChange, occurrence_key
from node.storage.events import (
    LOCAL_FORMAT,
    _draft_values,
    expansion,
    insert_occurrences,
)
from node.storage.groups import _listing_values, _write_listing
from node.storage.themes import replace_themes

# Also written in the same transaction as a copy (federation marks the activity applied).
Then = Callable[[Writing], Awaitable[None]]


class NotOwner(ValueError):
    """A copy was claimed by an actor or peer other than the one it was stored from."""


async def owner_of(db: Database, ap_id: str) -> str | None:
    """Who speaks for a stored copy: a group itself, a meeting its group; None if unknown."""
    return await db.fetchval(
        "SELECT ap_id FROM groups WHERE ap_id = ? AND origin IS NOT NULL"
        " UNION ALL SELECT g.ap_id FROM events e JOIN groups g ON g.id = e.group_id"
        " WHERE e.ap_id = ? AND g.origin IS NOT NULL LIMIT 1", (ap_id, ap_id))


async def upsert_remote_group(db: Database, *, origin: str, ap_id: str, url: str,
                              username: str, draft: GroupDraft, then: Then | None = None) -> int:
    """Create or refresh a peer's group listing; its row id."""
    now = timestamp()
    async with db.transaction() as conn:
        cursor = await conn.execute("SELECT id, origin FROM groups WHERE ap_id = ?", (ap_id,))
        row = await cursor.fetchone()
        if row is not None and row[1] != origin:
            raise NotOwner(f"{ap_id} is listed from {row[1]}, not {origin}")
        if row is None:
            cursor = await conn.execute(
                "INSERT INTO groups (name, summary, description, agreements, visibility,"
                " join_policy, format, cost, area, address, contact, slug, origin, ap_id, url,"
                " created_at, updated_at, confirmed_at) VALUES"
                " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                _listing_values(draft) + (f"{username}@{origin}", origin, ap_id, url, now, now,
                                          now))
            group_id = (await cursor.fetchone())[0]
        else:
            group_id = row[0]
            await conn.execute(
                "UPDATE groups SET name = ?, summary = ?, description = ?, agreements = ?,"
                " visibility = ?, join_policy = ?, format = ?, cost = ?, area = ?,"
                " address = ?, contact = ?, url = ?, updated_at = ?, confirmed_at = ?,"
                " next_check_at = NULL, check_failures = 0 WHERE id = ?",
                _listing_values(draft) + (url, now, now, group_id))
        await _write_listing(conn, group_id, draft)
        if then is not None:
            await then(conn)
    return group_id


async def remote_group_id(db: Database, ap_id: str) -> int | None:
    return await db.fetchval("SELECT id FROM groups WHERE ap_id = ? AND origin IS NOT NULL",
                             (ap_id,))


async def upsert_remote_event(db: Database, *, group_id: int, ap_id: str, url: str,
                              draft: EventDraft, changes: list[OccurrenceChange],
                              cancelled: bool, themes: Sequence[tuple[str, str]] = (),
                              then: Then | None = None) -> int:
    """Create or refresh a peer's meeting series under its (remote) group, with the
    public themes (occurrence key, theme) its node sent, which replace those it had.

    The occurrences are expanded before the write, which rewrites them only if they
    differ from those stored (a repeated Update leaves them be).
    """
    now = datetime.now(UTC)
    # One change per slot: the first named, as when the exceptions table kept the first.
    changes = list({occurrence_key(c.original_start): c for c in reversed(changes)}.values())
    found = expansion(draft, cancelled, changes, now)
    values = _draft_values(draft) + (int(cancelled), url, found.due, stamp(now), stamp(now))
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "INSERT INTO events (title, description, starts_at, duration_minutes, timezone,"
            " rrule, format, place, address, online_url, capacity, cancelled, url,"
            " horizon_due, updated_at, confirmed_at, group_id, ap_id, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING RETURNING id", values + (group_id, ap_id, stamp(now)))
        inserted = await cursor.fetchone()
        if inserted:
            event_id = inserted[0]
            await _insert_changes(conn, event_id, changes)
            await insert_occurrences(conn, [(event_id, group_id, found)])
            await replace_themes(conn, event_id, themes)
            if then is not None:
                await then(conn)
            return event_id
        cursor = await conn.execute(
            "SELECT e.id, e.group_id, o.original_start, o.starts_utc, o.ends_utc, o.cancelled"
            " FROM events e"
            " LEFT JOIN occurrences o ON o.event_id = e.id WHERE e.ap_id = ?", (ap_id,))
        stored = await cursor.fetchall()
        event_id = stored[0]["id"]
        if stored[0]["group_id"] != group_id:
            raise NotOwner(f"{ap_id} belongs to another group")
        await conn.execute(
            "UPDATE events SET title = ?, description = ?, starts_at = ?,"
            " duration_minutes = ?, timezone = ?, rrule = ?, format = ?, place = ?,"
            " address = ?, online_url = ?, capacity = ?, cancelled = ?, url = ?,"
            " horizon_due = ?, updated_at = ?, confirmed_at = ? WHERE id = ?",
            values + (event_id,))
        await conn.execute("DELETE FROM event_exceptions WHERE event_id = ?", (event_id,))
        await _insert_changes(conn, event_id, changes)
        if sorted(tuple(r)[2:] for r in stored if r["original_start"]) != sorted(found.rows):
            await conn.execute("DELETE FROM occurrences WHERE event_id = ?", (event_id,))
            await insert_occurrences(conn, [(event_id, group_id, found)])
        await replace_themes(conn, event_id, themes)
        if then is not None:
            await then(conn)
    return event_id


async def _insert_changes(conn: Writing, event_id: int,
                          changes: list[OccurrenceChange]) -> None:
    if changes:
        await conn.executemany(
            "INSERT INTO event_exceptions (event_id, original_start, cancelled, starts_at,"
            " duration_minutes) VALUES (?, ?, ?, ?, ?)",
            [(event_id, occurrence_key(c.original_start), int(c.cancelled),
              c.starts_at.strftime(LOCAL_FORMAT) if c.starts_at else None, c.duration_minutes)
             for c in changes])


async def delete_remote(db: Database, ap_id: str, origin: str, then: Then | None = None) -> bool:
    """Remove the peer's group (with its meetings) or meeting with this id, and every raw
    activity about it still waiting to be applied: nothing of it is kept."""
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "DELETE FROM groups WHERE ap_id = ? AND origin = ? RETURNING id", (ap_id, origin))
        gone = [r[0] for r in await cursor.fetchall()]
        for group_id in gone:
            await conn.execute("DELETE FROM groups_fts WHERE rowid = ?", (group_id,))
        cursor = await conn.execute(
            "DELETE FROM events WHERE ap_id = ? AND group_id IN"
            " (SELECT id FROM groups WHERE origin = ?)", (ap_id, origin))
        deleted = bool(gone) or cursor.rowcount > 0
        await conn.execute(
            "UPDATE inbox_items SET state = 'ignored', body = '', last_error = 'retracted'"
            " WHERE host = ? AND state = 'received' AND"
            f" {db.dialect.contains % {'haystack': 'body', 'needle': '?'}}",
            (origin, json.dumps(ap_id)))
        if then is not None:
            await then(conn)
        return deleted


async def remove_listings_of(db: Database, origin: str) -> int:
    """Unfollowed or blocked: every listing from that peer goes."""
    async with db.transaction() as conn:
        await conn.execute(
            "DELETE FROM groups_fts WHERE rowid IN (SELECT id FROM groups WHERE origin = ?)",
            (origin,))
        cursor = await conn.execute("DELETE FROM groups WHERE origin = ?", (origin,))
        await conn.execute(
            "UPDATE inbox_items SET state = 'ignored', body = '', last_error = 'retracted'"
            " WHERE host = ? AND state = 'received'", (origin,))
        return cursor.rowcount


async def count_listings_of(db: Database, origin: str) -> int:
    return await db.fetchval("SELECT count(*) FROM groups WHERE origin = ?", (origin,))


# Freshness --------------------------------------------------------------------------------

async def due_for_check(db: Database, confirmed_before: str, now: str,
                        limit: int) -> list[tuple[str, str, list[str]]]:
    """(origin, group ap_id, its meetings' ap_ids) of copies not confirmed since
    ``confirmed_before`` whose next check is due, least recently confirmed first."""
    rows = await db.fetchall(
        "SELECT id, origin, ap_id FROM groups WHERE origin IS NOT NULL AND confirmed_at < ?"
        " AND (next_check_at IS NULL OR next_check_at <= ?) ORDER BY confirmed_at LIMIT ?",
        (confirmed_before, now, limit))
    found = []
    for group_id, origin, ap_id in rows:
        meetings = await db.fetchall("SELECT ap_id FROM events WHERE group_id = ?", (group_id,))
        found.append((origin, ap_id, [m[0] for m in meetings]))
    return found


async def check_failed(db: Database, ap_id: str, retry_at: str) -> None:
    """The origin did not answer: ask again at ``retry_at``."""
    async with db.transaction() as conn:
        await conn.execute("UPDATE groups SET check_failures = check_failures + 1,"
                           " next_check_at = ? WHERE ap_id = ?", (retry_at, ap_id))


async def check_failures(db: Database, ap_id: str) -> int:
    return await db.fetchval("SELECT check_failures FROM groups WHERE ap_id = ?", (ap_id,)) or 0


async def retire_silent(db: Database, confirmed_before: str) -> int:
    """Copies whose origin has not confirmed them since ``confirmed_before`` go."""
    async with db.transaction() as conn:
        await conn.execute(
            "DELETE FROM groups_fts WHERE rowid IN (SELECT id FROM groups"
            " WHERE origin IS NOT NULL AND confirmed_at < ?)", (confirmed_before,))
        cursor = await conn.execute(
            "DELETE FROM groups WHERE origin IS NOT NULL AND confirmed_at < ?",
            (confirmed_before,))
        retired = cursor.rowcount
        cursor = await conn.execute(
            "DELETE FROM events WHERE confirmed_at < ? AND group_id IN"
            " (SELECT id FROM groups WHERE origin IS NOT NULL)", (confirmed_before,))
        return retired + cursor.rowcount
