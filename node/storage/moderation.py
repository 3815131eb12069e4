"""Reports about listings, remote listings hidden by an admin, suspended groups."""
from __future__ import annotations

from dataclasses import dataclass

from node.db import Database, Row, timestamp
from node.domain import ReportReason, ReportState
from node.storage.changes import record_change
from node.storage.notices import record_for_admins

PAGE_SIZE = 25


@dataclass(frozen=True, slots=True)
class Report:
    """A report as the reports page shows it; ``reporter_name`` only for admins."""

    id: int
    reporter_name: str | None
    peer_host: str | None
    group_id: int | None
    group_slug: str | None
    origin: str | None      # the remote listing's node; None for ours
    url: str | None         # the remote listing's page on its node
    group_suspended: bool
    event_id: int | None
    target_name: str
    target_ap_id: str | None
    hidden: bool
    reason: ReportReason
    comment: str
    state: ReportState
    note: str
    forwarded_at: str | None
    created_at: str
    closed_at: str | None

    @property
    def is_remote(self) -> bool:
        return self.target_ap_id is not None


@dataclass(frozen=True, slots=True)
class ReportPage:
    reports: list[Report]
    total: int
    page: int
    pages: int


async def create_report(db: Database, *, reporter_id: int, group_id: int,
                        event_id: int | None, target_name: str, reason: ReportReason,
                        comment: str) -> int:
    """A member's report; the same member's open report on the same listing is kept."""
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "SELECT id FROM reports WHERE reporter_id = ? AND group_id = ?"
            " AND event_id IS NOT DISTINCT FROM ? AND state = 'open'",
            (reporter_id, group_id, event_id))
        row = await cursor.fetchone()
        if row is not None:
            return row[0]
        cursor = await conn.execute(
            "INSERT INTO reports (reporter_id, group_id, event_id, target_name, target_ap_id,"
            " reason, comment, created_at) VALUES (?, ?, ?, ?,"
            " coalesce((SELECT ap_id FROM events WHERE id = ?),"
            "          (SELECT ap_id FROM groups WHERE id = ?)), ?, ?, ?) RETURNING id",
            (reporter_id, group_id, event_id, target_name, event_id, group_id, reason,
             comment, timestamp()))
        report_id = (await cursor.fetchone())[0]
        await record_for_admins(conn, "report", report_id=report_id)
        return report_id


async def record_flag(db: Database, *, flag_id: str, peer_host: str, body: str,
                      group_id: int, event_id: int | None, target_name: str,
                      reason: ReportReason, comment: str) -> bool:
    """A peer's report about one of our listings, once per Flag (told to the admins);
    False if seen before."""
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "INSERT INTO reports (peer_host, flag_id, body, group_id, event_id, target_name,"
            " reason, comment, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (flag_id) DO NOTHING RETURNING id",
            (peer_host, flag_id, body, group_id, event_id, target_name, reason, comment,
             timestamp()))
        row = await cursor.fetchone()
        if row is None:
            return False
        await record_for_admins(conn, "report", report_id=row[0])
        return True


# Parameters: whether to name the reporter, then the facilitator scope (twice).
_REPORT_COLUMNS = (
    "r.id, CASE WHEN ? THEN a.display_name END AS reporter_name, r.peer_host,"
    " r.group_id, g.slug AS group_slug, g.origin, coalesce(e.url, g.url) AS url,"
    " coalesce(g.suspended, 0) AS group_suspended, r.event_id, r.target_name,"
    " r.target_ap_id, r.target_ap_id IN (SELECT ap_id FROM hidden_listings) AS hidden,"
    " r.reason, r.comment, r.state, r.note, r.forwarded_at, r.created_at, r.closed_at"
    " FROM reports r LEFT JOIN accounts a ON a.id = r.reporter_id"
    " LEFT JOIN groups g ON g.id = r.group_id LEFT JOIN events e ON e.id = r.event_id"
)
# Reports about the groups an account facilitates (none when NULL: admins see all).
_SCOPE = ("(CAST(? AS BIGINT) IS NULL OR r.group_id IN (SELECT group_id FROM memberships"
          " WHERE account_id = ? AND role = 'facilitator' AND status = 'active'))")


def _report(row: Row) -> Report:
    return Report(
        id=row["id"], reporter_name=row["reporter_name"], peer_host=row["peer_host"],
        group_id=row["group_id"], group_slug=row["group_slug"], origin=row["origin"],
        url=row["url"], group_suspended=bool(row["group_suspended"]),
        event_id=row["event_id"], target_name=row["target_name"],
        target_ap_id=row["target_ap_id"], hidden=bool(row["hidden"]),
        reason=ReportReason(row["reason"]), comment=row["comment"],
        state=ReportState(row["state"]), note=row["note"], forwarded_at=row["forwarded_at"],
        created_at=row["created_at"], closed_at=row["closed_at"],
    )


