"""Next meetings for neighbourhood websites: an HTML fragment to paste or fetch, and JSON.

Read-only and the same for every visitor, so any site may read them from a browser
(``Access-Control-Allow-Origin: *``, on these responses alone). They carry what the
public pages show: never an online link, never who is coming.
"""
from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from node.domain import Group
from node.flyer import plain_when
from node.storage.settings import load_settings
from node.web.public_meetings import PublicMeeting, next_meetings, shown_group
from node.web.templating import environment, render

DEFAULT_LIMIT = 10
MAX_LIMIT = 50
OPEN_TO_ALL = {"Access-Control-Allow-Origin": "*"}
JSON_TYPE = "application/json"


def _limit(request: Request) -> int:
    value = request.query_params.get("limit", "")
    return max(1, min(MAX_LIMIT, int(value))) if value.isdigit() else DEFAULT_LIMIT


async def _meetings(request: Request, group: Group | None) -> list[PublicMeeting]:
    return await next_meetings(request.state.db, group=group, limit=_limit(request))


def meeting_json(m: PublicMeeting, public_url: str) -> dict[str, Any]:
    return {
        "title": m.title,
        "start": m.start.isoformat(),  # in the meeting's own zone, with its offset
        "end": m.end.isoformat(),
        "timezone": m.timezone,
        "format": str(m.format),
        "place": m.place,
        "address": m.address,
        "cancelled": m.cancelled,
        "group": m.group_name,
        "group_url": f"{public_url}/groups/{m.group_slug}",
        "url": m.url(public_url),
    }


def _json(name: str, url: str, meetings: list[PublicMeeting], public_url: str) -> Response:
    body = {"name": name, "url": url,
            "meetings": [meeting_json(m, public_url) for m in meetings]}
    return Response(orjson.dumps(body), media_type=JSON_TYPE, headers=OPEN_TO_ALL)


async def _fragment(request: Request, name: str, url: str, meetings: list[PublicMeeting],
                    node_wide: bool) -> HTMLResponse:
    # Rendered without the page's session: nothing per visitor, no cookie.
    html = environment.get_template("embed_meetings.html").render({
        "name": name, "url": url, "node_wide": node_wide,
        "meetings": [(m, plain_when(m.start, m.end)) for m in meetings],
        "public_url": request.state.config.public_url,
        "lang": (await load_settings(request.state.db)).default_language,
    })
    return HTMLResponse(html, headers=OPEN_TO_ALL)


async def node_meetings_json(request: Request) -> Response:
    public_url = request.state.config.public_url
    settings = await load_settings(request.state.db)
    return _json(settings.name, public_url + "/", await _meetings(request, None), public_url)


async def group_meetings_json(request: Request) -> Response:
    group = await shown_group(request, request.path_params["slug"])
    public_url = request.state.config.public_url
    return _json(group.name, f"{public_url}/groups/{group.slug}",
                 await _meetings(request, group), public_url)


async def node_embed(request: Request) -> HTMLResponse:
    public_url = request.state.config.public_url
    settings = await load_settings(request.state.db)
    return await _fragment(request, settings.name, public_url + "/",
                           await _meetings(request, None), node_wide=True)


async def group_embed(request: Request) -> HTMLResponse:
    group = await shown_group(request, request.path_params["slug"])
    url = f"{request.state.config.public_url}/groups/{group.slug}"
    return await _fragment(request, group.name, url, await _meetings(request, group),
                           node_wide=False)


async def group_embed_help(request: Request) -> Response:
    """How a neighbourhood website shows this group's next meetings."""
    group = await shown_group(request, request.path_params["slug"])
    base = f"{request.state.config.public_url}/groups/{group.slug}"
    fragment = await group_embed(request)
    return await render(request, "embed_help.html", {
        "group": group, "fragment": bytes(fragment.body).decode(),
        "embed_url": f"{base}/embed.html", "json_url": f"{base}/meetings.json",
    })
