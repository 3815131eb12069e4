"""What a flyer, an embed or a JSON feed may show: a group or meeting anyone may see,
and its next meetings in their own zone, cancelled ones flagged.

These pages are for noticeboards and neighbourhood websites, so they answer the same
to everyone: a private, suspended or not yet approved group has none (404), whoever
asks. A peer's listed group or meeting has them too, pointing at this node's page of it.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from starlette.exceptions import HTTPException
from starlette.requests import Request

from node.db import Database, parse_stamp
from node.domain import Event, Format, Group
from node.storage.events import get_event, remote_meeting, upcoming_meetings
from node.storage.groups import get_group_by_id, is_remote_slug, remote_listing
from node.web.auth import visible_group
from node.web.occurrences import coming_up


@dataclass(frozen=True, slots=True)
class PublicMeeting:
    """One occurrence as public pages show it: never an online link, never who comes."""

    event_id: int
    title: str
    start: datetime  # aware, in the meeting's own zone
    end: datetime
    timezone: str
    format: Format
    place: str
    address: str
    cancelled: bool
    group_name: str
    group_slug: str
    path: str  # this node's page of the occurrence: /events/{id}?on=...

    def url(self, public_url: str) -> str:
        return public_url + self.path


async def shown_group(request: Request, slug: str) -> Group:
    """A group of this node that is not private and that the visitor may see, or a
    peer's group this node lists; 404 otherwise."""
    if is_remote_slug(slug):
        listing = await remote_listing(request.state.db, slug)
        if listing is None:
            raise HTTPException(404)
        return listing.group
    group, _, _ = await visible_group(request, slug)  # the group page's own check
    if group.members_only or group.suspended:
        raise HTTPException(404)
    return group


async def shown_event(request: Request, event_id: int) -> tuple[Event, Group]:
    """A meeting of a group ``shown_group`` allows, or a peer's listed meeting; else 404."""
    db = request.state.db
    event = await get_event(db, event_id)
    group = await get_group_by_id(db, event.group_id) if event else None
    if event is None or group is None:
        raise HTTPException(404)
    if not group.is_local:
        meeting = await remote_meeting(db, event_id)  # not hidden, nor its group
        if meeting is None:
            raise HTTPException(404)
        return meeting.event, await shown_group(request, meeting.group_slug)
    return event, await shown_group(request, group.slug)


async def next_meetings(db: Database, *, group: Group | None = None,
                        event: Event | None = None, limit: int = 10) -> list[PublicMeeting]:
    """The next occurrences not yet over, soonest first, cancelled ones flagged: of one
    series, of one group, or of this node's listed public groups."""
    if event is not None:
        assert group is not None
        if event.cancelled:
            return []
        return [_public(event, group.name, group.slug, o.start, o.end, o.key, o.cancelled)
                for o in (await coming_up(db, event, datetime.now(UTC)))[:limit]]
    found = await upcoming_meetings(db, group_id=group.id if group else None,
                                    listed_only=group is None, with_cancelled=True,
                                    limit=limit)
    return [_public(m.event, m.group_name, m.group_slug,
                    parse_stamp(m.starts_utc).astimezone(m.event.tz),
                    parse_stamp(m.ends_utc).astimezone(m.event.tz),
                    m.original_start, m.cancelled) for m in found]


def _public(event: Event, group_name: str, group_slug: str, start: datetime, end: datetime,
            key: str, cancelled: bool) -> PublicMeeting:
    return PublicMeeting(
        event_id=event.id, title=event.title, start=start, end=end, timezone=event.timezone,
        format=event.format, place=event.place, address=event.address, cancelled=cancelled,
        group_name=group_name, group_slug=group_slug, path=f"/events/{event.id}?on={key}")
