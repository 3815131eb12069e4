"""The review of new public groups: which wait for an admin's yes, and the admins' answers.

A public group made by an account the node does not yet trust is held (seen by its
members only, neither listed nor federated) until an admin approves it. Each step
records, in the transaction that takes it, the notices that tell the people concerned
and (for an admin's answer) its entry in the audit log.
"""
from __future__ import annotations

from dataclasses import dataclass

from node.db import Database, Writing, timestamp
from node.domain import Account, Review, Visibility
from node.storage.audit import record_in
from node.storage.changes import record_change
from node.storage.notices import record_for_admins, record_for_facilitators


async def settle_review(conn: Writing, group_id: int, visibility: Visibility,
                        gated: bool) -> Review | None:
    """Inside a facilitator's save: the group's review state after it.

    A group made public, or a refused one saved again as public, waits when ``gated``
    (the node's gate is on and the account is neither an admin nor trusted), and is
    approved at once otherwise. An approved group stays approved; a waiting one waits
    on; one made unlisted or private has nothing to review.
    """
    cursor = await conn.execute("SELECT review FROM groups WHERE id = ?", (group_id,))
    (raw,) = await cursor.fetchone()
    current = Review(raw) if raw else None
    if visibility is not Visibility.PUBLIC:
        settled = Review.APPROVED if current is Review.APPROVED else None
    elif current in (Review.APPROVED, Review.PENDING):
        settled = current
    else:
        settled = Review.PENDING if gated else Review.APPROVED
    if settled == current:
        return current
    await conn.execute("UPDATE groups SET review = ?, review_at = ? WHERE id = ?",
                       (settled, timestamp(), group_id))
    if settled is Review.PENDING:
        await record_for_admins(conn, "group_review", group_id=group_id)
    return settled


@dataclass(frozen=True, slots=True)
class WaitingGroup:
    """A group in the admins' review queue."""

    id: int
    slug: str
    name: str
    summary: str
    area: str
    facilitators: str  # their display names
    waiting_since: str
    refused_before: str  # the reason given when it was last refused, if it was


async def waiting_groups(db: Database) -> list[WaitingGroup]:
    """The groups waiting for review, longest waiting first."""
    rows = await db.fetchall(
        "SELECT g.id, g.slug, g.name, g.summary, g.area,"
        f" coalesce((SELECT {db.dialect.joined % 'a.display_name'} FROM memberships m"
        "  JOIN accounts a ON a.id = m.account_id WHERE m.group_id = g.id"
        "  AND m.role = 'facilitator' AND m.status = 'active'), '') AS facilitators,"
        " g.review_at, g.review_reason FROM groups g"
        " WHERE g.review = 'pending' ORDER BY g.review_at, g.id")
    return [WaitingGroup(*row) for row in rows]


async def approve_group(db: Database, group_id: int, admin: Account) -> bool:
    """List a waiting group and publish it to peers as a new public group, with its
    meetings; False if it was not waiting."""
    async with db.transaction() as conn:
        if not await _decide(conn, group_id, admin, Review.APPROVED, ""):
            return False
        await record_change(conn, "group", group_id)
        cursor = await conn.execute("SELECT id FROM events WHERE group_id = ?", (group_id,))
        for (event_id,) in await cursor.fetchall():
            await record_change(conn, "event", event_id)
        await record_for_facilitators(conn, group_id, "group_approved")
        return True


async def refuse_group(db: Database, group_id: int, admin: Account, reason: str) -> bool:
    """Refuse a waiting group, with the reason its facilitators are shown; False if it
    was not waiting."""
    async with db.transaction() as conn:
        if not await _decide(conn, group_id, admin, Review.REFUSED, reason):
            return False
        await record_for_facilitators(conn, group_id, "group_refused", reason=reason)
        return True


async def _decide(conn: Writing, group_id: int, admin: Account,
                  decision: Review, reason: str) -> bool:
    cursor = await conn.execute(
        "UPDATE groups SET review = ?, review_reason = ?, reviewed_by = ?, review_at = ?"
        " WHERE id = ? AND review = 'pending' RETURNING name, slug",
        (decision, reason, admin.id, timestamp(), group_id))
    row = await cursor.fetchone()
    if row is None:
        return False
    subject = f"{row[0]} ({row[1]})"
    if decision is Review.APPROVED:
        await record_in(conn, admin, "group.approve", subject)
    else:
        await record_in(conn, admin, "group.refuse", f"{subject}: {reason}")
    return True
