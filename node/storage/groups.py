"""Groups, their listing tags, memberships and the directory query."""
from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date

from node.db import Database, Row, Writing, timestamp
from node.domain import (
    Account,
    Cost,
    DirectoryQuery,
    Format,
    Group,
    GroupDraft,
    JoinPolicy,
    Membership,
    MembershipStatus,
    Review,
    Role,
    Visibility,
)
from node.security import new_token
from node.storage.agreements import write_version
from node.storage.changes import record_change
from node.storage.notices import record_for_facilitators, record_notice
from node.storage.review import settle_review
from node.storage.rota import release_turns
from node.storage.rsvps import release_rsvp

PAGE_SIZE = 20
# Path segments under /groups/ that name pages, not groups.
RESERVED_SLUGS = {"new", "feed", "events", "admin"}

# Shown in the directory: not suspended here, not waiting for review nor refused,
# not hidden by an admin (remote).
LISTED = ("g.suspended = 0 AND (g.review IS NULL OR g.review = 'approved')"
          " AND (g.ap_id IS NULL OR g.ap_id NOT IN (SELECT ap_id FROM hidden_listings))")
# Meetings of listed groups that an admin did not hide one by one.
LISTED_OCCURRENCE = ("o.event_id NOT IN (SELECT e.id FROM hidden_listings h"
                     " CROSS JOIN events e ON e.ap_id = h.ap_id)")  # few hidden: read them first
# An occurrence that takes place: the directory's "meets" and "next meeting" skip cancelled ones.
HELD_OCCURRENCE = f"o.cancelled = 0 AND {LISTED_OCCURRENCE}"

TAG_FIELDS = {"topic": "topics", "language": "languages",
              "accessibility": "accessibility", "audience": "audiences"}


def slugify(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:48].strip("-")
    return slug or "group"


def is_remote_slug(slug: str) -> bool:
    """A federated group's slug is ``name@host``; ``slugify`` never makes an ``@``."""
    return "@" in slug


