"""RSVPs to one occurrence of a meeting: capacity and an ordered waitlist.

These run inside a caller's write transaction, so the count and the insert
(or the release and the promotion) are one atomic step.
"""
from __future__ import annotations

from node.db import Writing
from node.domain import RsvpStatus
from node.storage.notices import record_notice


async def _capacity(conn: Writing, event_id: int) -> int | None:
    cursor = await conn.execute("SELECT capacity FROM events WHERE id = ?", (event_id,))
    row = await cursor.fetchone()
    return None if row is None else row[0]


async def _going(conn: Writing, event_id: int, occurrence: str) -> int:
    cursor = await conn.execute(
        "SELECT count(*) FROM rsvps WHERE event_id = ? AND occurrence = ? AND status = 'going'",
        (event_id, occurrence),
    )
    (count,) = await cursor.fetchone()
    return count


async def take_rsvp(
    conn: Writing, event_id: int, occurrence: str, account_id: int
) -> RsvpStatus:
    """Say yes: a seat while there is room, else the end of the waitlist."""
    cursor = await conn.execute(
        "SELECT status FROM rsvps WHERE event_id = ? AND occurrence = ? AND account_id = ?",
        (event_id, occurrence, account_id),
    )
    row = await cursor.fetchone()
    if row is not None:
        return RsvpStatus(row[0])
    capacity = await _capacity(conn, event_id)
    room = capacity is None or await _going(conn, event_id, occurrence) < capacity
    status = RsvpStatus.GOING if room else RsvpStatus.WAITLIST
    await conn.execute(
        "INSERT INTO rsvps (event_id, occurrence, account_id, status) VALUES (?, ?, ?, ?)",
        (event_id, occurrence, account_id, status),
    )
    await record_notice(conn, "rsvp_confirmed", account_id, event_id=event_id,
                        occurrence=occurrence, status=status)
    return status


async def fill_from_waitlist(
    conn: Writing, event_id: int, occurrence: str
) -> None:
    """Promote waitlisted people, first come first served, while seats are free; each
    is told."""
    capacity = await _capacity(conn, event_id)
    free = None if capacity is None else capacity - await _going(conn, event_id, occurrence)
    if free is not None and free <= 0:
        return
    cursor = await conn.execute(
        "UPDATE rsvps SET status = 'going' WHERE seq IN ("
        " SELECT seq FROM rsvps WHERE event_id = ? AND occurrence = ? AND status = 'waitlist'"
        " ORDER BY seq" + ("" if free is None else " LIMIT ?") + ") RETURNING account_id",
        (event_id, occurrence) if free is None else (event_id, occurrence, free),
    )
    for (account_id,) in await cursor.fetchall():
        await record_notice(conn, "waitlist_promoted", account_id, event_id=event_id,
                            occurrence=occurrence)


async def release_rsvp(
    conn: Writing, event_id: int, occurrence: str, account_id: int
) -> None:
    """Say no: drop the RSVP; a freed seat goes to the waitlist in order."""
    await conn.execute(
        "DELETE FROM rsvps WHERE event_id = ? AND occurrence = ? AND account_id = ?",
        (event_id, occurrence, account_id),
    )
    await fill_from_waitlist(conn, event_id, occurrence)
