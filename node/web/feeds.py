"""Feeds people subscribe to: the node's and each group's calendar, the Atom feed."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from node.domain import DirectoryQuery, Group
from node.feeds import atom_feed, calendar
from node.storage.calendar import matching_group_ids, meetings_between
from node.storage.events import (
    get_event,
    listed_series,
    remote_meeting,
    series_of_event,
    series_of_group,
    series_of_groups,
)
from node.storage.groups import (
    get_group_by_id,
    is_remote_slug,
    listed_groups,
    remote_listing,
)
from node.storage.settings import load_settings
from node.web.auth import visible_group
from node.web.directory import directory_query

CALENDAR_TYPE = "text/calendar; charset=utf-8"
ATOM_TYPE = "application/atom+xml; charset=utf-8"
ATOM_GROUPS = 100  # the most recently updated
CALENDAR_SERIES = 500  # a node's or a search's calendar: the series meeting soonest
ATOM_MEETINGS = 50
ATOM_HORIZON = timedelta(weeks=4)  # a weekly series shows its next few, not a year


async def _saved_search(request: Request) -> DirectoryQuery:
    """The directory's filters a subscription carries (a saved search); 400 if malformed."""
    query, errors = directory_query(request)
    if errors:
        raise HTTPException(400, " ".join(f"{name}: {text}" for name, text in errors.items()))
    return query


async def _searched_groups(request: Request, query: DirectoryQuery,
                           limit: int | None = None) -> list[Group]:
    """The listed public groups the search matches, most recently updated first."""
    db = request.state.db
    searched = query != DirectoryQuery()
    groups = await listed_groups(db, limit=None if searched else limit)
    if searched:
        matching = await matching_group_ids(db, query)
        groups = [group for group in groups if group.id in matching]
    return groups[:limit]


def _self_url(request: Request) -> str:
    search = request.url.query
    return f"{request.state.config.public_url}{request.url.path}" + (f"?{search}" if search else "")


async def node_calendar(request: Request) -> Response:
    """The meetings of the public groups the node lists, its own and its peers', or of
    those a saved search (the directory's filters) matches: the `CALENDAR_SERIES` series
    meeting soonest, so a hub's calendar stays a bounded piece of work."""
    # Kept while nothing in the database changes, within the hour it was built in (the
    # soonest series move with time): subscribers polling a hub's calendar cost one build
    # between changes, not one each.
    key = ("node calendar", datetime.now(UTC).strftime("%Y%m%d%H"), str(request.url.query),
           request.state.config.public_url)
    body = await request.state.db.kept(key, lambda: _node_calendar(request))
    return Response(body, media_type=CALENDAR_TYPE)


async def _node_calendar(request: Request) -> bytes:
    db = request.state.db
    public_url = request.state.config.public_url
    query = await _saved_search(request)
    # Either way, the series meeting soonest; a saved search's among its groups' only.
    if query != DirectoryQuery():
        groups = await _searched_groups(request, query)
        series = await series_of_groups(db, sorted(g.id for g in groups), CALENDAR_SERIES)
    else:
        series = await listed_series(db, CALENDAR_SERIES)
        groups = await listed_groups(db, among={s.event.group_id for s in series})
    listed = {group.id for group in groups}
    return await run_in_threadpool(  # building it is all CPU: other requests go on meanwhile
        calendar,
        name=(await load_settings(db)).name,
        url=_self_url(request),
        public_url=public_url,
        groups=groups,
        # A group listed between the two reads waits for the next fetch.
        series=[s for s in series if s.event.group_id in listed],
    )


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
    headers = {"Cache-Control": "private"} if group.members_only else None
    return Response(body, media_type=CALENDAR_TYPE, headers=headers)


async def meeting_calendar(request: Request) -> Response:
    """One meeting series, for whoever may see its page ("Add to calendar")."""
    db = request.state.db
    event = await get_event(db, request.path_params["id"])
    group = await get_group_by_id(db, event.group_id) if event else None
    if event is None or group is None:
        raise HTTPException(404)
    if group.is_local:
        group = (await visible_group(request, group.slug))[0]
    elif await remote_meeting(db, event.id) is None:
        raise HTTPException(404)
    series = await series_of_event(db, event.id)
    if series is None:
        raise HTTPException(404)
    public_url = request.state.config.public_url
    body = calendar(name=event.title, url=f"{public_url}/events/{event.id}.ics",
                    public_url=public_url, groups=[group], series=[series])
    headers = {"Cache-Control": "private"} if group.members_only else None
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
    """The public groups the node lists and their meetings of the coming weeks (cancelled
    ones marked), or those a saved search matches."""
    db = request.state.db
    query = await _saved_search(request)
    now = datetime.now(UTC)
    body = atom_feed(
        settings=await load_settings(db),
        public_url=request.state.config.public_url,
        self_url=_self_url(request),
        groups=await _searched_groups(request, query, ATOM_GROUPS),
        meetings=await meetings_between(db, query, None, now, now + ATOM_HORIZON,
                                        ATOM_MEETINGS),
    )
    return Response(body, media_type=ATOM_TYPE)
