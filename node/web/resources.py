"""A group's resources: members add and read them; whoever added one, or a facilitator,
changes it; facilitators choose which ones the group's public page shows."""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from node.domain import Account, Group, Membership, Practice
from node.forms import Errors, choice, form_values, limit, require, text
from node.i18n import N_, gettext
from node.storage import resources as store
from node.storage.resources import Resource, ResourceDraft, ResourceKind
from node.web.auth import (
    LoginRequired,
    can_manage,
    is_member,
    managed_group,
    visible_group,
)
from node.web.confirm import ask, confirmed
from node.web.templating import render, see_other

MAX_TITLE, MAX_URL, MAX_NOTE = 120, 500, 1000
# Per kind, in the order the page lists them: its heading, and its choice on the form.
KINDS = {
    ResourceKind.SERVICE: (N_("Services"), N_("A service nearby")),
    ResourceKind.HOTLINE: (N_("Helplines"), N_("A helpline")),
    ResourceKind.READING: (N_("Reading"), N_("Something to read")),
    ResourceKind.OTHER: (N_("Other resources"), N_("Something else")),
}


def web_link(value: str) -> bool:
    parts = urlsplit(value)
    return (parts.scheme in ("http", "https") and bool(parts.hostname)
            and not re.search(r"\s", value))


def parse_resource_form(form: FormData) -> tuple[ResourceDraft | None, Errors]:
    errors: Errors = {}
    kind = choice(errors, "kind", text(form, "kind"), ResourceKind,
                  gettext("what kind of resource it is"))
    title = require(errors, "title", text(form, "title"), gettext("a title"), MAX_TITLE)
    url = text(form, "url")
    if url and (len(url) > MAX_URL or not web_link(url)):
        errors["url"] = gettext(
            "Enter a full link starting with https:// or http://, at most %(max)s characters.",
            max=MAX_URL)
    note = limit(errors, "note", text(form, "note"), gettext("the note"), MAX_NOTE)
    if errors:
        return None, errors
    return ResourceDraft(kind=kind, title=title, url=url, note=note), errors


def may_change(resource: Resource, account: Account | None,
               membership: Membership | None) -> bool:
    """The member who added it, or a facilitator."""
    return can_manage(account, membership) or bool(
        account and is_member(membership) and resource.account_id == account.id)


def _sections(found: list[Resource]) -> list[tuple[str, list[Resource]]]:
    """(heading, resources) per kind that has any, in the order of KINDS."""
    return [(heading, [r for r in found if r.kind is kind])
            for kind, (heading, _) in KINDS.items() if any(r.kind is kind for r in found)]


async def group_context(request: Request, group: Group, account: Account | None,
                        membership: Membership | None, practice: Practice) -> dict[str, Any]:
    """The public resources for everyone; how many there are in all, for members."""
    db = request.state.db
    insider = is_member(membership) or can_manage(account, membership)
    return {"public_resources": await store.group_resources(db, group.id, public_only=True),
            "resource_count": await store.resource_count(db, group.id) if insider else None}


async def _list_page(request: Request, group: Group, account: Account,
                     membership: Membership | None, values: dict[str, Any] | None = None,
                     errors: Errors | None = None, status: int = 200) -> Response:
    found = await store.group_resources(request.state.db, group.id)
    return await render(request, "resources.html", {
        "group": group, "sections": _sections(found), "kinds": KINDS,
        "can_add": is_member(membership), "can_manage": can_manage(account, membership),
        "changeable": {r.id for r in found if may_change(r, account, membership)},
        "values": values or {"kind": ResourceKind.SERVICE}, "errors": errors or {},
    }, status=status)


async def resources_page(request: Request) -> Response:
    """The members' list and the form to add one. Others are sent to the group's page,
    which shows the resources the group made public."""
    group, account, membership = await visible_group(request, request.path_params["slug"])
    insider = is_member(membership) or can_manage(account, membership)
    if request.method == "GET" and not insider:
        return RedirectResponse(f"/groups/{group.slug}#resources", status_code=303)
    if account is None:
        raise LoginRequired()
    if request.method == "GET":
        return await _list_page(request, group, account, membership)
    if not is_member(membership):
        raise HTTPException(403, gettext("Only members of this group can add resources."))
    form = await request.form()
    draft, errors = parse_resource_form(form)
    if draft is None:
        return await _list_page(request, group, account, membership, form_values(form),
                                errors, status=400)
    await store.add_resource(request.state.db, group.id, account.id, draft)
    return see_other(request, f"/groups/{group.slug}/resources", gettext(
        "“%(title)s” is added. The group's members can see it.", title=draft.title))


async def _changeable(request: Request) -> tuple[Group, Account, Membership | None, Resource]:
    group, account, membership = await visible_group(request, request.path_params["slug"])
    if account is None:
        raise LoginRequired()
    resource = await store.get_resource(request.state.db, group.id, request.path_params["id"])
    if resource is None or not (is_member(membership) or can_manage(account, membership)):
        raise HTTPException(404)
    if not may_change(resource, account, membership):
        raise HTTPException(403, gettext(
            "Only the member who added this resource, or a facilitator, can change it."))
    return group, account, membership, resource


async def edit(request: Request) -> Response:
    group, account, membership, resource = await _changeable(request)
    context = {"group": group, "resource": resource, "kinds": KINDS,
               "can_manage": can_manage(account, membership)}
    if request.method == "GET":
        values = {"kind": resource.kind, "title": resource.title, "url": resource.url,
                  "note": resource.note}
        return await render(request, "resources_edit.html",
                            {**context, "values": values, "errors": {}})
    form = await request.form()
    draft, errors = parse_resource_form(form)
    if draft is None:
        return await render(request, "resources_edit.html", {
            **context, "values": form_values(form), "errors": errors}, status=400)
    manage = can_manage(account, membership)
    await store.update_resource(request.state.db, resource.id, draft, keep_public=manage)
    return see_other(request, f"/groups/{group.slug}/resources", gettext(
        "The changes are saved.") if manage or not resource.public else gettext(
        "The changes are saved. The resource is for members only again, until a facilitator"
        " makes it public."))


async def delete(request: Request) -> Response:
    group, _, _, resource = await _changeable(request)
    form = await request.form()
    if not confirmed(form):
        return await ask(request, form, back=f"/groups/{group.slug}/resources", question=gettext(
            "Delete “%(title)s” from the group's resources?", title=resource.title),
            confirm=gettext("Yes, delete it"))
    await store.delete_resource(request.state.db, resource.id)
    return see_other(request, f"/groups/{group.slug}/resources", gettext(
        "“%(title)s” is deleted.", title=resource.title))


async def publicity(request: Request) -> Response:
    """A facilitator shows a resource on the group's public page, or takes it off."""
    group, _, _ = await managed_group(request, request.path_params["slug"])
    resource = await store.get_resource(request.state.db, group.id, request.path_params["id"])
    if resource is None:
        raise HTTPException(404)
    public = (await request.form()).get("public") == "yes"
    await store.set_public(request.state.db, resource.id, public)
    return see_other(request, f"/groups/{group.slug}/resources", gettext(
        "“%(title)s” now shows on the group's public page.", title=resource.title) if public
        else gettext("“%(title)s” is for members only now.", title=resource.title))
