"""Feeds people subscribe to: the node's and each group's calendar, the Atom feed."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from node.db import stamp
from node.domain import Group, Visibility
from node.feeds import atom_feed, calendar
from node.storage.events import listed_series, series_of_group, upcoming_meetings
from node.storage.groups import is_remote_slug, listed_groups, remote_listing
from node.storage.settings import load_settings
from node.web.auth import visible_group

CALENDAR_TYPE = "text/calendar; charset=utf-8"
ATOM_TYPE = "application/atom+xml; charset=utf-8"
ATOM_GROUPS = 100  # the most recently updated
ATOM_MEETINGS = 50
ATOM_HORIZON = timedelta(weeks=4)  # a weekly series shows its next few, not a year


async def node_calendar(request: Request) -> Response:
    """Every meeting of the public groups the node lists: its own and its peers'."""
    db = request.state.db
    public_url = request.state.config.public_url
    groups = await listed_groups(db)
    listed = {group.id for group in groups}
    body = calendar(
        name=(await load_settings(db)).name,
        url=f"{public_url}/events.ics",
        public_url=public_url,
        groups=groups,
        # A group listed between the two reads waits for the next fetch.
        series=[s for s in await listed_series(db) if s.event.group_id in listed],
    )
    return Response(body, media_type=CALENDAR_TYPE)


async def group_calendar(request: Request) -> Response:
    """One group's meetings, for whoever may see the group's page."""
    group = await _calendar_group(request, request.path_params["slug"])
    public_url = request.state.config.public_url
    body = calendar(
        name=group.name,
        url=f"{public_url}/groups/{group.slug}/events.ics",
        public_url=public_url,
        groups=[group],
        series=await series_of_group(request.state.db, group.id),
    )
    # A private group's calendar was served to a member: no shared cache keeps it.
    headers = {"Cache-Control": "private"} if group.visibility is Visibility.PRIVATE else None
    return Response(body, media_type=CALENDAR_TYPE, headers=headers)


async def _calendar_group(request: Request, slug: str) -> Group:
    """A group of this node the viewer may see, or a peer's group this node lists."""
    if not is_remote_slug(slug):
        return (await visible_group(request, slug))[0]
    listing = await remote_listing(request.state.db, slug)
    if listing is None:
        raise HTTPException(404)
    return listing.group


async def atom(request: Request) -> Response:
    """The public groups the node lists and their meetings of the coming weeks."""
    db = request.state.db
    groups = await listed_groups(db, limit=ATOM_GROUPS)
    horizon = stamp(datetime.now(UTC) + ATOM_HORIZON)
    meetings = await upcoming_meetings(db, federated=True, limit=ATOM_MEETINGS)
    body = atom_feed(
        settings=await load_settings(db),
        public_url=request.state.config.public_url,
        groups=groups,
        meetings=[m for m in meetings if m.starts_utc < horizon],
    )
    return Response(body, media_type=ATOM_TYPE)
