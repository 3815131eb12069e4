"""Registering, logging in and out, and a member's own account."""
from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from node.domain import AccountStatus, RegistrationMode
from node.forms import (
    EMAIL,
    form_values,
    parse_registration,
    password_problems,
    require,
    text,
)
from node.i18n import gettext as _
from node.security import hash_password, verify_password
from node.storage import accounts as store
from node.storage.groups import groups_of
from node.storage.settings import load_settings
from node.web.auth import SESSION_KEY, current_account, log_in, log_out, require_account
from node.web.templating import render, see_other


def safe_next(target: str) -> str:
    """Only redirect to a path on this node."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def register(request: Request) -> Response:
    db = request.state.db
    settings = await load_settings(db)
    if await current_account(request):
        return RedirectResponse("/account", status_code=303)
    context = {"mode": settings.registration, "values": {}, "errors": {}}
    if request.method == "GET":
        return await render(request, "register.html", context)
    form = await request.form()
    data, errors = parse_registration(form)
    invite = text(form, "invite_code")
    if settings.registration is RegistrationMode.INVITE and not invite:
        errors["invite_code"] = _("Enter the invite code you were given.")
    if not errors and data is not None:
        pending = settings.registration is RegistrationMode.APPROVAL
        try:
            account_id = await store.create_account(
                db,
                email=data["email"],
                display_name=data["display_name"],
                password_hash=await run_in_threadpool(hash_password, data["password"]),
                status=AccountStatus.PENDING if pending else AccountStatus.ACTIVE,
                invite_code=invite if settings.registration is RegistrationMode.INVITE else None,
            )
        except store.EmailTaken:
            errors["email"] = _("An account with this email exists. Log in instead.")
        else:
            if account_id is None:
                errors["invite_code"] = _("This invite code is not valid or has been used up.")
            elif pending:
                return await render(request, "registered.html", {})
            else:
                await log_in(request, account_id)
                return see_other(request, "/groups", _(
                    "Welcome, %(name)s. Your account is ready: find a group to join.",
                    name=data["display_name"]))
    values = form_values(form)
    values.pop("password", None)
    context.update(values=values, errors=errors)
    return await render(request, "register.html", context, status=400)


async def login(request: Request) -> Response:
    next_url = safe_next(request.query_params.get("next", "/groups"))
    context = {"values": {}, "errors": {}, "next": next_url}
    if request.method == "GET":
        return await render(request, "login.html", context)
    form = await request.form()
    email = text(form, "email").lower()
    password = form.get("password", "")
    by_account, by_ip = request.state.login_limits
    wait = max(by_account.blocked(email), by_ip.blocked(_client_ip(request)))
    if wait > 0:
        context.update(values={"email": email}, errors={
            "email": _("Too many failed attempts. Try again in %(minutes)s minutes.",
                       minutes=int(wait // 60) + 1)})
        response = await render(request, "login.html", context, status=429)
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    found = await store.credentials(request.state.db, email)
    ok = await run_in_threadpool(
        verify_password, found[1] if found else None, password if isinstance(password, str) else ""
    )
    if not (found and ok):
        by_account.fail(email)
        by_ip.fail(_client_ip(request))
        context.update(values={"email": email},
                       errors={"email": _("The email or password is not right.")})
        return await render(request, "login.html", context, status=400)
    if found[0].status is not AccountStatus.ACTIVE:
        message = (_("This account is waiting for an admin's approval.")
                   if found[0].status is AccountStatus.PENDING
                   else _("This account is suspended. Contact the node's admins."))
        context.update(values={"email": email}, errors={"email": message})
        return await render(request, "login.html", context, status=403)
    by_account.reset(email)
    await log_in(request, found[0].id)
    return see_other(request, safe_next(text(form, "next") or next_url),
                     _("You are logged in as %(name)s.", name=found[0].display_name))


async def login_link(request: Request) -> Response:
    """A one-time link: GET asks to confirm (link previews must not spend it)."""
    token = request.path_params["token"]
    if request.method == "GET":
        return await render(request, "login_link.html", {"token": token})
    account_id = await store.use_login_link(request.state.db, token)
    if account_id is None:
        return await render(request, "login_link.html", {"token": token, "invalid": True},
                            status=400)
    await log_in(request, account_id)
    return see_other(request, "/account", _(
        "You are logged in. If you have no password yet, set one below."))


async def logout(request: Request) -> Response:
    await log_out(request)
    return see_other(request, "/", _("You are logged out."))


async def account(request: Request) -> Response:
    me = await require_account(request)
    db = request.state.db
    values = {"display_name": me.display_name, "email": me.email or ""}
    errors: dict[str, str] = {}
    messages: list[str] = []
    status = 200
    if request.method == "POST":
        form = await request.form()
        values = form_values(form)
        if text(form, "action") == "password":
            errors = await _change_password(request, form, me.id)
            if not errors:
                messages.append(_("Your password is changed. Other sessions were logged out."))
        else:
            display_name = require(errors, "display_name", text(form, "display_name"),
                                   _("a display name"), 60)
            email = text(form, "email").lower()
            if not EMAIL.match(email):
                errors["email"] = _("Enter a valid email address.")
            if not errors:
                try:
                    await store.update_profile(db, me.id, display_name=display_name, email=email)
                    messages.append(_("Your profile is saved."))
                    me = await store.get_account(db, me.id)
                    request.state.account = me
                except store.EmailTaken:
                    errors["email"] = _("Another account uses this email.")
        for secret in ("password", "current_password"):
            values.pop(secret, None)
        status = 400 if errors else 200
    memberships = await groups_of(db, me.id)
    has_password = await store.password_hash_of(db, me.id) is not None
    return await render(
        request, "account.html",
        {"values": values, "errors": errors, "messages": messages,
         "memberships": memberships, "has_password": has_password},
        status=status,
    )


async def _change_password(request: Request, form, account_id: int) -> dict[str, str]:
    db = request.state.db
    me = await store.get_account(db, account_id)
    current_hash = await store.password_hash_of(db, account_id)
    current = form.get("current_password", "")
    if current_hash and not await run_in_threadpool(verify_password, current_hash, current):
        return {"current_password": _("This is not your current password.")}
    if not me or not me.email:
        return {"new_password": _("Save an email address first: it is how you log in.")}
    new = form.get("new_password", "")
    problem = password_problems(new if isinstance(new, str) else "")
    if problem:
        return {"new_password": problem}
    await store.set_password(db, account_id, await run_in_threadpool(hash_password, new))
    await store.end_other_sessions(db, account_id, request.session[SESSION_KEY])
    return {}


async def delete(request: Request) -> Response:
    me = await require_account(request)
    db = request.state.db
    if request.method == "GET":
        return await render(request, "account_delete.html", {"errors": {}})
    form = await request.form()
    if text(form, "confirm") != "delete":
        return await render(request, "account_delete.html", {
            "errors": {"confirm": _("Type the word delete to confirm.")}}, status=400)
    if me.is_admin and not await store.set_admin(db, me.id, False):
        return await render(request, "account_delete.html", {
            "errors": {"confirm": _("You are the only admin. Make someone else an admin first.")}},
            status=400)
    await store.delete_account(db, me.id)
    request.session.clear()
    return await render(request, "account_deleted.html", {})
