"""A forgotten password: a signed link by mail, that works once, for an hour.

Asking for a link answers the same, at the same speed, whether or not an
account uses the address: the account is looked up, and the message queued,
only after the answer has gone (a background task).
"""
from __future__ import annotations

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from node.account_links import Purpose
from node.domain import Account, AccountStatus
from node.forms import EMAIL, password_problems, text
from node.i18n import gettext as _
from node.security import hash_password
from node.storage import accounts as store
from node.web.account_mail import AccountMail, links, sent
from node.web.accounts import client_address, too_many, wait_message
from node.web.auth import log_in
from node.web.templating import render, see_other


async def request_link(request: Request) -> Response:
    """/login/reset: the address to send a link to."""
    if request.method == "GET":
        return await render(request, "reset_request.html", {"values": {}, "errors": {}})
    form = await request.form()
    email = text(form, "email").lower()
    context = {"values": {"email": email}, "errors": {}}
    if len(email) > 254 or not EMAIL.match(email):
        context["errors"] = {"email": _("Enter a valid email address, like name@example.org.")}
        return await render(request, "reset_request.html", context, status=400)
    limit = request.state.mail_limits.reset
    wait = limit.wait(email, client_address(request))
    if wait > 0:
        context["errors"] = {"email": wait_message(wait)}
        return await too_many(request, "reset_request.html", context, wait)
    limit.count(email, client_address(request))
    response = await render(request, "reset_request.html", {**context, "sent": True})
    response.background = BackgroundTask(_send_link, request, email)
    return response


async def _send_link(request: Request, email: str) -> None:
    found = await store.credentials(request.state.db, email)
    if found is None or found[0].status is not AccountStatus.ACTIVE:
        return
    account, password_hash = found
    mail = await AccountMail.of(request)
    await store.queue_letter(request.state.db, mail.reset(account, password_hash))
    sent(request)


async def _reset_target(request: Request, token: str) -> tuple[Account, str | None] | None:
    """The active account the link resets, and the password hash it replaces; None when
    the link is forged, too old, or its password was changed since (it was used)."""
    claim = links(request).claim(Purpose.RESET, token)
    found = await store.account_with_hash(request.state.db, claim.account_id) if claim else None
    if not (claim and found and found[0].status is AccountStatus.ACTIVE
            and links(request).holds(Purpose.RESET, claim, found[0].email, found[1])):
        return None
    return found


async def choose_password(request: Request) -> Response:
    """/login/reset/{token}: GET shows the form (a link preview does not use the link),
    POST sets the password, ends every session and logs in here."""
    token = request.path_params["token"]
    context = {"token": token, "errors": {}}
    target = await _reset_target(request, token)
    if target is None:
        return await render(request, "reset_password.html", {**context, "invalid": True},
                            status=400)
    if request.method == "GET":
        return await render(request, "reset_password.html", context)
    account, old_hash = target
    form = await request.form()
    new = form.get("new_password", "")
    problem = password_problems(new if isinstance(new, str) else "")
    if problem:
        return await render(request, "reset_password.html",
                            {**context, "errors": {"new_password": problem}}, status=400)
    mail = await AccountMail.of(request)
    if not await store.change_password(
            request.state.db, account.id, await run_in_threadpool(hash_password, new),
            replacing=old_hash, keep_session=None, letter=mail.password_changed(account)):
        return await render(request, "reset_password.html", {**context, "invalid": True},
                            status=400)
    sent(request)
    await log_in(request, account.id)
    return see_other(request, "/account", _(
        "Your new password is set, and every other session of your account is logged out."))
