"""How each group runs itself: its row in ``group_practice``, or the defaults."""
from __future__ import annotations

from dataclasses import astuple, fields

from node.db import Database
from node.domain import AgreementDecision, Facilitation, Practice, ThemeChoice
from node.storage.changes import record_change

COLUMNS = tuple(f.name for f in fields(Practice))


async def get_practice(db: Database, group_id: int) -> Practice:
    row = await db.fetchone(
        f"SELECT {', '.join(COLUMNS)} FROM group_practice WHERE group_id = ?", (group_id,))
    if row is None:
        return Practice()
    return Practice(
        theme_choice=ThemeChoice(row["theme_choice"]),
        themes_public=bool(row["themes_public"]),
        theme_lead_hours=row["theme_lead_hours"],
        facilitation=Facilitation(row["facilitation"]),
        agreement_decision=AgreementDecision(row["agreement_decision"]),
        discussion_days=row["discussion_days"],
        pulse_keep_days=row["pulse_keep_days"],
    )


async def save_practice(db: Database, group_id: int, practice: Practice) -> None:
    """Store the group's choices. A change to whether themes are public is a change to
    its meetings' listings, so peers are sent them again; a change to how long pulses are
    kept moves the erasing of those already given."""
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "SELECT themes_public, pulse_keep_days FROM group_practice WHERE group_id = ?",
            (group_id,))
        before = await cursor.fetchone()
        kept_for = before[1] if before else Practice().pulse_keep_days
        if practice.pulse_keep_days != kept_for:
            later = db.dialect.plus_hours % {"at": "erase_after", "hours": "?"}
            await conn.execute(
                f"UPDATE pulse_meetings SET erase_after = {later} WHERE group_id = ?",
                (24 * (practice.pulse_keep_days - kept_for), group_id))
        values = tuple(int(v) if isinstance(v, bool) else v for v in astuple(practice))
        await conn.execute(
            f"INSERT INTO group_practice (group_id, {', '.join(COLUMNS)})"
            f" VALUES (?, {', '.join('?' * len(COLUMNS))}) ON CONFLICT (group_id) DO UPDATE"
            f" SET {', '.join(f'{c} = excluded.{c}' for c in COLUMNS)}",
            (group_id, *values))
        if bool(before and before[0]) != practice.themes_public:
            cursor = await conn.execute("SELECT id FROM events WHERE group_id = ?", (group_id,))
            for (event_id,) in await cursor.fetchall():
                await record_change(conn, "event", event_id)
