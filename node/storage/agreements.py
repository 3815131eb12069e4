"""A group's agreements written together: every version kept, the changes members
propose, their discussion and objections, and which version each member accepted.

``groups.agreements`` is always the latest version's text. All of it but that text
stays on this node, for the group's members.

What a proposal's ``state`` can become:

    open ──> adopted      (by consent at ``settle_due``, or by a facilitator)
      ├────> withdrawn    (by its proposer)
      ├────> declined     (by a facilitator)
      └────> superseded   (another version was adopted or written first)
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from node.db import Database, Writing, stamp, timestamp
from node.storage.changes import record_change
from node.storage.notices import record_notice

How = Literal["written", "consent", "facilitator"]


@dataclass(frozen=True, slots=True)
class Version:
    number: int
    text: str
    adopted_at: str
    how: How


@dataclass(frozen=True, slots=True)
class Proposal:
    id: int
    group_id: int
    account_id: int | None  # the proposer; None once their account is gone
    proposer: str  # their display name, for members only
    base_version: int
    text: str
    reason: str
    state: str
    created_at: str
    closes_at: str
    decided_at: str | None
    objections: int  # standing


@dataclass(frozen=True, slots=True)
class Comment:
    author: str
    body: str
    created_at: str


# Versions --------------------------------------------------------------------------------

async def write_version(conn: Writing, group_id: int, text: str, how: How,
                        proposal_id: int | None = None, *, author_id: int | None = None) -> int:
    """Inside the caller's write transaction: the group's next version; its number.

    Its author (the facilitator who wrote it, the member whose proposal it was) has
    accepted it; each other active member is told, and asked on their next visit.
    Open proposals written against an older version can no longer be adopted as they
    are: they are superseded (their proposers may propose again from the new text).
    """
    cursor = await conn.execute(
        "INSERT INTO agreement_versions (group_id, version, text, adopted_at, how, proposal_id)"
        " SELECT ?, coalesce(max(version), 0) + 1, ?, ?, ?, ? FROM agreement_versions"
        " WHERE group_id = ? RETURNING version",
        (group_id, text, timestamp(), how, proposal_id, group_id))
    (number,) = await cursor.fetchone()
    await conn.execute(
        "UPDATE agreement_proposals SET state = 'superseded', decided_at = ?"
        " WHERE group_id = ? AND state = 'open' AND base_version < ?",
        (timestamp(), group_id, number))
    for member_id in await _active_members(conn, group_id):
        if member_id == author_id:
            await conn.execute(
                "UPDATE memberships SET agreements_version = ? WHERE group_id = ?"
                " AND account_id = ?", (number, group_id, member_id))
        else:
            await record_notice(conn, "agreements_changed", member_id, group_id=group_id,
                                version=number)
    return number


async def current_version(db: Database, group_id: int) -> int:
    """The number of the group's latest version (0: it never had agreements)."""
    return await db.fetchval(
        "SELECT coalesce(max(version), 0) FROM agreement_versions WHERE group_id = ?",
        (group_id,))


async def versions(db: Database, group_id: int) -> list[Version]:
    """Every version of the group's agreements, the latest first."""
    rows = await db.fetchall(
        "SELECT version, text, adopted_at, how FROM agreement_versions WHERE group_id = ?"
        " ORDER BY version DESC", (group_id,))
    return [Version(*row) for row in rows]


async def get_version(db: Database, group_id: int, number: int) -> Version | None:
    row = await db.fetchone(
        "SELECT version, text, adopted_at, how FROM agreement_versions"
        " WHERE group_id = ? AND version = ?", (group_id, number))
    return None if row is None else Version(*row)


async def version_text(db: Database, group_id: int, number: int) -> str:
    """The text of a version; empty for version 0 (no agreements yet)."""
    version = await get_version(db, group_id, number)
    return version.text if version else ""


# What each member accepted ---------------------------------------------------------------

async def accepted_version(db: Database, group_id: int, account_id: int) -> int:
    return await db.fetchval(
        "SELECT coalesce(max(agreements_version), 0) FROM memberships"
        " WHERE group_id = ? AND account_id = ? AND status = 'active'",
        (group_id, account_id)) or 0


