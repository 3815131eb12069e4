"""Registering, logging in and out, and a member's own account: its address and password."""
from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from node.account_links import Purpose
from node.domain import Account, AccountStatus, RegistrationMode
from node.forms import (
    EMAIL,
    form_values,
    parse_registration,
    password_problems,
    require,
    text,
)
from node.i18n import current_language
from node.i18n import gettext as _
from node.security import hash_password, verify_password
from node.storage import accounts as store
from node.storage.groups import groups_of
from node.storage.settings import load_settings
from node.web.account_mail import AccountMail, links, sent
from node.web.auth import SESSION_KEY, current_account, log_in, log_out, require_account
from node.web.templating import render, see_other

MAX_REASON_LENGTH = 1000


def safe_next(target: str) -> str:
    """Only redirect to a path on this node."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def wait_message(wait: float) -> str:
    return _("Too many requests for this address or from your network. Try again in"
             " %(minutes)s minutes.", minutes=int(wait // 60) + 1)


async def too_many(request: Request, template: str, context: dict[str, Any],
                   wait: float) -> Response:
    """A page refused by a rate limit: 429, and when to come back."""
    response = await render(request, template, context, status=429)
    response.headers["Retry-After"] = str(int(wait) + 1)
    return response


async def register(request: Request) -> Response:
    db = request.state.db
    settings = await load_settings(db)
    if await current_account(request):
        return RedirectResponse("/account", status_code=303)
    context: dict[str, Any] = {"mode": settings.registration, "values": {}, "errors": {}}
    if request.method == "GET":
        return await render(request, "register.html", context)
    form = await request.form()
    data, errors = parse_registration(form)
    invite = text(form, "invite_code")
    if settings.registration is RegistrationMode.INVITE and not invite:
        errors["invite_code"] = _("Enter the invite code you were given.")
    approval = settings.registration is RegistrationMode.APPROVAL
    reason = text(form, "reason")
    if approval:
        require(errors, "reason", reason, _("why you want to join"), MAX_REASON_LENGTH)
    values = form_values(form)
    values.pop("password", None)
    context.update(values=values, errors=errors)
    if errors or data is None:
        return await render(request, "register.html", context, status=400)
    limit = request.state.mail_limits.register
    wait = limit.wait(data["email"], client_address(request))
    if wait > 0:
        errors["email"] = wait_message(wait)
        return await too_many(request, "register.html", context, wait)
    limit.count(data["email"], client_address(request))
    mail = await AccountMail.of(request)
    language = current_language()
    try:
        account_id = await store.create_account(
            db,
            email=data["email"],
            display_name=data["display_name"],
            password_hash=await run_in_threadpool(hash_password, data["password"]),
            status=AccountStatus.PENDING if approval else AccountStatus.ACTIVE,
            invite_code=invite if settings.registration is RegistrationMode.INVITE else None,
            language=language,
            join_reason=reason if approval else "",
            letter=lambda new_id: mail.verification(new_id, data["email"],
                                                    data["display_name"], language),
        )
    except store.EmailTaken:
        errors["email"] = _("An account with this email exists. Log in instead.")
        return await render(request, "register.html", context, status=400)
    if account_id is None:
        errors["invite_code"] = _("This invite code is not valid or has been used up.")
        return await render(request, "register.html", context, status=400)
    sent(request)
    if approval:
        return await render(request, "registered.html", {})
    await log_in(request, account_id)
    if settings.require_verified_email:
        return see_other(request, "/groups", _(
            "Welcome, %(name)s. We sent a link to %(email)s: open it to confirm your address,"
            " then find a group to join.", name=data["display_name"], email=data["email"]))
    return see_other(request, "/groups", _(
        "Welcome, %(name)s. Your account is ready: find a group to join.",
        name=data["display_name"]))


async def login(request: Request) -> Response:
    next_url = safe_next(request.query_params.get("next", "/groups"))
    context = {"values": {}, "errors": {}, "next": next_url}
    if request.method == "GET":
        return await render(request, "login.html", context)
    form = await request.form()
    email = text(form, "email").lower()
    password = form.get("password", "")
    by_account, by_ip = request.state.login_limits
    wait = max(by_account.blocked(email), by_ip.blocked(client_address(request)))
    if wait > 0:
        context.update(values={"email": email}, errors={
            "email": _("Too many failed attempts. Try again in %(minutes)s minutes.",
                       minutes=int(wait // 60) + 1)})
        return await too_many(request, "login.html", context, wait)
    found = await store.credentials(request.state.db, email)
    ok = await run_in_threadpool(
        verify_password, found[1] if found else None, password if isinstance(password, str) else ""
    )
    if not (found and ok):
        by_account.fail(email)
        by_ip.fail(client_address(request))
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


# The account page ------------------------------------------------------------

async def account(request: Request) -> Response:
    me = await require_account(request)
    db = request.state.db
    errors: dict[str, str] = {}
    messages: list[str] = []
    status = 200
    wait = 0.0
    submitted: dict[str, Any] | None = None
    if request.method == "POST":
        form = await request.form()
        action = text(form, "action")
        if action == "password":
            errors = await _change_password(request, form, me.id)
            status = 400 if errors else 200
            if not errors:
                messages.append(_("Your password is changed. Other sessions were logged out."))
        elif action == "cancel_email":
            await store.cancel_email_change(db, me.id)
            messages.append(_("You keep logging in with %(email)s.", email=me.email))
        else:
            message, wait = await _save_profile(request, form, me, errors)
            messages += [message] if message else []
            status = 400 if errors else 200
            submitted = form_values(form) if errors else None
        me = await store.get_account(db, me.id)
        assert me is not None
        request.state.account = me
    values = submitted or {"display_name": me.display_name, "email": me.email or ""}
    memberships = await groups_of(db, me.id)
    has_password = await store.password_hash_of(db, me.id) is not None
    context = {"values": values, "errors": errors, "messages": messages,
               "memberships": memberships, "has_password": has_password}
    if wait:
        return await too_many(request, "account.html", context, wait)
    return await render(request, "account.html", context, status=status)


async def _save_profile(request: Request, form: FormData, me: Account,
                        errors: dict[str, str]) -> tuple[str, float]:
    """Save the name; a new address waits for its confirmation. What was done, and the
    seconds to wait when too many links were asked for."""
    db = request.state.db
    display_name = require(errors, "display_name", text(form, "display_name"),
                           _("a display name"), 60)
    email = text(form, "email").lower()
    if len(email) > 254 or not EMAIL.match(email):
        errors["email"] = _("Enter a valid email address.")
    if errors:
        return "", 0
    if email == me.email or me.email is None:
        # An account without an address yet (the first admin) has no old one to protect.
        try:
            await store.update_profile(db, me.id, display_name=display_name, email=email)
        except store.EmailTaken:
            errors["email"] = _("Another account uses this email.")
            return "", 0
        if me.email is None and not me.email_verified:
            await _send_verification(request, me.id)
        return _("Your profile is saved."), 0
    limit = request.state.mail_limits.confirm
    wait = limit.wait(email, client_address(request))
    if wait > 0:
        errors["email"] = wait_message(wait)
        return "", wait
    limit.count(email, client_address(request))
    await store.update_profile(db, me.id, display_name=display_name, email=me.email)
    mail = await AccountMail.of(request)
    try:
        await store.request_email_change(db, me.id, email, mail.email_change(me, email))
    except store.EmailTaken:
        errors["email"] = _("Another account uses this email.")
        return "", 0
    sent(request)
    return _("We sent a link to %(new)s. Open it to confirm the new address; until then"
             " you log in with %(old)s.", new=email, old=me.email), 0


async def _change_password(request: Request, form: FormData, account_id: int) -> dict[str, str]:
    db = request.state.db
    found = await store.account_with_hash(db, account_id)
    assert found is not None
    me, current_hash = found
    current = form.get("current_password", "")
    if current_hash and not await run_in_threadpool(
            verify_password, current_hash, current if isinstance(current, str) else ""):
        return {"current_password": _("This is not your current password.")}
    if not me.email:
        return {"new_password": _("Save an email address first: it is how you log in.")}
    new = form.get("new_password", "")
    problem = password_problems(new if isinstance(new, str) else "")
    if problem:
        return {"new_password": problem}
    mail = await AccountMail.of(request)
    if not await store.change_password(
            db, account_id, await run_in_threadpool(hash_password, new), replacing=current_hash,
            keep_session=request.session[SESSION_KEY], letter=mail.password_changed(me)):
        return {"current_password": _("Your password was changed meanwhile. Try again.")}
    sent(request)
    return {}


async def delete(request: Request) -> Response:
    me = await require_account(request)
    db = request.state.db
    context: dict[str, Any] = {"errors": {}, "handover": await store.sole_facilitator_of(db, me.id)}
    if request.method == "GET":
        return await render(request, "account_delete.html", context)
    form = await request.form()
    if text(form, "confirm") != "delete":
        context["errors"] = {"confirm": _("Type the word delete to confirm.")}
        return await render(request, "account_delete.html", context, status=400)
    try:
        await store.delete_account(db, me.id)
    except store.HandOverFirst as e:
        context["handover"] = e.groups
        return await render(request, "account_delete.html", context, status=409)
    except store.LastAdmin:
        context["errors"] = {
            "confirm": _("You are the only admin. Make someone else an admin first.")}
        return await render(request, "account_delete.html", context, status=409)
    request.session.clear()
    request.state.account = None
    return await render(request, "account_deleted.html", {})


# Confirming an address ----------------------------------------------------------

async def _send_verification(request: Request, account_id: int) -> None:
    account = await store.get_account(request.state.db, account_id)
    assert account is not None and account.email
    mail = await AccountMail.of(request)
    await store.queue_letter(request.state.db, mail.verification_again(account))
    sent(request)


async def must_confirm_address(request: Request, account: Account, back: str) -> Response | None:
    """The answer to an account that must confirm its address before joining a group, with
    a way to have the link sent again; None when it may join."""
    if account.email_verified or account.email is None:
        return None
    if not (await load_settings(request.state.db)).require_verified_email:
        return None
    return await render(request, "verify_needed.html", {"next": back}, status=403)


async def resend_verification(request: Request) -> Response:
    me = await require_account(request)
    form = await request.form()
    next_url = safe_next(text(form, "next") or "/account")
    if me.email_verified or me.email is None:
        return see_other(request, next_url, _("Your email address is already confirmed."))
    limit = request.state.mail_limits.confirm
    wait = limit.wait(me.email, client_address(request))
    if wait > 0:
        return await too_many(request, "verify_needed.html",
                              {"next": next_url, "error": wait_message(wait)}, wait)
    limit.count(me.email, client_address(request))
    await _send_verification(request, me.id)
    return see_other(request, next_url, _(
        "We sent a new link to %(email)s. It works for 7 days.", email=me.email))


async def _landing(request: Request) -> str:
    """Where a confirmed link leads: the account page, or logging in."""
    return "/account" if await current_account(request) else "/login"


async def verify_address(request: Request) -> Response:
    """The link sent on registration. GET asks to confirm (link previews must not use it);
    confirming twice does no harm."""
    token = request.path_params["token"]
    context = {"action": f"/account/verify/{token}"}
    claim = links(request).claim(Purpose.VERIFY, token)
    account = await store.get_account(request.state.db, claim.account_id) if claim else None
    if not (claim and account and account.email
            and links(request).holds(Purpose.VERIFY, claim, account.email)):
        return await render(request, "address_confirm.html", {**context, "invalid": True},
                            status=400)
    if request.method == "GET":
        return await render(request, "address_confirm.html", context)
    if not await store.mark_verified(request.state.db, account.id, account.email):
        return await render(request, "address_confirm.html", {**context, "invalid": True},
                            status=400)
    return see_other(request, await _landing(request),
                     _("Thank you: your email address is confirmed."))


async def confirm_address(request: Request) -> Response:
    """The link sent to a new address: from then on the account logs in with it."""
    token = request.path_params["token"]
    context: dict[str, Any] = {"action": f"/account/email/{token}", "new_address": True}
    claim = links(request).claim(Purpose.EMAIL, token)
    account = await store.get_account(request.state.db, claim.account_id) if claim else None
    if not (claim and account and account.pending_email
            and links(request).holds(Purpose.EMAIL, claim, account.email, account.pending_email)):
        return await render(request, "address_confirm.html", {**context, "invalid": True},
                            status=400)
    if request.method == "GET":
        return await render(request, "address_confirm.html", context)
    try:
        changed = await store.confirm_email_change(request.state.db, account.id,
                                                   account.pending_email)
    except store.EmailTaken:
        return await render(request, "address_confirm.html", {
            **context, "error": _("Another account uses this address now, so it cannot be"
                                  " yours here. Choose another on your account page.")},
            status=409)
    if not changed:
        return await render(request, "address_confirm.html", {**context, "invalid": True},
                            status=400)
    return see_other(request, await _landing(request), _(
        "Your email address is now %(email)s.", email=account.pending_email))
