"""Everything the node holds about one member, as they may take it away.

Only the member's own records: no other member's name or address, and of the
mail and notices kept for them only the kind and the dates (a notice to a
facilitator names the member who asked to join).
"""
from __future__ import annotations

import json
from typing import Any

from node.db import Database, timestamp

# (section, query with the account's id as its one parameter)
SECTIONS: tuple[tuple[str, str], ...] = (
    ("memberships", (
        "SELECT g.slug AS group_slug, g.name AS group_name, m.role, m.status, m.created_at"
        " FROM memberships m JOIN groups g ON g.id = m.group_id WHERE m.account_id = ?"
        " ORDER BY g.name")),
    ("rsvps", (
        "SELECT e.id AS event_id, e.title AS meeting, g.name AS group_name, r.occurrence,"
        " e.timezone, r.status FROM rsvps r JOIN events e ON e.id = r.event_id"
        " JOIN groups g ON g.id = e.group_id WHERE r.account_id = ?"
        " ORDER BY r.occurrence, r.seq")),
    ("reminders_sent", (
        "SELECT event_id, occurrence, starts_utc FROM reminders_sent WHERE account_id = ?"
        " ORDER BY starts_utc")),
    ("mail_kinds_off", "SELECT kind FROM mail_kinds_off WHERE account_id = ? ORDER BY kind"),
    ("reports_filed", (
        "SELECT created_at, target_name, reason, comment, state, closed_at FROM reports"
        " WHERE reporter_id = ? ORDER BY created_at")),
    ("invite_codes_created", (
        "SELECT code, uses_left, created_at FROM invite_codes WHERE created_by = ?"
        " ORDER BY created_at")),
    ("sessions",
     "SELECT created_at, expires_at FROM sessions WHERE account_id = ? ORDER BY created_at"),
    ("notices", "SELECT kind, created_at FROM notices WHERE account_id = ? ORDER BY id"),
    ("mail", (
        "SELECT kind, state, created_at, sent_at FROM mail_outbox WHERE account_id = ?"
        " ORDER BY id")),
)

ACCOUNT_FIELDS = ("id, email, pending_email, email_verified_at, display_name, language, status,"
                  " is_admin, trusted, join_reason, created_at")


async def account_export(db: Database, account_id: int) -> dict[str, Any] | None:
    """The member's account and their records, section by section; None if no such account."""
    account = await db.fetchone(f"SELECT {ACCOUNT_FIELDS} FROM accounts WHERE id = ?",
                                (account_id,))
    if account is None:
        return None
    found: dict[str, Any] = {"account": {**dict(account), "is_admin": bool(account["is_admin"]),
                                         "trusted": bool(account["trusted"])}}
    preferences = await db.fetchone("SELECT * FROM mail_preferences WHERE account_id = ?",
                                    (account_id,))
    found["mail_preferences"] = ({k: v for k, v in dict(preferences).items() if k != "account_id"}
                                 if preferences else None)
    for section, query in SECTIONS:
        found[section] = [dict(row) for row in await db.fetchall(query, (account_id,))]
    return found


def export_document(public_url: str, data: dict[str, Any]) -> str:
    """The export as the member (or an admin, for them) downloads it: JSON."""
    document = {"node": public_url, "exported_at": timestamp(), **data}
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"
