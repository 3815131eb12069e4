"""Group pages: create, show, edit, join, leave and manage members."""
from __future__ import annotations

from dataclasses import fields
from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from node.domain import (
    ACCESSIBILITY,
    Account,
    Cost,
    Format,
    Group,
    GroupDraft,
    JoinPolicy,
    Membership,
    MembershipStatus,
    Review,
    Role,
    Visibility,
)
from node.forms import form_values, group_form_values, parse_group_form, text
from node.i18n import N_, gettext
from node.storage import groups as store
from node.storage.events import upcoming_meetings
from node.web.accounts import must_confirm_address
from node.web.auth import (
    can_manage,
    can_view,
    holds_invite,
    is_member,
    managed_group,
    require_account,
    visible_group,
)
from node.web.confirm import ask, confirmed
from node.web.federated import group_page
from node.web.practice import group_context
from node.web.review import gate_holds
from node.web.templating import render, see_other

FORM_CHOICES = {
    "visibilities": list(Visibility),
    "join_policies": list(JoinPolicy),
    "formats": list(Format),
    "costs": list(Cost),
    "accessibility_options": ACCESSIBILITY,
}


async def create(request: Request) -> Response:
    account = await require_account(request)
    if request.method == "GET":
        defaults = {"visibility": "public", "join_policy": "approval", "format": "in_person",
                    "cost": "free", "languages": "en", "accessibility": []}
        return await render(request, "group_form.html",
                            {"values": defaults, "errors": {}, "group": None, **FORM_CHOICES})
    form = await request.form()
    draft, errors = parse_group_form(form)
    if draft is None:
        return await render(request, "group_form.html",
                            {"values": form_values(form), "errors": errors, "group": None,
                             **FORM_CHOICES}, status=400)
    gated = await gate_holds(request, account)
    slug = await store.create_group(request.state.db, draft, account.id, gated=gated)
    if gated and draft.visibility is Visibility.PUBLIC:
        return see_other(request, f"/groups/{slug}", gettext(
            "Your group is created, and you are its facilitator. An admin of this node"
            " approves new public groups: until then only its members can see it."))
    return see_other(request, f"/groups/{slug}", gettext(
        "Your group is created, and you are its facilitator. Schedule its first meeting"
        " when you are ready."))


async def edit(request: Request) -> Response:
    group, account, _ = await managed_group(request, request.path_params["slug"])
    context = {"group": group, "errors": {}, **FORM_CHOICES}
    if request.method == "GET":
        draft = GroupDraft(**{f.name: getattr(group, f.name) for f in fields(GroupDraft)})
        return await render(request, "group_form.html",
                            {**context, "values": group_form_values(draft)})
    form = await request.form()
    if text(form, "action") == "new_invite_code":
        await store.new_invite_code(request.state.db, group.id)
        return see_other(request, f"/groups/{group.slug}/members", gettext(
            "There is a new invite code. The old one no longer works."))
    draft, errors = parse_group_form(form)
    if draft is None:
        return await render(request, "group_form.html",
                            {**context, "values": form_values(form), "errors": errors},
                            status=400)
    review = await store.update_group(request.state.db, group.id, draft,
                                      gated=await gate_holds(request, account),
                                      editor_id=account.id)
    if review is Review.PENDING and group.review is not Review.PENDING:
        return see_other(request, f"/groups/{group.slug}", gettext(
            "The changes are saved. An admin of this node approves new public groups: until"
            " then only its members can see it."))
    return see_other(request, f"/groups/{group.slug}", gettext("The changes are saved."))


async def delete(request: Request) -> Response:
    """Delete the group, after a confirmation: its meetings go, and peers are told."""
    group, _, _ = await managed_group(request, request.path_params["slug"])
    form = await request.form()
    if not confirmed(form):
        return await ask(request, form, back=f"/groups/{group.slug}/edit", question=gettext(
            "Delete “%(group)s” with all its meetings and memberships? This cannot be undone,"
            " and nodes that list it are told to remove it.", group=group.name),
            confirm=gettext("Yes, delete the group"))
    await store.delete_group(request.state.db, group.id)
    return see_other(request, "/account", gettext("“%(group)s” is deleted.", group=group.name))


async def show(request: Request) -> Response:
    slug = request.path_params["slug"]
    if store.is_remote_slug(slug):  # a peer's group: joined on its own node
        return await group_page(request)
    invite = request.query_params.get("invite", "")
    group, account, membership = await visible_group(request, slug, invite)
    return await _group_page(request, group, account, membership,
                             values={"invite_code": invite} if invite else {})


