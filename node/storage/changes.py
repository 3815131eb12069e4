"""The change log of local listings: written with each change, read by federation.

A row says "this local group or meeting changed"; whoever publishes reads
the current state, so many edits in a row still become one activity.
"""
from __future__ import annotations

from node.db import Writing, timestamp


async def record_change(conn: Writing, kind: str, local_id: int) -> None:
    """Inside the caller's write transaction: the change and its record commit together."""
    await conn.execute(
        "INSERT INTO listing_changes (kind, local_id, created_at) VALUES (?, ?, ?)",
        (kind, local_id, timestamp()),
    )
