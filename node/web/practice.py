"""How a group runs itself: the facilitators' choices, and what each page of the group
shows of its members' work (themes, rota, agreements, pulses, resources)."""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from node.domain import Account, Event, Group, Membership, Occurrence
from node.forms import form_values, parse_practice_form
from node.i18n import gettext
from node.storage.practice import get_practice, save_practice
from node.web import agreements, pulses, resources, rota, themes
from node.web.auth import managed_group
from node.web.templating import render, see_other


async def settings(request: Request) -> Response:
    group, _, _ = await managed_group(request, request.path_params["slug"])
    practice = await get_practice(request.state.db, group.id)
    if request.method == "GET":
        return await render(request, "group_practice.html", {
            "group": group, "values": asdict(practice), "errors": {}})
    form = await request.form()
    chosen, errors = parse_practice_form(form)
    if chosen is None:
        return await render(request, "group_practice.html", {
            "group": group, "values": form_values(form), "errors": errors}, status=400)
    await save_practice(request.state.db, group.id, chosen)
    return see_other(request, f"/groups/{group.slug}", gettext(
        "How the group runs is saved."))


async def group_context(request: Request, group: Group, account: Account | None,
                        membership: Membership | None) -> dict[str, Any]:
    """What the group's page shows of its members' work, for this viewer."""
    practice = await get_practice(request.state.db, group.id)
    context: dict[str, Any] = {"practice": practice}
    for part in (themes.group_context, rota.group_context, agreements.group_context,
                 resources.group_context):
        context.update(await part(request, group, account, membership, practice))
    return context


async def meeting_context(request: Request, event: Event, group: Group,
                          account: Account | None, membership: Membership | None,
                          occurrence: Occurrence | None) -> dict[str, Any]:
    """What a meeting's page shows of its theme, holders and check-out pulse."""
    practice = await get_practice(request.state.db, group.id)
    context: dict[str, Any] = {"practice": practice}
    for part in (themes.meeting_context, rota.meeting_context, pulses.meeting_context):
        context.update(await part(request, event, group, account, membership, occurrence,
                                  practice))
    return context