async def list_reports(db: Database, *, open_: bool, facilitator: int | None,
                       page: int) -> ReportPage:
    """Open reports oldest first (a queue), closed ones newest first.

    ``facilitator`` (an account id) narrows to that account's groups and
    leaves out who reported; None is an admin's view of everything.
    """
    where = f"WHERE r.state {'=' if open_ else '!='} 'open' AND {_SCOPE}"
    scope = (facilitator, facilitator)
    total = await db.fetchval(f"SELECT count(*) FROM reports r {where}", scope)
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(1, page), pages)
    order = "r.id" if open_ else "r.closed_at DESC, r.id DESC"
    rows = await db.fetchall(
        f"SELECT {_REPORT_COLUMNS} {where} ORDER BY {order} LIMIT ? OFFSET ?",
        (facilitator is None, *scope, PAGE_SIZE, (page - 1) * PAGE_SIZE))
    return ReportPage([_report(r) for r in rows], total, page, pages)


async def get_report(db: Database, report_id: int, *, facilitator: int | None) -> Report | None:
    """The report, if the account (None: an admin) may see it."""
    row = await db.fetchone(
        f"SELECT {_REPORT_COLUMNS} WHERE r.id = ? AND {_SCOPE}",
        (facilitator is None, report_id, facilitator, facilitator))
    return None if row is None else _report(row)


async def facilitates_any(db: Database, account_id: int) -> bool:
    return await db.fetchval(
        "SELECT 1 FROM memberships WHERE account_id = ? AND role = 'facilitator'"
        " AND status = 'active' LIMIT 1", (account_id,)) is not None


async def close_report(db: Database, report_id: int, state: ReportState, note: str) -> bool:
    """Resolve or dismiss an open report; False if it was not open."""
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "UPDATE reports SET state = ?, note = ?, closed_at = ? WHERE id = ?"
            " AND state = 'open'", (state, note, timestamp(), report_id))
        return cursor.rowcount == 1


async def mark_forwarded(db: Database, report_id: int) -> None:
    async with db.transaction() as conn:
        await conn.execute("UPDATE reports SET forwarded_at = ? WHERE id = ?",
                           (timestamp(), report_id))


# Hidden remote listings ---------------------------------------------------------

@dataclass(frozen=True, slots=True)
class HiddenListing:
    ap_id: str
    name: str
    origin: str
    hidden_at: str


async def hide_listing(db: Database, ap_id: str) -> str | None:
    """Hide the remote group or meeting with this id; its name, or None if unknown."""
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "SELECT name, origin FROM groups WHERE ap_id = ? AND origin IS NOT NULL"
            " UNION ALL SELECT e.title, g.origin FROM events e JOIN groups g"
            " ON g.id = e.group_id WHERE e.ap_id = ? AND g.origin IS NOT NULL", (ap_id, ap_id))
        row = await cursor.fetchone()
        if row is None:
            return None
        await conn.execute(
            "INSERT INTO hidden_listings (ap_id, name, origin, hidden_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING", (ap_id, row[0], row[1], timestamp()))
        return row[0]


async def unhide_listing(db: Database, ap_id: str) -> str | None:
    """Show it again; its name, or None if it was not hidden."""
    async with db.transaction() as conn:
        cursor = await conn.execute("DELETE FROM hidden_listings WHERE ap_id = ? RETURNING name",
                                    (ap_id,))
        row = await cursor.fetchone()
        return None if row is None else row[0]


async def hidden_listings(db: Database) -> list[HiddenListing]:
    rows = await db.fetchall("SELECT ap_id, name, origin, hidden_at FROM hidden_listings"
                             " ORDER BY hidden_at DESC")
    return [HiddenListing(*r) for r in rows]


async def is_hidden(db: Database, group_id: int, event_id: int | None = None) -> bool:
    """Whether an admin hid this remote group, or this remote meeting."""
    return await db.fetchval(
        "SELECT 1 FROM hidden_listings WHERE ap_id IN (SELECT ap_id FROM groups WHERE id = ?"
        " UNION ALL SELECT ap_id FROM events WHERE id = ?)", (group_id, event_id)) is not None


# Suspended local groups ---------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SuspendedGroup:
    id: int
    slug: str
    name: str


async def set_suspended(db: Database, group_id: int, suspended: bool) -> bool:
    """Suspend or reinstate a local group; followers get a Delete, or the listing back.

    False when the group is not local or already in that state.
    """
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "UPDATE groups SET suspended = ? WHERE id = ? AND origin IS NULL"
            " AND suspended != ?", (int(suspended), group_id, int(suspended)))
        if cursor.rowcount != 1:
            return False
        await record_change(conn, "group", group_id)
        cursor = await conn.execute("SELECT id FROM events WHERE group_id = ?", (group_id,))
        for (event_id,) in await cursor.fetchall():
            await record_change(conn, "event", event_id)
        return True


async def suspended_groups(db: Database) -> list[SuspendedGroup]:
    rows = await db.fetchall("SELECT id, slug, name FROM groups WHERE suspended = 1"
                             " ORDER BY name")
    return [SuspendedGroup(*r) for r in rows]
