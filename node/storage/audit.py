"""The audit log: every admin action, who took it (named as they were then), on what."""
from __future__ import annotations

from dataclasses import dataclass

from node.db import Database, Writing, timestamp
from node.domain import Account

PAGE_SIZE = 50


@dataclass(frozen=True, slots=True)
class AuditEntry:
    actor_name: str
    action: str
    target: str
    created_at: str


@dataclass(frozen=True, slots=True)
class AuditPage:
    entries: list[AuditEntry]
    page: int
    pages: int


async def record_action(db: Database, actor: Account | str, action: str, target: str) -> None:
    async with db.transaction() as conn:
        await record_in(conn, actor, action, target)


async def record_in(conn: Writing, actor: Account | str, action: str,
                    target: str) -> None:
    """Inside the caller's write transaction: the entry commits, or not, with the action.

    ``actor`` is an admin's account, or says who else acted ("command line").
    """
    actor_id, name = (actor.id, actor.display_name) if isinstance(actor, Account) else (None, actor)
    await conn.execute(
        "INSERT INTO audit_log (actor_id, actor_name, action, target, created_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (actor_id, name, action, target[:300], timestamp()),
    )


async def audit_page(db: Database, page: int) -> AuditPage:
    """Newest first."""
    total = await db.fetchval("SELECT count(*) FROM audit_log")
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(1, page), pages)
    rows = await db.fetchall(
        "SELECT actor_name, action, target, created_at FROM audit_log"
        " ORDER BY id DESC LIMIT ? OFFSET ?", (PAGE_SIZE, (page - 1) * PAGE_SIZE))
    return AuditPage([AuditEntry(*r) for r in rows], page, pages)
