"""A group's agreements, written together: the current text and its history, proposed
changes with their discussion and objections, and members accepting a new version.

Members (and the node's admins) see all of it; anyone else gets a 404, as for every
members-only page. Nothing here is shown to visitors or sent to peers: only the adopted
text is, as the group's agreements.
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from node.agreement_diff import word_diff
from node.db import stamp
from node.domain import Account, AgreementDecision, Group, Membership, Practice
from node.forms import Errors, form_values, limit, require, text
from node.i18n import N_, gettext
from node.storage import agreements as store
from node.storage.practice import get_practice
from node.web.auth import can_manage, is_member, visible_group
from node.web.templating import render, see_other

MAX_TEXT = 10000
MAX_REASON = 2000
MAX_COMMENT = 2000
MAX_OBJECTION = 1000


def _normal(value: str) -> str:
    """Text as compared and kept: browsers send a textarea's lines with CR LF."""
    return value.replace("\r\n", "\n").replace("\r", "\n").strip()


async def group_context(request: Request, group: Group, account: Account | None,
                        membership: Membership | None, practice: Practice) -> dict[str, Any]:
    """For a member: the way to the agreements page, and, when the agreements changed
    since they accepted them, what changed and the button to accept them."""
    if not is_member(membership) and not (account and account.is_admin):
        return {}
    db = request.state.db
    context: dict[str, Any] = {
        "agreements_open": len(await store.open_proposals(db, group.id))}
    if not is_member(membership) or not group.agreements:
        return context
    current = await store.current_version(db, group.id)
    accepted = await store.accepted_version(db, group.id, membership.account_id)
    if accepted < current:
        context["agreements_ask"] = {
            "version": current,
            "changes": word_diff(await store.version_text(db, group.id, accepted),
                              _normal(group.agreements))}
    return context


async def _readable(request: Request) -> tuple[Group, Account, Membership | None]:
    """The group, for its members and the node's admins; a 404 for anyone else."""
    group, account, membership = await visible_group(request, request.path_params["slug"])
    if account is None or not (is_member(membership) or account.is_admin):
        raise HTTPException(404)
    return group, account, membership


async def page(request: Request) -> Response:
    group, _, membership = await _readable(request)
    db = request.state.db
    return await render(request, "agreements.html", {
        "group": group, "is_member": is_member(membership),
        "practice": await get_practice(db, group.id),
        "versions": await store.versions(db, group.id),
        "open": await store.open_proposals(db, group.id),
        "closed": await store.closed_proposals(db, group.id),
    })


async def version(request: Request) -> Response:
    group, _, _ = await _readable(request)
    db = request.state.db
    number = request.path_params["number"]
    shown = await store.get_version(db, group.id, number)
    if shown is None:
        raise HTTPException(404)
    before = await store.version_text(db, group.id, number - 1)
    return await render(request, "agreement_version.html", {
        "group": group, "version": shown,
        "latest": await store.current_version(db, group.id),
        "changes": word_diff(before, _normal(shown.text))})


async def propose(request: Request) -> Response:
    group, account, membership = await _readable(request)
    if not is_member(membership):
        raise HTTPException(404)
    db = request.state.db
    practice = await get_practice(db, group.id)
    current = await store.current_version(db, group.id)
    context: dict[str, Any] = {"group": group, "practice": practice, "errors": {}}
    if request.method == "GET":
        return await render(request, "agreement_propose.html", {**context, "values": {
            "text": group.agreements, "reason": "", "base_version": current}})
    form = await request.form()
    errors: Errors = {}
    proposed = limit(errors, "text", _normal(text(form, "text")), gettext("the agreements"),
                     MAX_TEXT)
    reason = limit(errors, "reason", _normal(text(form, "reason")), gettext("the reason"),
                   MAX_REASON)
    if text(form, "base_version") != str(current):
        errors["text"] = gettext(
            "The agreements changed while you were writing. Compare your text with the"
            " agreements as they are now, then propose it again.")
    elif "text" not in errors and proposed == _normal(group.agreements):
        errors["text"] = gettext(
            "This is the text of the agreements as they are now. Change it to propose"
            " a change.")
    if errors:
        return await render(request, "agreement_propose.html", {
            **context, "errors": errors,
            "values": {**form_values(form), "base_version": current}}, status=400)
    proposal_id = await store.propose(db, group.id, account.id, current, proposed, reason,
                                      discussion_days=practice.discussion_days,
                                      now=datetime.now(UTC))
    return see_other(request, f"/groups/{group.slug}/agreements/proposals/{proposal_id}",
                     gettext("Your change is proposed. The other members are told of it."))


