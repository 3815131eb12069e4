"""Pages of the listings peers share: a peer's group and meeting as this node holds them.

Nothing is joined or answered here: people join and RSVP on the listing's own node,
which each page links to, saying when that node last confirmed the copy.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from node.db import parse_stamp
from node.i18n import gettext as _
from node.i18n import ngettext
from node.storage.events import remote_meeting, upcoming_meetings
from node.storage.groups import remote_listing
from node.storage.themes import meeting_theme
from node.web.occurrences import others_coming_up, requested_occurrence
from node.web.templating import render

MEETINGS_SHOWN = 12


@dataclass(frozen=True, slots=True)
class Freshness:
    """When a listing's origin last confirmed this node's copy, and whether that is long ago."""

    confirmed_at: str
    age: str  # "3 days ago"
    stale: bool
    stale_days: int


def freshness(confirmed_at: str, stale_days: int, now: datetime) -> Freshness:
    age = now - parse_stamp(confirmed_at)
    if age < timedelta(hours=1):
        said = _("less than an hour ago")
    elif age < timedelta(days=1):
        said = ngettext("%(num)s hour ago", "%(num)s hours ago", age // timedelta(hours=1))
    else:
        said = ngettext("%(num)s day ago", "%(num)s days ago", age.days)
    return Freshness(confirmed_at, said, age > timedelta(days=stale_days), stale_days)


async def group_page(request: Request) -> Response:
    """A peer's group: its whole listing, its meetings, and the way to its own page."""
    db = request.state.db
    listing = await remote_listing(db, request.path_params["slug"])
    if listing is None:
        raise HTTPException(404)
    group = listing.group
    return await render(request, "federated_group.html", {
        "group": group,
        "meetings": await upcoming_meetings(db, group_id=group.id, listed_only=False,
                                            with_cancelled=True, limit=MEETINGS_SHOWN),
        "freshness": freshness(listing.confirmed_at, request.state.config.listing_stale_days,
                               datetime.now(UTC)),
    })


async def meeting_page(request: Request, event_id: int) -> Response:
    """A peer's meeting: one occurrence in its own zone, the next ones, the way to its page."""
    db = request.state.db
    meeting = await remote_meeting(db, event_id)
    listing = await remote_listing(db, meeting.group_slug) if meeting else None
    if meeting is None or listing is None:
        raise HTTPException(404)
    event = meeting.event
    occurrence = await requested_occurrence(request, event)
    now = datetime.now(UTC)
    return await render(request, "federated_event.html", {
        "event": event,
        "group": listing.group,
        "original": meeting.url,
        "ap_id": meeting.ap_id,
        "occurrence": occurrence,
        "is_past": occurrence is not None and occurrence.end <= now,
        # Its node sends a theme only when the group made its themes public.
        "theme": await meeting_theme(db, event.id, occurrence.key) if occurrence else None,
        "others": await others_coming_up(db, event, occurrence.key if occurrence else "", now,
                                         with_cancelled=True),
        "freshness": freshness(meeting.confirmed_at, request.state.config.listing_stale_days,
                               now),
    })
