"""Themes members propose for a meeting, the support each gets, and the theme it has.

A proposal keeps no time, and its id is random, so neither says who proposed first; a
vote keeps only which proposal. Support is counted for a page only once the theme is
set. Of all this, only a set theme of a group whose themes are public leaves the node
(``public_themes``); a peer's meeting keeps the themes its node sent (``replace_themes``).
"""
from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from node.db import Database, Writing, stamp, timestamp
from node.storage.changes import record_change

THEME_LENGTH = 80
PER_MEMBER = 3  # proposals one member may make for one meeting
PER_MEETING = 20
NO_THEME = ""  # stored when the choice is made and there is nothing to choose
# Whether the group of a meeting (by id) made its themes public.
THEMES_PUBLIC = ("SELECT p.themes_public FROM events e JOIN group_practice p"
                 " ON p.group_id = e.group_id WHERE e.id = ?")


def theme_order(theme: str) -> tuple[str, str]:
    """Alphabetical whatever the case: how proposals are listed and ties broken."""
    return theme.casefold(), theme


def most_supported(tallies: Iterable[tuple[str, int]]) -> str | None:
    """The theme with the most support (ties: the first alphabetically); None for none."""
    ranked = sorted(tallies, key=lambda tally: (-tally[1], theme_order(tally[0])))
    return ranked[0][0] if ranked else None


@dataclass(frozen=True, slots=True)
class Proposal:
    id: int
    theme: str
    signed_by: str | None  # the proposer's name, only when they signed it
    mine: bool  # the viewer proposed it
    support: int | None  # None while support is gathered


class Refusal(Enum):
    """Why a proposal is not taken."""

    CLOSED = "closed"
    DUPLICATE = "duplicate"
    YOUR_LIMIT = "your_limit"
    MEETING_LIMIT = "meeting_limit"


# Reading ------------------------------------------------------------------------

async def meeting_theme(db: Database, event_id: int, key: str) -> str | None:
    """The meeting's theme; NO_THEME once chosen with none; None while not chosen."""
    return await db.fetchval(
        "SELECT theme FROM meeting_themes WHERE event_id = ? AND occurrence = ?",
        (event_id, key))


async def proposals(db: Database, event_id: int, key: str, viewer_id: int | None, *,
                    counted: bool) -> list[Proposal]:
    """The meeting's proposals, alphabetically; their support only when ``counted``."""
    support = ("(SELECT count(*) FROM theme_votes v WHERE v.proposal_id = p.id)"
               if counted else "NULL")
    rows = await db.fetchall(
        f"SELECT p.id, p.theme, p.account_id, {support} AS support,"
        " CASE WHEN p.signed = 1 THEN a.display_name END AS signed_by"
        " FROM theme_proposals p LEFT JOIN accounts a ON a.id = p.account_id"
        " WHERE p.event_id = ? AND p.occurrence = ?", (event_id, key))
    found = [Proposal(r["id"], r["theme"], r["signed_by"],
                      viewer_id is not None and r["account_id"] == viewer_id, r["support"])
             for r in rows]
    return sorted(found, key=lambda p: theme_order(p.theme))


async def supported_by(db: Database, event_id: int, key: str, account_id: int) -> int | None:
    """The proposal this member supports for the meeting."""
    return await db.fetchval(
        "SELECT proposal_id FROM theme_votes WHERE event_id = ? AND occurrence = ?"
        " AND account_id = ?", (event_id, key, account_id))


@dataclass(frozen=True, slots=True)
class ThemedMeeting:
    """One of a group's next meetings, with its theme and how many themes are proposed."""

    event_id: int
    key: str
    starts_utc: str
    timezone: str
    title: str
    theme: str | None
    proposed: int


