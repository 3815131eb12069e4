"""What a group collects for its members: services, hotlines, reading. A facilitator may
mark one public; the public ones show on the group's page, without who added them."""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from node.db import Database, timestamp


class ResourceKind(StrEnum):
    SERVICE = "service"
    HOTLINE = "hotline"
    READING = "reading"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class ResourceDraft:
    """A resource as a member writes it (validated)."""

    kind: ResourceKind
    title: str
    url: str = ""
    note: str = ""  # Markdown


@dataclass(frozen=True, slots=True)
class Resource:
    id: int
    group_id: int
    account_id: int | None  # who added it; None once their account is gone
    added_by: str  # their display name ("" once gone)
    kind: ResourceKind
    title: str
    url: str
    note: str
    public: bool
    created_at: str


SELECT = ("SELECT r.id, r.group_id, r.account_id, coalesce(a.display_name, '') AS added_by,"
          " r.kind, r.title, r.url, r.note, r.public, r.created_at FROM group_resources r"
          " LEFT JOIN accounts a ON a.id = r.account_id")
ORDER = " ORDER BY r.title COLLATE NOCASE, r.id"


def _resource(row) -> Resource:
    return Resource(id=row["id"], group_id=row["group_id"], account_id=row["account_id"],
                    added_by=row["added_by"], kind=ResourceKind(row["kind"]), title=row["title"],
                    url=row["url"], note=row["note"], public=bool(row["public"]),
                    created_at=row["created_at"])


async def add_resource(db: Database, group_id: int, account_id: int,
                       draft: ResourceDraft) -> int:
    rows = await db.write(
        "INSERT INTO group_resources (group_id, account_id, kind, title, url, note, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (group_id, account_id, draft.kind, draft.title, draft.url, draft.note, timestamp()))
    return rows[0][0]


async def update_resource(db: Database, resource_id: int, draft: ResourceDraft, *,
                          keep_public: bool) -> None:
    """Save an edit; unless ``keep_public``, the resource goes back to members only until a
    facilitator marks it public again."""
    await db.write(
        "UPDATE group_resources SET kind = ?, title = ?, url = ?, note = ?,"
        " public = public * ? WHERE id = ?",  # still public only if keep_public
        (draft.kind, draft.title, draft.url, draft.note, int(keep_public), resource_id))


async def set_public(db: Database, resource_id: int, public: bool) -> None:
    await db.write("UPDATE group_resources SET public = ? WHERE id = ?",
                   (int(public), resource_id))


async def delete_resource(db: Database, resource_id: int) -> None:
    await db.write("DELETE FROM group_resources WHERE id = ?", (resource_id,))


async def get_resource(db: Database, group_id: int, resource_id: int) -> Resource | None:
    row = await db.fetchone(f"{SELECT} WHERE r.group_id = ? AND r.id = ?",
                            (group_id, resource_id))
    return _resource(row) if row else None


async def group_resources(db: Database, group_id: int, *,
                          public_only: bool = False) -> list[Resource]:
    """The group's resources by title; only the public ones if ``public_only``."""
    rows = await db.fetchall(
        f"{SELECT} WHERE r.group_id = ?{' AND r.public = 1' if public_only else ''}{ORDER}",
        (group_id,))
    return [_resource(row) for row in rows]


async def resource_count(db: Database, group_id: int) -> int:
    return await db.fetchval("SELECT count(*) FROM group_resources WHERE group_id = ?",
                             (group_id,))