async def accept_version(db: Database, group_id: int, account_id: int, number: int) -> bool:
    """An active member accepts the version ``number`` (one they were shown, never one
    adopted since); False if there is nothing newer to accept."""
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "UPDATE memberships SET agreements_version = ?"
            " WHERE group_id = ? AND account_id = ? AND status = 'active'"
            " AND agreements_version < ? AND ? <= (SELECT coalesce(max(version), 0)"
            "  FROM agreement_versions WHERE group_id = ?)",
            (number, group_id, account_id, number, number, group_id))
        return cursor.rowcount == 1


# Proposals -------------------------------------------------------------------------------

_PROPOSAL = (
    "SELECT p.id, p.group_id, p.account_id, coalesce(a.display_name, ''), p.base_version,"
    " p.text, p.reason, p.state, p.created_at, p.closes_at, p.decided_at,"
    " (SELECT count(*) FROM agreement_objections o WHERE o.proposal_id = p.id)"
    " FROM agreement_proposals p LEFT JOIN accounts a ON a.id = p.account_id")


async def propose(db: Database, group_id: int, account_id: int, base_version: int,
                  text: str, reason: str, *, discussion_days: int,
                  now: datetime) -> int:
    """A member proposes ``text`` as the group's agreements; the other active members
    are told. Its id."""
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "INSERT INTO agreement_proposals (group_id, account_id, base_version, text,"
            " reason, created_at, closes_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (group_id, account_id, base_version, text, reason, stamp(now),
             stamp(now + timedelta(days=discussion_days))))
        proposal_id = (await cursor.fetchone())[0]
        for member_id in await _active_members(conn, group_id):
            if member_id != account_id:
                await record_notice(conn, "agreement_proposed", member_id,
                                    group_id=group_id, proposal_id=proposal_id)
    return proposal_id


async def _active_members(conn: Writing, group_id: int) -> list[int]:
    cursor = await conn.execute(
        "SELECT account_id FROM memberships WHERE group_id = ? AND status = 'active'"
        " ORDER BY account_id", (group_id,))
    return [row[0] for row in await cursor.fetchall()]


async def get_proposal(db: Database, group_id: int, proposal_id: int) -> Proposal | None:
    row = await db.fetchone(f"{_PROPOSAL} WHERE p.id = ? AND p.group_id = ?",
                            (proposal_id, group_id))
    return None if row is None else Proposal(*row)


async def open_proposals(db: Database, group_id: int) -> list[Proposal]:
    rows = await db.fetchall(
        f"{_PROPOSAL} WHERE p.group_id = ? AND p.state = 'open' ORDER BY p.id",
        (group_id,))
    return [Proposal(*row) for row in rows]


async def closed_proposals(db: Database, group_id: int, limit: int = 20) -> list[Proposal]:
    """The latest proposals no longer open, the latest first."""
    rows = await db.fetchall(
        f"{_PROPOSAL} WHERE p.group_id = ? AND p.state != 'open' ORDER BY p.id DESC LIMIT ?",
        (group_id, limit))
    return [Proposal(*row) for row in rows]


async def end_proposal(db: Database, proposal_id: int, state: str, *,
                       proposer_id: int | None = None) -> bool:
    """Withdraw (by its proposer: ``proposer_id``) or decline an open proposal."""
    assert state in ("withdrawn", "declined")
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "UPDATE agreement_proposals SET state = ?, decided_at = ?"
            " WHERE id = ? AND state = 'open' AND (CAST(? AS BIGINT) IS NULL OR account_id = ?)",
            (state, timestamp(), proposal_id, proposer_id, proposer_id))
        return cursor.rowcount == 1


async def adopt(db: Database, proposal_id: int, how: How) -> int | None:
    """Make an open proposal the group's agreements: the next version (``write_version``)
    and the group's text, sent to peers with its public listing as ever.

    None, and nothing changed, when the proposal is not open or was written against an
    older version than the current one.
    """
    async with db.transaction() as conn:
        return await _adopt(conn, proposal_id, how)