async def next_meetings(db: Database, group_id: int, now: datetime,
                        limit: int) -> list[ThemedMeeting]:
    rows = await db.fetchall(
        "SELECT o.event_id, o.original_start, o.starts_utc, e.timezone, e.title, t.theme,"
        " (SELECT count(*) FROM theme_proposals p WHERE p.event_id = o.event_id"
        "  AND p.occurrence = o.original_start) AS proposed"
        " FROM occurrences o JOIN events e ON e.id = o.event_id"
        " LEFT JOIN meeting_themes t ON t.event_id = o.event_id"
        "  AND t.occurrence = o.original_start"
        " WHERE o.group_id = ? AND o.ends_utc > ? AND o.cancelled = 0"
        " ORDER BY o.starts_utc LIMIT ?", (group_id, stamp(now), limit))
    return [ThemedMeeting(r["event_id"], r["original_start"], r["starts_utc"], r["timezone"],
                          r["title"], r["theme"], r["proposed"]) for r in rows]


async def public_themes(db: Database, event_id: int,
                        now: datetime) -> list[tuple[str, str]] | None:
    """(occurrence, theme) of the meetings not yet over, as peers are sent them; None when
    the group keeps its themes to its members."""
    if not await db.fetchval(THEMES_PUBLIC, (event_id,)):
        return None
    rows = await db.fetchall(
        "SELECT t.occurrence, t.theme FROM meeting_themes t JOIN occurrences o"
        " ON o.event_id = t.event_id AND o.original_start = t.occurrence"
        " WHERE t.event_id = ? AND o.ends_utc > ? AND t.theme != ''"
        " ORDER BY o.starts_utc", (event_id, stamp(now)))
    return [(r["occurrence"], r["theme"]) for r in rows]


# Members' proposals and support ------------------------------------------------

async def _is_set(conn: Writing, event_id: int, key: str) -> bool:
    cursor = await conn.execute(
        "SELECT 1 FROM meeting_themes WHERE event_id = ? AND occurrence = ?", (event_id, key))
    return await cursor.fetchone() is not None


async def propose(db: Database, event_id: int, key: str, account_id: int, theme: str,
                  signed: bool) -> Refusal | None:
    """Add the member's proposal; why not, when it is not taken."""
    async with db.transaction() as conn:
        if await _is_set(conn, event_id, key):
            return Refusal.CLOSED
        cursor = await conn.execute(
            "SELECT theme, account_id FROM theme_proposals WHERE event_id = ?"
            " AND occurrence = ?", (event_id, key))
        existing = await cursor.fetchall()
        if any(r["theme"].casefold() == theme.casefold() for r in existing):
            return Refusal.DUPLICATE
        if sum(r["account_id"] == account_id for r in existing) >= PER_MEMBER:
            return Refusal.YOUR_LIMIT
        if len(existing) >= PER_MEETING:
            return Refusal.MEETING_LIMIT
        await conn.execute(
            "INSERT INTO theme_proposals (id, event_id, occurrence, account_id, theme, signed)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (secrets.randbelow(2**53) + 1, event_id, key, account_id, theme, int(signed)))
    return None


async def withdraw(db: Database, event_id: int, key: str, account_id: int,
                   proposal_id: int) -> bool:
    """Remove the member's own proposal (and the support it had) while the theme is open."""
    async with db.transaction() as conn:
        if await _is_set(conn, event_id, key):
            return False
        cursor = await conn.execute(
            "DELETE FROM theme_proposals WHERE id = ? AND event_id = ? AND occurrence = ?"
            " AND account_id = ?", (proposal_id, event_id, key, account_id))
        return cursor.rowcount == 1


async def support(db: Database, event_id: int, key: str, account_id: int,
                  proposal_id: int) -> bool:
    """The member now supports this proposal (and no other of the meeting's)."""
    async with db.transaction() as conn:
        if await _is_set(conn, event_id, key):
            return False
        cursor = await conn.execute(
            "INSERT INTO theme_votes (event_id, occurrence, account_id, proposal_id)"
            " SELECT event_id, occurrence, ?, id FROM theme_proposals"
            " WHERE id = ? AND event_id = ? AND occurrence = ?"
            " ON CONFLICT (event_id, occurrence, account_id)"
            " DO UPDATE SET proposal_id = excluded.proposal_id",
            (account_id, proposal_id, event_id, key))
        return cursor.rowcount == 1


async def withdraw_support(db: Database, event_id: int, key: str, account_id: int) -> bool:
    async with db.transaction() as conn:
        if await _is_set(conn, event_id, key):
            return False
        cursor = await conn.execute(
            "DELETE FROM theme_votes WHERE event_id = ? AND occurrence = ? AND account_id = ?",
            (event_id, key, account_id))
        return cursor.rowcount == 1


# The theme ---------------------------------------------------------------------------

async def _public(conn: Writing, event_id: int) -> bool:
    cursor = await conn.execute(THEMES_PUBLIC, (event_id,))
    row = await cursor.fetchone()
    return bool(row and row[0])


async def set_theme(db: Database, event_id: int, key: str, theme: str) -> None:
    """The meeting's theme (NO_THEME: none), which closes proposals and support; peers
    are sent it when the group's themes are public."""
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO meeting_themes (event_id, occurrence, theme, set_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (event_id, occurrence) DO UPDATE"
            " SET theme = excluded.theme, set_at = excluded.set_at",
            (event_id, key, theme, timestamp()))
        if await _public(conn, event_id):
            await record_change(conn, "event", event_id)


async def clear_theme(db: Database, event_id: int, key: str) -> None:
    """No theme chosen any more: proposals and support are open again."""
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "DELETE FROM meeting_themes WHERE event_id = ? AND occurrence = ?", (event_id, key))
        if cursor.rowcount and await _public(conn, event_id):
            await record_change(conn, "event", event_id)