# What each action on a proposal says when it is done.
DONE = {
    "comment": N_("Your comment is added."),
    "object": N_("Your objection is recorded. The change is not adopted while it stands."),
    "withdraw_objection": N_("Your objection is withdrawn."),
    "withdraw": N_("Your proposal is withdrawn."),
    "adopt": N_("The change is adopted: these are the group's agreements now."),
    "decline": N_("The proposal is declined."),
}
NOT_DONE = N_("That was not done: the proposal is no longer open, or it was written"
              " against an older version of the agreements.")


async def proposal(request: Request) -> Response:
    group, account, membership = await _readable(request)
    db = request.state.db
    found = await store.get_proposal(db, group.id, request.path_params["id"])
    if found is None:
        raise HTTPException(404)
    errors: Errors = {}
    values: dict[str, Any] = {}
    if request.method == "POST":
        form = await request.form()
        action = text(form, "action")
        if action not in DONE:
            raise HTTPException(400, gettext("Unknown action."))
        done = await _act(request, action, form, group, found, account, membership, errors)
        if done is not None:
            url = f"/groups/{group.slug}/agreements/proposals/{found.id}"
            return see_other(request, url, gettext(DONE[action] if done else NOT_DONE))
        values = form_values(form)
    return await render(request, "agreement_proposal.html", {
        **await _proposal_context(request, group, account, membership, found),
        "errors": errors, "values": values}, status=400 if errors else 200)


async def _act(request: Request, action: str, form: FormData, group: Group,
               found: store.Proposal, account: Account, membership: Membership | None,
               errors: Errors) -> bool | None:
    """Do one action on the proposal: whether it was done, or None when the form has
    ``errors`` to show."""
    db = request.state.db
    if action in ("adopt", "decline"):
        if not can_manage(account, membership):
            raise HTTPException(403, gettext("Only this group's facilitators can do this."))
        if action == "decline":
            return await store.end_proposal(db, found.id, "declined")
        practice = await get_practice(db, group.id)
        if practice.agreement_decision is not AgreementDecision.FACILITATOR:
            raise HTTPException(403, gettext(
                "This group adopts changes to its agreements by consent."))
        return await store.adopt(db, found.id, "facilitator") is not None
    if not is_member(membership):
        raise HTTPException(404)
    if action == "comment":
        body = require(errors, "body", _normal(text(form, "body")), gettext("a comment"),
                       MAX_COMMENT)
        if errors:
            return None
        await store.add_comment(db, found.id, account.id, body)
        return True
    if action == "object":
        reason = limit(errors, "objection", _normal(text(form, "objection")),
                       gettext("the reason"), MAX_OBJECTION)
        if errors:
            return None
        return await store.object_to(db, found.id, account.id, reason)
    if action == "withdraw_objection":
        return await store.withdraw_objection(db, found.id, account.id)
    return await store.end_proposal(db, found.id, "withdrawn", proposer_id=account.id)


async def _proposal_context(request: Request, group: Group, account: Account,
                            membership: Membership | None,
                            found: store.Proposal) -> dict[str, Any]:
    db = request.state.db
    current = await store.current_version(db, group.id)
    return {
        "group": group, "proposal": found, "is_member": is_member(membership),
        "can_manage": can_manage(account, membership),
        "mine": found.account_id == account.id,
        "practice": await get_practice(db, group.id),
        "outdated": found.base_version != current,
        "discussion_over": found.closes_at <= stamp(datetime.now(UTC)),
        "changes": word_diff(await store.version_text(db, group.id, found.base_version),
                          found.text),
        "comments": await store.comments(db, found.id),
        "reasons": await store.objection_reasons(db, found.id),
        "own_objection": await store.own_objection(db, found.id, account.id),
    }


async def accept(request: Request) -> Response:
    """A member accepts the version of the agreements they were shown."""
    group, account, membership = await _readable(request)
    if not is_member(membership):
        raise HTTPException(404)
    form = await request.form()
    shown = text(form, "version")
    accepted = shown.isdigit() and await store.accept_version(
        request.state.db, group.id, account.id, int(shown))
    return see_other(request, f"/groups/{group.slug}", gettext(
        "Thank you: you accepted the group's agreements as they are now.") if accepted
        else "")
