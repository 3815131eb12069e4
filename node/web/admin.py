"""Admin screens: node settings, and accounts (approval, suspension, admins, trust,
invites, a member's data on their request)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from node.db import Database
from node.domain import Account, AccountStatus, RegistrationMode
from node.forms import EMAIL, form_values, limit, parse_settings, text
from node.i18n import gettext as _
from node.i18n import ngettext
from node.storage import accounts as store
from node.storage.account_data import account_export
from node.storage.audit import record_action
from node.storage.settings import load_settings, save_settings
from node.web.account_data import json_download
from node.web.account_mail import AccountMail, sent
from node.web.auth import require_admin
from node.web.confirm import ask, confirmed
from node.web.templating import render, see_other

MAX_INVITE_USES = 100


async def settings(request: Request) -> Response:
    me = await require_admin(request)
    db = request.state.db
    context = {"modes": list(RegistrationMode), "errors": {}, "messages": []}
    if request.method == "GET":
        values = asdict(await load_settings(db))
        return await render(request, "admin_settings.html", {**context, "values": values})
    form = await request.form()
    new_settings, errors = parse_settings(form)
    policy = await _public_policy(db, form, errors)
    if new_settings is None or errors:
        return await render(request, "admin_settings.html",
                            {**context, "values": form_values(form), "errors": errors},
                            status=400)
    new_settings = replace(new_settings, **policy,
                           review_public_groups=text(form, "review_public_groups") == "yes",
                           require_verified_email=text(form, "require_verified_email") == "yes")
    await save_settings(db, new_settings)
    await record_action(db, me, "settings.update", "node settings")
    # Rendered after saving, so the layout already shows the new name.
    return await render(request, "admin_settings.html",
                        {**context, "values": asdict(new_settings),
                         "messages": [_("The settings are saved.")]})


MAX_RULES = 5000


async def _public_policy(db: Database, form: FormData, errors: dict[str, str]) -> dict[str, Any]:
    """The /about settings from the form; a problem goes into ``errors``."""
    rules = limit(errors, "rules", text(form, "rules"), _("the rules"), MAX_RULES)
    contact = text(form, "contact_address").lower()
    if contact and (len(contact) > 254 or not EMAIL.match(contact)):
        errors["contact_address"] = _("Enter a valid email address, like name@example.org.")
    elif contact and await store.find_account(db, contact) is not None:
        # The address is public: a member's own would tell the world who runs the node.
        errors["contact_address"] = _(
            "This is the address of an account on this node. Give a role address that"
            " is nobody's own, like admins@your-node.example.")
    return {"rules": rules, "contact_address": contact,
            "block_list_private": text(form, "block_list_private") == "yes"}


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one action on the accounts page did, or why it did not."""

    message: str = ""
    problem: str = ""
    errors: dict[str, str] = field(default_factory=dict)
    login_link: str = ""
    link_for: str = ""
    handover: list[tuple[str, str]] = field(default_factory=list)  # (slug, name) of groups


# Actions that erase an account audit themselves, in the same transaction, by its number.
ERASING = ("reject", "erase")


async def accounts(request: Request) -> Response:
    me = await require_admin(request)
    db = request.state.db
    outcome = Outcome()
    values: dict[str, str] = {"uses": "1"}
    if request.method == "POST":
        form = await request.form()
        action = text(form, "action")
        if action == "invite":
            values["uses"] = text(form, "uses")
            outcome = await _create_invite(request, me, values["uses"])
            if not outcome.errors:
                await record_action(db, me, "account.invite", f"a code for {values['uses']}")
        else:
            target = await _target(request, text(form, "account_id"))
            if target is None:
                outcome = Outcome(problem=_("That account does not exist any more."))
            elif action == "suspend" and not confirmed(form) and target.id != me.id:
                return await ask(request, form, back="/admin/accounts", question=_(
                    "Suspend %(name)s? They are logged out everywhere and cannot log in"
                    " until an admin makes the account active again.",
                    name=target.display_name), confirm=_("Yes, suspend the account"))
            elif action == "erase" and not confirmed(form) and target.id != me.id:
                return await ask(request, form, back="/admin/accounts", question=_(
                    "Erase the account of %(name)s, with their memberships, RSVPs and the mail"
                    " waiting for them? This cannot be undone. If they asked for their data,"
                    " export it first.", name=target.display_name),
                    confirm=_("Yes, erase the account"))
            elif action == "export":
                await record_action(db, me, "account.export", f"account {target.id}")
                data = await account_export(db, target.id)
                assert data is not None
                return json_download(request.state.config.public_url, data)
            else:
                outcome = await _account_action(request, me, target, action)
                if not outcome.problem and action not in ERASING:
                    await record_action(db, me, f"account.{action}", target.display_name)
                if action == "revoke" and target.id == me.id and not outcome.problem:
                    # Without the admin right this page is closed to you.
                    return see_other(request, "/account", outcome.message)
    return await render(request, "admin_accounts.html", {
        "accounts": await store.list_accounts(db),
        "invites": await store.list_invite_codes(db),
        "me": me,
        "outcome": outcome,
        "values": values,
        "messages": [outcome.message] if outcome.message else [],
    }, status=400 if outcome.problem or outcome.errors else 200)


