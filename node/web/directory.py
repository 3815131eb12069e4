"""The home page and the /groups directory."""
from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response

from node.domain import ACCESSIBILITY, Cost, DirectoryQuery, Format
from node.i18n import gettext as _
from node.storage.events import upcoming_meetings
from node.storage.groups import directory_choices, search_directory
from node.web.auth import current_account
from node.web.subscriptions import subscriptions
from node.web.templating import render

DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
PAGE = re.compile(r"[0-9]{1,6}")


def directory_query(request: Request) -> tuple[DirectoryQuery, dict[str, str]]:
    """Filters from the query string; a malformed one is named, not guessed."""
    params = request.query_params
    errors: dict[str, str] = {}

    def one_of(name: str, allowed: set[str]) -> str:
        value = params.get(name, "").strip()
        if value and value not in allowed:
            errors[name] = _("Choose one of the listed options.")
            return ""
        return value

    dates = {}
    for name in ("from", "to"):
        value = params.get(name, "").strip()
        if value and not DATE.match(value):
            errors[name] = _("Use a date like 2026-12-31.")
            value = ""
        dates[name] = value
    if dates["from"] and dates["to"] and dates["from"] > dates["to"]:
        errors["to"] = _("The end date is before the start date.")
    page = params.get("page", "1")
    query = DirectoryQuery(
        q=params.get("q", "").strip()[:200],
        topic=params.get("topic", "").strip().lower()[:40],
        language=params.get("language", "").strip()[:35],
        format=one_of("format", {f.value for f in Format}),
        accessibility=tuple(a for a in params.getlist("accessibility") if a in ACCESSIBILITY),
        cost=one_of("cost", {c.value for c in Cost}),
        area=params.get("area", "").strip()[:120],
        origin=one_of("origin", {"local", "federated"}),
        date_from=dates["from"],
        date_to=dates["to"] if "to" not in errors else "",
        page=int(page) if PAGE.fullmatch(page) else 1,
    )
    return query, errors


async def home(request: Request) -> Response:
    db = request.state.db
    meetings = await upcoming_meetings(db, federated=True, limit=8)
    choices = await directory_choices(db)
    return await render(request, "home.html", {"meetings": meetings, "choices": choices})


async def groups_page(request: Request) -> Response:
    db = request.state.db
    query, errors = directory_query(request)
    page = await search_directory(db, query, await current_account(request))
    choices = await directory_choices(db)
    base = [(k, v) for k, v in request.query_params.multi_items() if k != "page"]
    return await render(
        request,
        "directory.html",
        {"query": query, "errors": errors, "results": page, "choices": choices,
         "formats": list(Format), "costs": list(Cost), "base_params": base,
         "active": [(name, value) for name, value in base if value],
         "subscribe": subscriptions(request)},
        status=400 if errors else 200,
    )
