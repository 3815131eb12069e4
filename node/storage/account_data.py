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
    ("resources_added", (
        "SELECT g.name AS group_name, r.kind, r.title, r.url, r.note, r.public, r.created_at"
        " FROM group_resources r JOIN groups g ON g.id = r.group_id WHERE r.account_id = ?"
        " ORDER BY r.created_at")),
    ("themes_proposed", (
        "SELECT e.title AS meeting, p.occurrence, p.theme, p.signed FROM theme_proposals p"
        " JOIN events e ON e.id = p.event_id WHERE p.account_id = ?"
        " ORDER BY p.occurrence, p.theme")),
    ("themes_supported", (
        "SELECT e.title AS meeting, v.occurrence, p.theme FROM theme_votes v"
        " JOIN theme_proposals p ON p.id = v.proposal_id JOIN events e ON e.id = v.event_id"
        " WHERE v.account_id = ? ORDER BY v.occurrence")),
    ("meetings_held", (
        "SELECT e.title AS meeting, h.occurrence, h.role, h.swap_wanted FROM meeting_holders h"
        " JOIN events e ON e.id = h.event_id WHERE h.account_id = ? ORDER BY h.occurrence")),
    ("agreement_proposals", (
        "SELECT g.name AS group_name, p.text, p.reason, p.state, p.created_at, p.closes_at"
        " FROM agreement_proposals p JOIN groups g ON g.id = p.group_id"
        " WHERE p.account_id = ? ORDER BY p.created_at")),
    ("agreement_comments", (
        "SELECT g.name AS group_name, c.body, c.created_at FROM agreement_comments c"
        " JOIN agreement_proposals p ON p.id = c.proposal_id"
        " JOIN groups g ON g.id = p.group_id WHERE c.account_id = ? ORDER BY c.created_at")),
    ("agreement_objections", (
        "SELECT g.name AS group_name, p.created_at AS proposed_at, o.reason"
        " FROM agreement_objections o JOIN agreement_proposals p ON p.id = o.proposal_id"
        " JOIN groups g ON g.id = p.group_id WHERE o.account_id = ? ORDER BY p.created_at")),
    ("agreements_accepted", (
        "SELECT g.name AS group_name, m.agreements_version AS version FROM memberships m"
        " JOIN groups g ON g.id = m.group_id WHERE m.account_id = ? ORDER BY g.name")),
    # That they answered, never what: no answer is linked to anyone.
    ("pulses_answered", (
        "SELECT e.title AS meeting, p.occurrence FROM pulse_answered p"
        " JOIN events e ON e.id = p.event_id WHERE p.account_id = ? ORDER BY p.occurrence")),
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
