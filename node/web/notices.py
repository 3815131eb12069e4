"""What mail a member gets: their preferences page, and the unsubscribe link in each message.

An unsubscribe link works without logging in: its signed token names the account and
the kind, and is the only authority a POST to it needs. Mail providers send RFC 8058's
one-click POST (``List-Unsubscribe=One-Click``) with no cookies and no CSRF token, so
``CSRFProtect`` lets exactly that path through.
"""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from node.i18n import gettext as _
from node.notifier import DIGEST_HOUR_UTC, EVERY_KIND, KINDS, read_unsubscribe_token
from node.storage.notices import (
    MailPreferences,
    mail_preferences,
    save_mail_preferences,
    turn_off,
)
from node.web.auth import require_account
from node.web.templating import render, see_other


async def preferences(request: Request) -> Response:
    account = await require_account(request)
    db = request.state.db
    if request.method == "POST":
        form = await request.form()
        chosen = set(form.getlist("kinds"))
        await save_mail_preferences(db, account.id, MailPreferences(
            off=frozenset(kind for kind in _offered(account.is_admin)
                          if kind not in chosen),
            digest=form.get("delivery") == "digest",
            reminders=form.get("reminders") == "yes"))
        return see_other(request, "/account/mail", _("Your mail settings are saved."))
    return await render(request, "account_mail.html", {
        "preferences": await mail_preferences(db, account.id),
        "sections": [(audience, [(kind, KINDS[kind].label)
                                 for kind in _offered(account.is_admin)
                                 if KINDS[kind].audience == audience])
                     for audience in ("member", "facilitator", "admin")
                     if audience != "admin" or account.is_admin],
        "digest_hour": f"{DIGEST_HOUR_UTC:02d}:00",
    })


def _offered(is_admin: bool) -> list[str]:
    """The kinds a member may turn on and off here (the reminder is its own choice)."""
    return [kind for kind, about in KINDS.items() if kind != "meeting_reminder"
            and (is_admin or about.audience != "admin")]


async def unsubscribe(request: Request) -> Response:
    """GET: one button to stop the kind the link names; POST (that button, or a mail
    provider's one-click): stop it. A link this node did not sign is a 400."""
    found = read_unsubscribe_token(request.state.config.secret_key,
                                   request.path_params["token"])
    if found is None:
        return await render(request, "unsubscribe.html", {"invalid": True}, status=400)
    account_id, kind = found
    what = (_("Every message about your groups, meetings and this node") if kind == EVERY_KIND
            else _(KINDS[kind].label))
    context = {"what": what, "token": request.path_params["token"]}
    if request.method == "GET":
        return await render(request, "unsubscribe.html", context)
    kinds = list(KINDS) if kind == EVERY_KIND else [kind]
    if not await turn_off(request.state.db, account_id, kinds):
        return await render(request, "unsubscribe.html", {"invalid": True}, status=400)
    return await render(request, "unsubscribe.html", {**context, "done": True})
