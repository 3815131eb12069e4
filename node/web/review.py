"""The review of new public groups: whom the gate holds, and the admins' queue."""
from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from node.domain import Account
from node.forms import require, text
from node.i18n import gettext as _
from node.storage.groups import get_group_by_id
from node.storage.review import approve_group, refuse_group, waiting_groups
from node.storage.settings import load_settings
from node.web.auth import require_admin
from node.web.templating import render, see_other

MAX_REASON = 1000


async def gate_holds(request: Request, account: Account) -> bool:
    """Whether a group this account makes public waits for an admin's approval."""
    if account.is_admin or account.trusted:
        return False
    return (await load_settings(request.state.db)).review_public_groups


async def admin_groups(request: Request) -> Response:
    await require_admin(request)
    return await _queue(request)


async def _queue(request: Request, errors: dict[str, str] | None = None,
                 values: dict[str, str] | None = None) -> Response:
    return await render(request, "admin_groups.html", {
        "waiting": await waiting_groups(request.state.db),
        "errors": errors or {},
        "values": values or {},
        "max_length": MAX_REASON,
    }, status=400 if errors else 200)


async def review_action(request: Request) -> Response:
    """Approve a waiting group, or refuse it with a reason for its facilitators."""
    admin = await require_admin(request)
    db = request.state.db
    group = await get_group_by_id(db, request.path_params["id"])
    if group is None or not group.is_local:
        raise HTTPException(404)
    form = await request.form()
    action = text(form, "action")
    if action == "approve":
        if not await approve_group(db, group.id, admin):
            return see_other(request, "/admin/groups", _(
                "%(name)s is no longer waiting for review.", name=group.name))
        return see_other(request, "/admin/groups", _(
            "%(name)s is approved: it is listed now and shared with peer nodes.",
            name=group.name))
    if action == "refuse":
        errors: dict[str, str] = {}
        field = f"reason-{group.id}"
        reason = require(errors, field, text(form, "reason"), _("the reason"), MAX_REASON)
        if errors:
            return await _queue(request, errors, {field: reason})
        if not await refuse_group(db, group.id, admin, reason):
            return see_other(request, "/admin/groups", _(
                "%(name)s is no longer waiting for review.", name=group.name))
        return see_other(request, "/admin/groups", _(
            "%(name)s is refused. Its facilitators see your reason and can change the group"
            " to ask again.", name=group.name))
    raise HTTPException(400, _("Unknown review action."))