def _group(row: Row, tags: dict[str, list[str]] | None = None) -> Group:
    tags = tags or {}
    return Group(
        id=row["id"],
        slug=row["slug"],
        name=row["name"],
        summary=row["summary"],
        description=row["description"],
        agreements=row["agreements"],
        visibility=Visibility(row["visibility"]),
        join_policy=JoinPolicy(row["join_policy"]),
        invite_code=row["invite_code"],
        format=Format(row["format"]),
        cost=Cost(row["cost"]),
        area=row["area"],
        address=row["address"],
        contact=row["contact"],
        origin=row["origin"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        url=row["url"],
        ap_id=row["ap_id"],
        suspended=bool(row["suspended"]),
        review=Review(row["review"]) if row["review"] else None,
        review_reason=row["review_reason"],
        **{TAG_FIELDS[kind]: tuple(values) for kind, values in tags.items()},
    )


# Groups per tag query, under SQLite's limit of parameters: a calendar reads every listed group.
TAG_BATCH = 5000


async def _tags_for(db: Database, group_ids: list[int]) -> dict[int, dict[str, list[str]]]:
    found: dict[int, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for first in range(0, len(group_ids), TAG_BATCH):
        batch = group_ids[first:first + TAG_BATCH]
        rows = await db.fetchall(
            "SELECT group_id, kind, value FROM group_tags WHERE group_id IN"
            f" ({','.join('?' * len(batch))}) ORDER BY kind, value",
            batch,
        )
        for row in rows:
            found[row["group_id"]][row["kind"]].append(row["value"])
    return found


async def _write_listing(conn: Writing, group_id: int, draft: GroupDraft) -> None:
    """Replace the tags and search row of a group from its draft."""
    await conn.execute("DELETE FROM group_tags WHERE group_id = ?", (group_id,))
    await conn.executemany(
        "INSERT INTO group_tags (group_id, kind, value) VALUES (?, ?, ?)",
        [
            (group_id, kind, value)
            for kind, attr in TAG_FIELDS.items()
            for value in dict.fromkeys(getattr(draft, attr))
        ],
    )
    await conn.execute("DELETE FROM groups_fts WHERE rowid = ?", (group_id,))
    await conn.execute(
        "INSERT INTO groups_fts (rowid, name, summary, description, topics)"
        " VALUES (?, ?, ?, ?, ?)",
        (group_id, draft.name, draft.summary, draft.description, " ".join(draft.topics)),
    )


def _listing_values(draft: GroupDraft) -> tuple:
    return (
        draft.name, draft.summary, draft.description, draft.agreements,
        draft.visibility, draft.join_policy, draft.format, draft.cost,
        draft.area, draft.address, draft.contact,
    )


async def create_group(db: Database, draft: GroupDraft, facilitator_id: int, *,
                       gated: bool = False) -> str:
    """Create a local group with its creator as first facilitator; its slug.

    ``gated``: a public group waits for an admin's approval (``settle_review``).
    """
    base = slugify(draft.name)
    now = timestamp()
    async with db.transaction() as conn:
        # The slug, and the base's numbered ones: "-" sorts before every digit, "." after.
        cursor = await conn.execute(
            "SELECT slug FROM groups WHERE slug = ? OR (slug > ? AND slug < ?)",
            (base, base + "-0", base + "-:"))
        taken = {row[0] for row in await cursor.fetchall()} | RESERVED_SLUGS
        slug, n = base, 2
        while slug in taken:
            slug, n = f"{base}-{n}", n + 1
        cursor = await conn.execute(
            "INSERT INTO groups (name, summary, description, agreements, visibility,"
            " join_policy, format, cost, area, address, contact, slug, invite_code,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " RETURNING id", _listing_values(draft) + (slug, new_token()[:10], now, now),
        )
        group_id = (await cursor.fetchone())[0]
        await _write_listing(conn, group_id, draft)
        await record_change(conn, "group", group_id)
        version = (await write_version(conn, group_id, draft.agreements, "written")
                   if draft.agreements else 0)
        await conn.execute(
            "INSERT INTO memberships (group_id, account_id, role, status, created_at,"
            " agreements_version) VALUES (?, ?, 'facilitator', 'active', ?, ?)",
            (group_id, facilitator_id, now, version),
        )
        await settle_review(conn, group_id, draft.visibility, gated)
    return slug


async def update_group(db: Database, group_id: int, draft: GroupDraft, *,
                       gated: bool = False, editor_id: int | None = None) -> Review | None:
    """Save a facilitator's edit; the group's review state after it (``settle_review``).

    Changed agreements are a new version, accepted by its editor (``editor_id``).
    """
    async with db.transaction() as conn:
        cursor = await conn.execute("SELECT agreements FROM groups WHERE id = ?", (group_id,))
        before = await cursor.fetchone()
        if before is not None and before[0] != draft.agreements:
            await write_version(conn, group_id, draft.agreements, "written",
                                author_id=editor_id)
        await conn.execute(
            "UPDATE groups SET name = ?, summary = ?, description = ?, agreements = ?,"
            " visibility = ?, join_policy = ?, format = ?, cost = ?, area = ?, address = ?,"
            " contact = ?, updated_at = ? WHERE id = ?",
            _listing_values(draft) + (timestamp(), group_id),
        )
        await _write_listing(conn, group_id, draft)
        await record_change(conn, "group", group_id)
        return await settle_review(conn, group_id, draft.visibility, gated)


async def new_invite_code(db: Database, group_id: int) -> str:
    code = new_token()[:10]
    async with db.transaction() as conn:
        await conn.execute("UPDATE groups SET invite_code = ? WHERE id = ?", (code, group_id))
    return code


async def get_group(db: Database, slug: str) -> Group | None:
    row = await db.fetchone("SELECT * FROM groups WHERE slug = ?", (slug,))
    if row is None:
        return None
    return _group(row, (await _tags_for(db, [row["id"]]))[row["id"]])


async def get_group_by_id(db: Database, group_id: int) -> Group | None:
    row = await db.fetchone("SELECT * FROM groups WHERE id = ?", (group_id,))
    if row is None:
        return None
    return _group(row, (await _tags_for(db, [group_id]))[group_id])


async def delete_group(db: Database, group_id: int) -> None:
    async with db.transaction() as conn:
        await conn.execute("DELETE FROM groups_fts WHERE rowid = ?", (group_id,))
        await conn.execute("DELETE FROM groups WHERE id = ?", (group_id,))
        await record_change(conn, "group", group_id)


# Memberships ---------------------------------------------------------------

def _membership(row: Row) -> Membership:
    return Membership(
        group_id=row["group_id"],
        account_id=row["account_id"],
        role=Role(row["role"]),
        status=MembershipStatus(row["status"]),
        created_at=row["created_at"],
    )


async def get_membership(db: Database, group_id: int, account_id: int) -> Membership | None:
    row = await db.fetchone(
        "SELECT * FROM memberships WHERE group_id = ? AND account_id = ?",
        (group_id, account_id),
    )
    return None if row is None else _membership(row)


async def add_membership(
    db: Database, group_id: int, account_id: int, status: MembershipStatus
) -> Membership:
    """Join (or ask to join); an existing membership is returned unchanged.

    A request is told to the facilitators; a member who joins at once is welcomed.
    """
    async with db.transaction() as conn:
        # They accept the agreements as they are now: the latest version.
        cursor = await conn.execute(
            "INSERT INTO memberships (group_id, account_id, role, status, created_at,"
            " agreements_version) SELECT ?, ?, 'member', ?, ?, coalesce(max(version), 0)"
            " FROM agreement_versions WHERE group_id = ? ON CONFLICT DO NOTHING",
            (group_id, account_id, status, timestamp(), group_id),
        )
        if cursor.rowcount == 1 and status is MembershipStatus.PENDING:
            await record_for_facilitators(conn, group_id, "join_request",
                                          member_id=account_id)
        elif cursor.rowcount == 1:
            await record_notice(conn, "welcome", account_id, group_id=group_id)
        cursor = await conn.execute(
            "SELECT * FROM memberships WHERE group_id = ? AND account_id = ?",
            (group_id, account_id),
        )
        return _membership(await cursor.fetchone())


async def approve_membership(db: Database, group_id: int, account_id: int) -> bool:
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "UPDATE memberships SET status = 'active'"
            " WHERE group_id = ? AND account_id = ? AND status = 'pending'",
            (group_id, account_id),
        )
        if cursor.rowcount == 1:
            await record_notice(conn, "join_approved", account_id, group_id=group_id)
        return cursor.rowcount == 1


async def set_role(db: Database, group_id: int, account_id: int, role: Role) -> bool:
    """Change an active member's role; a group always keeps one facilitator."""
    async with db.transaction() as conn:
        if role is Role.MEMBER and await _last_facilitator(conn, group_id, account_id):
            return False
        cursor = await conn.execute(
            "UPDATE memberships SET role = ?"
            " WHERE group_id = ? AND account_id = ? AND status = 'active'",
            (role, group_id, account_id),
        )
        return cursor.rowcount == 1


async def _last_facilitator(conn: Writing, group_id: int, account_id: int) -> bool:
    cursor = await conn.execute(
        "SELECT account_id FROM memberships WHERE group_id = ? AND role = 'facilitator'"
        " AND status = 'active'",
        (group_id,),
    )
    facilitators = [row[0] for row in await cursor.fetchall()]
    return facilitators == [account_id]


async def remove_membership(db: Database, group_id: int, account_id: int, *,
                            declined: bool = False) -> bool:
    """Leave, decline or remove; the last facilitator cannot leave.

    The member's RSVPs to the group's meetings go too, freeing their seats, and their
    turns on its rota. A request ``declined`` by a facilitator is told to its member.
    """
    async with db.transaction() as conn:
        if await _last_facilitator(conn, group_id, account_id):
            return False
        cursor = await conn.execute(
            "SELECT r.event_id, r.occurrence FROM rsvps r JOIN events e ON e.id = r.event_id"
            " WHERE e.group_id = ? AND r.account_id = ?",
            (group_id, account_id),
        )
        for event_id, occurrence in await cursor.fetchall():
            await release_rsvp(conn, event_id, occurrence, account_id)
        await release_turns(conn, group_id, account_id)
        cursor = await conn.execute(
            "DELETE FROM memberships WHERE group_id = ? AND account_id = ? RETURNING status",
            (group_id, account_id),
        )
        removed = await cursor.fetchone()
        if declined and removed is not None and removed[0] == MembershipStatus.PENDING:
            await record_notice(conn, "join_declined", account_id, group_id=group_id)
        return True


@dataclass(frozen=True, slots=True)
class MemberEntry:
    account_id: int
    display_name: str
    role: Role
    status: MembershipStatus
    since: str


async def list_members(db: Database, group_id: int) -> list[MemberEntry]:
    rows = await db.fetchall(
        "SELECT m.account_id, a.display_name, m.role, m.status, m.created_at"
        " FROM memberships m JOIN accounts a ON a.id = m.account_id WHERE m.group_id = ?"
        " ORDER BY m.status = 'pending' DESC, m.role = 'facilitator' DESC, m.created_at",
        (group_id,),
    )
    return [
        MemberEntry(r[0], r[1], Role(r[2]), MembershipStatus(r[3]), r[4]) for r in rows
    ]


async def member_count(db: Database, group_id: int) -> int:
    return await db.fetchval(
        "SELECT count(*) FROM memberships WHERE group_id = ? AND status = 'active'",
        (group_id,),
    )


async def groups_of(db: Database, account_id: int) -> list[tuple[Group, Membership]]:
    rows = await db.fetchall(
        "SELECT g.*, m.account_id, m.group_id, m.role, m.status AS mstatus,"
        " m.created_at AS mcreated FROM memberships m JOIN groups g ON g.id = m.group_id"
        " WHERE m.account_id = ? ORDER BY g.name",
        (account_id,),
    )
    return [
        (
            _group(r),
            Membership(r["group_id"], r["account_id"], Role(r["role"]),
                       MembershipStatus(r["mstatus"]), r["mcreated"]),
        )
        for r in rows
    ]


# Directory -----------------------------------------------------------------

def search_words(text: str) -> list[str]:
    """The words of free text searched for (each as a prefix: ``Dialect.terms``)."""
    return re.findall(r"\w+", text)[:12]


# Date windows shorter than this many days are read in time order (about 5,000 meetings a
# day at 10,000 groups); longer ones look up each group's meetings in the window, which
# costs about as much as reading two weeks of meetings.
SCAN_DAYS = 14
# Above this many matches, walking upcoming meetings in time order finds a page of
# soonest-first groups sooner than working out every matching group's next meeting.
WALK_ABOVE = 500


@dataclass(frozen=True, slots=True)
class DirectoryPage:
    # (group, its next meeting's start in UTC, that meeting's time zone)
    groups: list[tuple[Group, str | None, str | None]]
    total: int
    page: int
    pages: int


def directory_filter(
    query: DirectoryQuery, viewer: Account | None, walking: bool = False
) -> tuple[list[str], list[object]]:
    """SQL conditions on ``groups g`` (and their parameters) for every filter of ``query``
    but its free text: listed groups the viewer may see (the directory, the calendar).

    ``walking``: for a walk of occurrences in time order, each row's group has its tags
    looked up, instead of each tag's groups listed first (thousands, for a common topic).
    """
    where = ["(g.visibility = 'public'"
             + (" OR (g.visibility = 'private' AND g.id IN (SELECT group_id FROM memberships"
                "  WHERE account_id = ? AND status = 'active'))" if viewer else "")
             + ")", LISTED]
    params: list[object] = [viewer.id] if viewer else []
    tag_filters = [("topic", query.topic), ("language", query.language)]
    tag_filters += [("accessibility", value) for value in query.accessibility]
    for kind, value in tag_filters:
        if value:
            where.append("EXISTS (SELECT 1 FROM group_tags t WHERE t.kind = ? AND t.value = ?"
                         " AND t.group_id = g.id)" if walking else
                         "g.id IN (SELECT group_id FROM group_tags WHERE kind = ? AND value = ?)")
            params += [kind, value]
    for column, value in (("format", query.format), ("cost", query.cost)):
        if value:
            where.append(f"g.{column} = ?")
            params.append(value)
    if query.area:
        where.append("g.area = ? COLLATE NOCASE")
        params.append(query.area)
    if query.origin == "local":
        where.append("g.origin IS NULL")
    elif query.origin == "federated":
        where.append("g.origin IS NOT NULL")
    if query.date_from or query.date_to:
        where.append(_meets_between(query.date_from, query.date_to))
        params += [
            (query.date_from or "0000-01-01") + "T00:00:00Z",
            (query.date_to or "9999-12-30") + "T24:00:00Z",
        ]
    return where, params


def _meets_between(date_from: str, date_to: str) -> str:
    """SQL: group ``g`` has a held meeting starting in [?, ?)."""
    try:
        days = (date.fromisoformat(date_to) - date.fromisoformat(date_from)).days
    except ValueError:  # an open end (or no such day): as long as it gets
        days = SCAN_DAYS
    if days < SCAN_DAYS:
        # A short window holds fewer meetings than there are groups: read them once.
        return ("g.id IN (SELECT o.group_id FROM occurrences o WHERE o.starts_utc >= ?"
                f" AND o.starts_utc < ? AND {HELD_OCCURRENCE})")
    return ("EXISTS (SELECT 1 FROM occurrences o WHERE o.group_id = g.id"
            f" AND o.starts_utc >= ? AND o.starts_utc < ? AND {HELD_OCCURRENCE})")


async def search_directory(
    db: Database, query: DirectoryQuery, viewer: Account | None
) -> DirectoryPage:
    """Listed groups matching every filter, best match (or soonest) first."""
    where, params = directory_filter(query, viewer)
    source = "groups g"
    words = search_words(query.q)
    if words:
        # Search once, then find groups by rowid (not one search per group).
        source = f"{db.dialect.matches} f CROSS JOIN groups g ON g.id = f.rowid"
        params.insert(0, db.dialect.terms(words))
    now = timestamp()
    condition = " AND ".join(where)
    counted = f"SELECT count(*) FROM {source} WHERE {condition}"
    total = await db.kept((counted, *params), lambda: db.fetchval(counted, params))
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(1, query.page), pages)
    offset = (page - 1) * PAGE_SIZE
    if words:
        ids = [r[0] for r in await db.fetchall(
            f"SELECT g.id FROM {source} WHERE {condition} ORDER BY f.rank, g.name"
            " LIMIT ? OFFSET ?", [*params, PAGE_SIZE, offset])]
    else:
        ids = await _soonest_first(db, condition, params, now, total, offset)
    soonest = (f"FROM occurrences o WHERE o.group_id = g.id AND o.starts_utc >= ?"
               f" AND {HELD_OCCURRENCE} ORDER BY o.starts_utc LIMIT 1")
    rows = await db.fetchall(
        f"SELECT g.*, (SELECT o.starts_utc {soonest}) AS next_start,"
        f" (SELECT e.timezone FROM events e WHERE e.id = (SELECT o.event_id {soonest}))"
        f" AS next_zone FROM groups g WHERE g.id {db.dialect.among}",
        [now, now, db.dialect.listed(ids)])
    rows.sort(key=lambda r: ids.index(r["id"]))
    tags = await _tags_for(db, [r["id"] for r in rows])
    return DirectoryPage(
        groups=[(_group(r, tags[r["id"]]), r["next_start"], r["next_zone"]) for r in rows],
        total=total,
        page=page,
        pages=pages,
    )