async def _adopt(conn: Writing, proposal_id: int, how: How) -> int | None:
    cursor = await conn.execute(
        "SELECT group_id, base_version, text, account_id FROM agreement_proposals"
        " WHERE id = ? AND state = 'open'", (proposal_id,))
    row = await cursor.fetchone()
    if row is None:
        return None
    group_id, base, text, proposer_id = row
    cursor = await conn.execute(
        "SELECT coalesce(max(version), 0) FROM agreement_versions WHERE group_id = ?",
        (group_id,))
    if (await cursor.fetchone())[0] != base:
        return None
    await conn.execute(
        "UPDATE agreement_proposals SET state = 'adopted', decided_at = ? WHERE id = ?",
        (timestamp(), proposal_id))
    number = await write_version(conn, group_id, text, how, proposal_id,
                                 author_id=proposer_id)
    await conn.execute("UPDATE groups SET agreements = ?, updated_at = ? WHERE id = ?",
                       (text, timestamp(), group_id))
    await record_change(conn, "group", group_id)
    return number


async def settle_due(db: Database, now: datetime) -> int:
    """Adopt, by consent, each open proposal whose discussion ended at ``now`` with no
    objection standing, in groups that decide so; how many were adopted."""
    rows = await db.fetchall(
        "SELECT p.id FROM agreement_proposals p"
        " LEFT JOIN group_practice g ON g.group_id = p.group_id"
        " WHERE p.state = 'open' AND p.closes_at <= ?"
        " AND coalesce(g.agreement_decision, 'consent') = 'consent'"
        " AND NOT EXISTS (SELECT 1 FROM agreement_objections o WHERE o.proposal_id = p.id)"
        " ORDER BY p.id", (stamp(now),))
    adopted = 0
    for (proposal_id,) in rows:
        async with db.transaction() as conn:
            # Read again inside the write: an objection may have come in since.
            cursor = await conn.execute(
                "SELECT 1 FROM agreement_objections WHERE proposal_id = ?", (proposal_id,))
            if await cursor.fetchone() is None and await _adopt(conn, proposal_id, "consent"):
                adopted += 1
    return adopted


# Discussion and objections ---------------------------------------------------------------

async def add_comment(db: Database, proposal_id: int, account_id: int, body: str) -> None:
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO agreement_comments (proposal_id, account_id, body, created_at)"
            " VALUES (?, ?, ?, ?)", (proposal_id, account_id, body, timestamp()))


async def comments(db: Database, proposal_id: int) -> list[Comment]:
    rows = await db.fetchall(
        "SELECT coalesce(a.display_name, ''), c.body, c.created_at FROM agreement_comments c"
        " LEFT JOIN accounts a ON a.id = c.account_id WHERE c.proposal_id = ? ORDER BY c.id",
        (proposal_id,))
    return [Comment(*row) for row in rows]


async def object_to(db: Database, proposal_id: int, account_id: int, reason: str) -> bool:
    """A member objects to an open proposal (or changes their reason)."""
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "INSERT INTO agreement_objections (proposal_id, account_id, reason)"
            " SELECT id, ?, ? FROM agreement_proposals WHERE id = ? AND state = 'open'"
            " ON CONFLICT (proposal_id, account_id) DO UPDATE SET reason = excluded.reason",
            (account_id, reason, proposal_id))
        return cursor.rowcount == 1


async def withdraw_objection(db: Database, proposal_id: int, account_id: int) -> bool:
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "DELETE FROM agreement_objections WHERE proposal_id = ? AND account_id = ?",
            (proposal_id, account_id))
        return cursor.rowcount == 1


async def objection_reasons(db: Database, proposal_id: int) -> list[str]:
    """The reasons given with standing objections, in an order that names no one."""
    rows = await db.fetchall(
        "SELECT reason FROM agreement_objections WHERE proposal_id = ? AND reason != ''"
        " ORDER BY reason", (proposal_id,))
    return [row[0] for row in rows]


async def own_objection(db: Database, proposal_id: int, account_id: int) -> str | None:
    """The reason of the member's own objection ('' if none given); None: no objection."""
    row = await db.fetchone(
        "SELECT reason FROM agreement_objections WHERE proposal_id = ? AND account_id = ?",
        (proposal_id, account_id))
    return None if row is None else row[0]
