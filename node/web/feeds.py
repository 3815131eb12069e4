"""Feeds people subscribe to: the node's and each group's calendar, the Atom feed."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import Response

from node.db import stamp
from node.domain import Visibility
from node.feeds import atom_feed, calendar
from node.storage.events import series_of_groups, upcoming_meetings
from node.storage.groups import listed_local_groups
from node.storage.settings import load_settings
from node.web.auth import visible_group

CALENDAR_TYPE = "text/calendar; charset=utf-8"
ATOM_TYPE = "application/atom+xml; charset=utf-8"
ATOM_MEETINGS = 50
ATOM_HORIZON = timedelta(weeks=4)  # a weekly series shows its next few, not a year


async def node_calendar(request: Request) -> Response:
    """Every meeting of the node's public groups."""
    db = request.state.db
    public_url = request.state.config.public_url
    groups = await listed_local_groups(db)
    body = calendar(
        name=(await load_settings(db)).name,
        url=f"{public_url}/events.ics",
        public_url=public_url,
        groups=groups,
        series=await series_of_groups(db, [group.id for group in groups]),
    )
    return Response(body, media_type=CALENDAR_TYPE)


async def group_calendar(request: Request) -> Response:
    """One group's meetings, for whoever may see the group's page."""
    group, _, _ = await visible_group(request, request.path_params["slug"])
    public_url = request.state.config.public_url
    body = calendar(
        name=group.name,
        url=f"{public_url}/groups/{group.slug}/events.ics",
        public_url=public_url,
        groups=[group],
        series=await series_of_groups(request.state.db, [group.id]),
    )
    # A private group's calendar was served to a member: no shared cache keeps it.
    headers = {"Cache-Control": "private"} if group.visibility is Visibility.PRIVATE else None
    return Response(body, media_type=CALENDAR_TYPE, headers=headers)


async def atom(request: Request) -> Response:
    """The node's public groups and their meetings of the coming weeks."""
    db = request.state.db
    groups = await listed_local_groups(db)
    local = {group.id for group in groups}
    horizon = stamp(datetime.now(UTC) + ATOM_HORIZON)
    meetings = await upcoming_meetings(db, limit=ATOM_MEETINGS)
    body = atom_feed(
        settings=await load_settings(db),
        public_url=request.state.config.public_url,
        groups=groups,
        meetings=[m for m in meetings if m.event.group_id in local and m.starts_utc < horizon],
    )
    return Response(body, media_type=ATOM_TYPE)