async def _soonest_first(db: Database, condition: str, params: list[object], now: str,
                         total: int, offset: int) -> list[int]:
    """Ids of one page of matching groups: soonest next meeting first, then the rest by name."""
    if total > WALK_ABOVE:
        # A group's first row in time order is its next meeting; ties go by name.
        rows = await db.fetchall(
            "SELECT o.group_id FROM occurrences o INDEXED BY occurrences_time"
            " CROSS JOIN groups g ON g.id = o.group_id WHERE o.starts_utc >= ?"
            f" AND {HELD_OCCURRENCE} AND {condition} ORDER BY o.starts_utc, g.name LIMIT ?",
            [now, *params, 4 * (offset + PAGE_SIZE)])
        ids = list(dict.fromkeys(r[0] for r in rows))[offset:offset + PAGE_SIZE]
        if len(ids) == PAGE_SIZE:
            return ids
    rows = await db.fetchall(
        "SELECT g.id, (SELECT min(starts_utc) FROM occurrences o WHERE o.group_id = g.id"
        f" AND o.starts_utc >= ? AND {HELD_OCCURRENCE}) AS next_start FROM groups g"
        f" WHERE {condition} ORDER BY next_start NULLS LAST, g.name LIMIT ? OFFSET ?",
        [now, *params, PAGE_SIZE, offset])
    return [r[0] for r in rows]


