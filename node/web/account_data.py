"""A member's data to take away: everything the node holds about them, and their meetings."""
from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from node.feeds import calendar
from node.i18n import gettext as _
from node.storage.account_data import account_export, export_document
from node.storage.events import series_of_groups
from node.storage.groups import groups_of
from node.web.auth import require_account
from node.web.feeds import CALENDAR_TYPE

PRIVATE = {"Cache-Control": "no-store"}  # personal data: kept by no cache


def json_download(public_url: str, data: dict[str, Any]) -> Response:
    return Response(export_document(public_url, data), media_type="application/json", headers={
        **PRIVATE,
        "Content-Disposition": f'attachment; filename="account-{data["account"]["id"]}.json"'})


async def export_json(request: Request) -> Response:
    """/account/export: the member's account and every record of theirs, as JSON."""
    me = await require_account(request)
    data = await account_export(request.state.db, me.id)
    assert data is not None
    return json_download(request.state.config.public_url, data)


async def export_calendar(request: Request) -> Response:
    """/account/export.ics: the meetings of the groups the member belongs to."""
    me = await require_account(request)
    db = request.state.db
    public_url = request.state.config.public_url
    groups = [group for group, membership in await groups_of(db, me.id) if membership.is_active]
    series = await series_of_groups(db, [group.id for group in groups]) if groups else []
    body = await run_in_threadpool(
        calendar, name=_("Meetings of your groups"), url=f"{public_url}/account/export.ics",
        public_url=public_url, groups=groups, series=series)
    return Response(body, media_type=CALENDAR_TYPE, headers={
        **PRIVATE, "Content-Disposition": 'attachment; filename="meetings.ics"'})