async def _target(request: Request, raw_id: str) -> Account | None:
    if not raw_id.isdigit():
        return None
    return await store.get_account(request.state.db, int(raw_id))


async def _account_action(request: Request, me: Account, target: Account, action: str) -> Outcome:
    """Apply one action to an account, or say why it does not apply."""
    db = request.state.db
    name = target.display_name
    status = target.status
    if action == "approve" and status is AccountStatus.PENDING:
        mail = await AccountMail.of(request)
        await store.set_status(db, target.id, AccountStatus.ACTIVE,
                               letter=mail.approved(target) if target.email else None)
        sent(request)
        return Outcome(message=_("%(name)s is approved and can now log in.", name=name))
    if action == "reject" and status is AccountStatus.PENDING:
        mail = await AccountMail.of(request)
        await store.delete_account(db, target.id, by=me, action="account.reject",
                                   letter=mail.rejected(target) if target.email else None)
        sent(request)
        return Outcome(message=_("The registration of %(name)s is rejected and removed.",
                                 name=name))
    if action == "erase":
        return await _erase(request, me, target)
    if action == "suspend" and status is AccountStatus.ACTIVE:
        if target.id == me.id:
            return Outcome(problem=_("You cannot suspend your own account."))
        await store.set_status(db, target.id, AccountStatus.SUSPENDED)
        return Outcome(message=_("%(name)s is suspended and logged out everywhere.", name=name))
    if action == "unsuspend" and status is AccountStatus.SUSPENDED:
        await store.set_status(db, target.id, AccountStatus.ACTIVE)
        return Outcome(message=_("%(name)s is active again.", name=name))
    if action == "grant" and status is AccountStatus.ACTIVE and not target.is_admin:
        await store.set_admin(db, target.id, True)
        return Outcome(message=_("%(name)s is now an admin.", name=name))
    if action == "revoke" and target.is_admin:
        if not await store.set_admin(db, target.id, False):
            return Outcome(problem=_("%(name)s is the only active admin, and a node needs one. "
                                     "Make someone else an admin first.", name=name))
        return Outcome(message=_("%(name)s is no longer an admin.", name=name))
    if action == "trust" and status is AccountStatus.ACTIVE and not target.is_admin \
            and await store.set_trusted(db, target.id, True):
        return Outcome(message=_("%(name)s is trusted: the public groups they make skip the"
                                 " review.", name=name))
    if action == "untrust" and await store.set_trusted(db, target.id, False):
        return Outcome(message=_("%(name)s is no longer trusted.", name=name))
    if action == "link" and status is AccountStatus.ACTIVE:
        token = await store.create_login_link(db, target.id)
        return Outcome(login_link=request.state.config.login_url(token), link_for=name)
    return Outcome(problem=_("That action does not apply to %(name)s (account %(status)s).",
                           name=name, status=status))


async def _erase(request: Request, me: Account, target: Account) -> Outcome:
    """Erase an account on its member's request (their own page does it for them)."""
    name = target.display_name
    if target.id == me.id:
        return Outcome(problem=_("To delete your own account, use your account page."))
    try:
        await store.delete_account(request.state.db, target.id, by=me)
    except store.HandOverFirst as e:
        return Outcome(handover=e.groups, problem=_(
            "%(name)s is the only facilitator of the groups below. Make another member a"
            " facilitator there first.", name=name))
    except store.LastAdmin:
        return Outcome(problem=_("%(name)s is the only active admin, and a node needs one. "
                                 "Make someone else an admin first.", name=name))
    return Outcome(message=_("The account of %(name)s is erased, with everything the node held"
                             " about them.", name=name))


async def _create_invite(request: Request, me: Account, raw_uses: str) -> Outcome:
    if not raw_uses.isdigit() or not 1 <= int(raw_uses) <= MAX_INVITE_USES:
        return Outcome(errors={
            "uses": _("Enter how many people may use the code, from 1 to %(max)s.",
                      max=MAX_INVITE_USES)})
    uses = int(raw_uses)
    code = await store.create_invite_code(request.state.db, me.id, uses)
    return Outcome(message=ngettext("New invite code %(code)s, for %(num)s person.",
                                    "New invite code %(code)s, for %(num)s people.",
                                    uses, code=code))
