"""Node settings kept in the database, edited on /admin/settings."""
from __future__ import annotations

from dataclasses import asdict, fields

from node.db import Database
from node.domain import NodeSettings, RegistrationMode


async def load_settings(db: Database) -> NodeSettings:
    rows = await db.fetchall("SELECT key, value FROM settings")
    stored = {row["key"]: row["value"] for row in rows}
    known = {f.name for f in fields(NodeSettings)}
    values = {k: v for k, v in stored.items() if k in known}
    if "registration" in values:
        values["registration"] = RegistrationMode(values["registration"])
    for f in fields(NodeSettings):
        if f.type == "bool" and f.name in values:  # stored as "1" or "0"
            values[f.name] = values[f.name] == "1"
    return NodeSettings(**values)


async def save_settings(db: Database, settings: NodeSettings) -> None:
    async with db.transaction() as conn:
        await conn.executemany(
            "INSERT INTO settings (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [(k, str(int(v)) if isinstance(v, bool) else str(v))
             for k, v in asdict(settings).items()],
        )