async def settle_due(db: Database, now: datetime) -> int:
    """Set the most supported theme of each meeting of this node's groups that choose so,
    once the meeting is its group's lead time away; how many meetings were settled."""
    due = await db.fetchall(
        "SELECT o.event_id, o.original_start FROM occurrences o"
        " JOIN groups g ON g.id = o.group_id JOIN group_practice p ON p.group_id = o.group_id"
        " WHERE g.origin IS NULL AND p.theme_choice = 'most_supported' AND o.cancelled = 0"
        " AND o.starts_utc > ?"
        f" AND o.starts_utc <= {db.dialect.plus_hours % {'at': '?', 'hours': 'p.theme_lead_hours'}}"
        " AND NOT EXISTS (SELECT 1 FROM meeting_themes t WHERE t.event_id = o.event_id"
        "                 AND t.occurrence = o.original_start)", (stamp(now), stamp(now)))
    settled = 0
    for row in due:
        event_id, key = row["event_id"], row["original_start"]
        async with db.transaction() as conn:
            cursor = await conn.execute(
                "SELECT p.theme, count(v.account_id) FROM theme_proposals p"
                " LEFT JOIN theme_votes v ON v.proposal_id = p.id"
                " WHERE p.event_id = ? AND p.occurrence = ? GROUP BY p.id", (event_id, key))
            theme = most_supported((r[0], r[1]) for r in await cursor.fetchall())
            cursor = await conn.execute(
                "INSERT INTO meeting_themes (event_id, occurrence, theme, set_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (event_id, key, theme or NO_THEME, stamp(now)))
            if cursor.rowcount and theme and await _public(conn, event_id):
                await record_change(conn, "event", event_id)
        settled += cursor.rowcount
    return settled


async def replace_themes(conn: Writing, event_id: int,
                         themes: Sequence[tuple[str, str]]) -> None:
    """Inside the caller's write: a peer's meeting now has exactly these themes."""
    await conn.execute("DELETE FROM meeting_themes WHERE event_id = ?", (event_id,))
    await conn.executemany(
        "INSERT INTO meeting_themes (event_id, occurrence, theme, set_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT DO NOTHING", [(event_id, key, theme, timestamp()) for key, theme in themes])