async def _group_page(
    request: Request,
    group: Group,
    account: Account | None,
    membership: Membership | None,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    db = request.state.db
    # A private group seen by its invite code alone: the listing and the join form only.
    invited = not can_view(group, account, membership)
    meetings = [] if invited else await upcoming_meetings(db, group_id=group.id,
                                                          listed_only=False,
                                                          with_cancelled=True, limit=12)
    return await render(request, "group.html", {
        "group": group,
        "membership": membership,
        "is_member": is_member(membership),
        "can_manage": can_manage(account, membership),
        "invited": invited,
        "member_count": await store.member_count(db, group.id),
        "meetings": meetings,
        "errors": errors or {},
        "values": values or {},
        **({} if invited else await group_context(request, group, account, membership)),
    }, status=status)


async def join(request: Request) -> Response:
    form = await request.form()
    code = text(form, "invite_code")
    group, account, membership = await visible_group(request, request.path_params["slug"], code)
    account = await require_account(request)
    errors: dict[str, str] = {}
    if membership is not None:
        return see_other(request, f"/groups/{group.slug}")
    unconfirmed = await must_confirm_address(request, account, f"/groups/{group.slug}")
    if unconfirmed is not None:
        return unconfirmed
    if group.agreements and form.get("accept_agreements") != "yes":
        errors["accept_agreements"] = gettext(
            "Read the group agreements and tick the box to accept them.")
    if group.join_policy is JoinPolicy.INVITE and not holds_invite(group, code):
        errors["invite_code"] = gettext(
            "This invite code is not right. Ask a facilitator for the code.")
    if errors:
        return await _group_page(request, group, account, None, errors, form_values(form), 400)
    status = (MembershipStatus.PENDING if group.join_policy is JoinPolicy.APPROVAL
              else MembershipStatus.ACTIVE)
    await store.add_membership(request.state.db, group.id, account.id, status)
    return see_other(request, f"/groups/{group.slug}", gettext(
        "You asked to join. A facilitator will look at your request soon.")
        if status is MembershipStatus.PENDING
        else gettext("Welcome to %(group)s: you are a member now.", group=group.name))


async def leave(request: Request) -> Response:
    group, account, membership = await visible_group(request, request.path_params["slug"])
    account = await require_account(request)
    message = ""
    if membership is not None:
        if not await store.remove_membership(request.state.db, group.id, account.id):
            # The sole facilitator is shown where to hand over, not an error.
            return see_other(request, f"/groups/{group.slug}/members?handover=1")
        message = (gettext("Your request to join is withdrawn.") if not membership.is_active
                   else gettext("You have left %(group)s.", group=group.name))
    return see_other(
        request,
        "/account" if group.members_only else f"/groups/{group.slug}",
        message,
    )


# What each member action says when it is done.
MEMBER_DONE = {
    "approve": N_("%(name)s is a member now."),
    "decline": N_("The request from %(name)s is declined."),
    "remove": N_("%(name)s is no longer a member."),
    "make_facilitator": N_("%(name)s is a facilitator now."),
    "make_member": N_("%(name)s is a member, no longer a facilitator."),
}


async def members(request: Request) -> Response:
    group, account, _ = await managed_group(request, request.path_params["slug"])
    db = request.state.db
    problems: list[str] = []
    if request.query_params.get("handover"):
        problems.append(gettext("You are this group's only facilitator. "
                                "Make another member a facilitator before leaving."))
    status = 200
    if request.method == "POST":
        form = await request.form()
        action = text(form, "action")
        target = text(form, "account_id")
        if action not in MEMBER_DONE or not target.isdigit():
            raise HTTPException(400, gettext("Unknown member action."))
        target_id = int(target)
        name = next((m.display_name for m in await store.list_members(db, group.id)
                     if m.account_id == target_id), None)
        if action == "remove" and not confirmed(form) and name is not None:
            return await ask(request, form, back=f"/groups/{group.slug}/members",
                             question=gettext("Remove %(name)s from “%(group)s”? They can"
                                              " ask to join again.", name=name,
                                              group=group.name),
                             confirm=gettext("Yes, remove them"))
        if action == "approve":
            done = await store.approve_membership(db, group.id, target_id)
        elif action in ("decline", "remove"):
            done = await store.remove_membership(db, group.id, target_id,
                                                 declined=action == "decline")
        else:
            role = Role.FACILITATOR if action == "make_facilitator" else Role.MEMBER
            done = await store.set_role(db, group.id, target_id, role)
        if done:
            return see_other(request, f"/groups/{group.slug}/members",
                             gettext(MEMBER_DONE[action], name=name))
        problems.append(gettext("That change was not made: a group keeps at least one "
                                "facilitator, and only current members can change role."))
        status = 409
    invite_link = (f"{request.state.config.public_url}/groups/{group.slug}?"
                   + urlencode({"invite": group.invite_code})
                   if group.join_policy is JoinPolicy.INVITE and group.invite_code else "")
    return await render(request, "group_members.html", {
        "group": group, "members": await store.list_members(db, group.id),
        "me": account, "problems": problems, "invite_link": invite_link,
    }, status=status)