async def directory_choices(db: Database) -> dict[str, list[str]]:
    """Values present in listed groups, for the filter menus (kept while nothing changes)."""
    return await db.kept(("directory choices",), lambda: _directory_choices(db))


async def _directory_choices(db: Database) -> dict[str, list[str]]:
    # Each distinct value by one index seek from the last (not every tag row), then
    # whether a listed group has it, reading that value's groups first.
    rows = await db.fetchall(
        "WITH RECURSIVE tag(kind, value) AS ("
        " SELECT column1, (SELECT min(value) FROM group_tags WHERE kind = column1)"
        " FROM (VALUES ('topic'), ('language')) AS kinds"
        " UNION ALL SELECT kind, (SELECT min(t.value) FROM group_tags t"
        " WHERE t.kind = tag.kind AND t.value > tag.value) FROM tag WHERE value IS NOT NULL)"
        " SELECT kind, value FROM tag WHERE value IS NOT NULL AND EXISTS (SELECT 1"
        " FROM group_tags t CROSS JOIN groups g ON g.id = t.group_id WHERE t.kind = tag.kind"
        f" AND t.value = tag.value AND g.visibility = 'public' AND {LISTED}) ORDER BY value"
    )
    choices: dict[str, list[str]] = {"topic": [], "language": [], "area": []}
    for row in rows:
        choices[row["kind"]].append(row["value"])
    areas = await db.fetchall(
        "SELECT a.area FROM (SELECT DISTINCT area FROM groups WHERE area != '') a"
        " WHERE EXISTS (SELECT 1 FROM groups g WHERE g.area = a.area"
        f" AND g.visibility = 'public' AND {LISTED}) ORDER BY a.area COLLATE NOCASE"
    )
    choices["area"] = [r[0] for r in areas]
    return choices


