"""Moderation: members report listings; facilitators and admins handle the reports;
admins forward them to a listing's node, hide remote listings, suspend local
groups and read the audit log."""
from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from federation import flags
from node.domain import Account, Event, Group, ReportReason, ReportState
from node.forms import MAX_REPORT_TEXT, form_values, limit, parse_report, text
from node.i18n import gettext as _
from node.storage import moderation as store
from node.storage.audit import audit_page, record_action
from node.storage.events import get_event
from node.storage.groups import get_group, get_group_by_id
from node.web.auth import require_account, require_admin, visible_group
from node.web.templating import render

CLOSING = {"resolve": ReportState.RESOLVED, "dismiss": ReportState.DISMISSED}


def _page_number(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    return int(raw) if raw.isdigit() else 1


# Reporting ------------------------------------------------------------------------

async def _reportable(request: Request, group: Group | None,
                      event: Event | None = None) -> Group:
    """The group, if this member may see it: ours as its page allows, a peer's unless hidden."""
    if group is None:
        raise HTTPException(404)
    if group.is_local:
        return (await visible_group(request, group.slug))[0]
    if await store.is_hidden(request.state.db, group.id, event.id if event else None):
        raise HTTPException(404)
    return group


async def report_group(request: Request) -> Response:
    account = await require_account(request)
    group = await get_group(request.state.db, request.path_params["slug"])
    return await _report_form(request, account, await _reportable(request, group), None)


async def report_event(request: Request) -> Response:
    account = await require_account(request)
    db = request.state.db
    event = await get_event(db, request.path_params["id"])
    group = await get_group_by_id(db, event.group_id) if event else None
    return await _report_form(request, account, await _reportable(request, group, event), event)


async def _report_form(request: Request, account: Account, group: Group,
                       event: Event | None) -> Response:
    context: dict[str, Any] = {"group": group, "event": event, "reasons": list(ReportReason),
                               "errors": {}, "values": {}, "max_length": MAX_REPORT_TEXT}
    if request.method == "GET":
        return await render(request, "report.html", context)
    form = await request.form()
    parsed, errors = parse_report(form)
    if parsed is None:
        return await render(request, "report.html",
                            {**context, "errors": errors, "values": form_values(form)},
                            status=400)
    reason, comment = parsed
    await store.create_report(
        request.state.db, reporter_id=account.id, group_id=group.id,
        event_id=event.id if event else None,
        target_name=event.title if event else group.name, reason=reason, comment=comment)
    return await render(request, "report_sent.html", context)


# Handling reports -------------------------------------------------------------------

async def _scope(request: Request) -> tuple[Account, int | None]:
    """The account, and whose groups narrow what it sees (None: an admin sees all)."""
    account = await require_account(request)
    if account.is_admin:
        return account, None
    if await store.facilitates_any(request.state.db, account.id):
        return account, account.id
    raise HTTPException(403, _("Only the node's admins and group facilitators can see reports."))


async def _reports_page(request: Request, account: Account, scope: int | None, *,
                        messages: list[str] | None = None, errors: dict[str, str] | None = None,
                        values: dict[str, str] | None = None) -> Response:
    db = request.state.db
    open_ = request.query_params.get("state") != "closed"
    admin = scope is None
    return await render(request, "admin_reports.html", {
        "results": await store.list_reports(db, open_=open_, facilitator=scope,
                                            page=_page_number(request)),
        "open": open_,
        "is_admin": admin,
        "hidden": await store.hidden_listings(db) if admin else [],
        "suspended": await store.suspended_groups(db) if admin else [],
        "messages": messages or [],
        "errors": errors or {},
        "values": values or {},
        "max_length": MAX_REPORT_TEXT,
    }, status=400 if errors else 200)


async def admin_reports(request: Request) -> Response:
    account, scope = await _scope(request)
    return await _reports_page(request, account, scope)


async def report_action(request: Request) -> Response:
    """Resolve or dismiss (facilitators of the group too), or forward (admins)."""
    account, scope = await _scope(request)
    db = request.state.db
    report = await store.get_report(db, request.path_params["id"], facilitator=scope)
    if report is None:
        raise HTTPException(404)
    form = await request.form()
    action = text(form, "action")
    field = f"{'forward' if action == 'forward' else 'note'}-{report.id}"
    errors: dict[str, str] = {}
    written = limit(errors, field, text(form, "text"), _("the text"), MAX_REPORT_TEXT)
    if errors:
        return await _reports_page(request, account, scope, errors=errors,
                                   values={field: written})
    subject = f"report {report.id} on {report.target_name}"
    if action in CLOSING:
        if not await store.close_report(db, report.id, CLOSING[action], written):
            return await _reports_page(request, account, scope,
                                       messages=[_("That report was already closed.")])
        await record_action(db, account, f"report.{action}", subject)
        return await _reports_page(request, account, scope, messages=[
            _("The report on %(name)s is resolved.", name=report.target_name)
            if action == "resolve" else
            _("The report on %(name)s is dismissed.", name=report.target_name)])
    if action == "forward":
        await require_admin(request)
        if not report.is_remote:
            raise HTTPException(
                400, _("Only reports about another node's listing go to that node."))
        try:
            await flags.send_flag(request.state.federation, report.target_ap_id,
                                  flags.flag_content(report.reason, written))
        except flags.FlagError as e:
            return await _reports_page(request, account, scope, errors={field: str(e)},
                                       values={field: written})
        await store.mark_forwarded(db, report.id)
        await record_action(db, account, "report.forward", subject)
        return await _reports_page(request, account, scope, messages=[
            _("The report on %(name)s is sent to its node, from this node.",
              name=report.target_name)])
    raise HTTPException(400, _("Unknown report action."))


async def admin_listings(request: Request) -> Response:
    """Hide or show a remote listing (by id); suspend or reinstate a local group."""
    account = await require_admin(request)
    db = request.state.db
    form = await request.form()
    action = text(form, "action")
    if action in ("hide", "unhide"):
        ap_id = text(form, "ap_id")
        change = store.hide_listing if action == "hide" else store.unhide_listing
        name = await change(db, ap_id)
        if name is None:
            message = _("That listing is not there any more, or was already changed.")
        else:
            await record_action(db, account, f"listing.{action}", f"{name} ({ap_id})")
            message = (_("%(name)s is hidden.", name=name) if action == "hide"
                       else _("%(name)s is shown again.", name=name))
    elif action in ("suspend", "unsuspend"):
        raw = text(form, "group_id")
        group = await get_group_by_id(db, int(raw)) if raw.isdigit() else None
        if group is None or not await store.set_suspended(db, group.id, action == "suspend"):
            message = _("That group is not there any more, or was already changed.")
        else:
            await record_action(db, account, f"group.{action}", f"{group.name} ({group.slug})")
            message = (_("%(name)s is suspended: only admins can see it, and peers are told "
                         "it is gone.", name=group.name) if action == "suspend"
                       else _("%(name)s is listed again.", name=group.name))
    else:
        raise HTTPException(400, _("Unknown listing action."))
    return await _reports_page(request, account, None, messages=[message])


async def audit(request: Request) -> Response:
    await require_admin(request)
    return await render(request, "admin_audit.html",
                        {"log": await audit_page(request.state.db, _page_number(request))})
