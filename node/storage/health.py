"""The write readiness makes to prove the database takes a commit."""
from __future__ import annotations

from node.db import Database, timestamp

# A row of settings that no setting reads (load_settings takes the known keys only).
PROBE_KEY = "readiness_probe"


async def write_probe(db: Database) -> None:
    """One committed write through the node's writer: the time, in one settings row."""
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value", (PROBE_KEY, timestamp()))