async def listed_groups(db: Database, limit: int | None = None,
                        among: Collection[int] | None = None) -> list[Group]:
    """The public groups the directory lists, this node's and its peers', with their tags,
    most recently updated first (feeds); ``among``: only those of these ids."""
    condition, params = "", []
    if among is not None:
        condition = f" AND g.id {db.dialect.among}"
        params = [db.dialect.listed(list(among))]
    if limit is not None:
        params.append(limit)
    rows = await db.fetchall(
        f"SELECT g.* FROM groups g WHERE g.visibility = 'public' AND {LISTED}{condition}"
        " ORDER BY g.updated_at DESC, g.name" + (" LIMIT ?" if limit is not None else ""),
        params)
    tags = await _tags_for(db, [r["id"] for r in rows])
    return [_group(r, tags[r["id"]]) for r in rows]


@dataclass(frozen=True, slots=True)
class RemoteListing:
    """A peer's group as this node lists it, and when its origin last confirmed the copy."""

    group: Group
    confirmed_at: str


async def remote_listing(db: Database, slug: str) -> RemoteListing | None:
    """The federated group at ``slug``; None if there is none or an admin hid it."""
    row = await db.fetchone(
        "SELECT g.*, coalesce(g.confirmed_at, g.updated_at) AS confirmed FROM groups g"
        f" WHERE g.slug = ? AND g.origin IS NOT NULL AND g.visibility = 'public' AND {LISTED}",
        (slug,))
    if row is None:
        return None
    return RemoteListing(_group(row, (await _tags_for(db, [row["id"]]))[row["id"]]),
                         row["confirmed"])
