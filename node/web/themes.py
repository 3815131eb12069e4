"""Themes for meetings: members propose and support them on the meeting's page, and a
facilitator (or, when the group chooses so, the support itself) sets the theme.

Members see which proposal they support, never running totals: totals are shown once
the theme is set, and no one is ever shown who supported what.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from node.domain import (
    Account,
    Event,
    Group,
    Membership,
    Occurrence,
    Practice,
)
from node.forms import Errors, form_values, require, text
from node.i18n import N_, gettext
from node.storage import themes as store
from node.storage.practice import get_practice
from node.web.auth import can_manage, is_member, require_account
from node.web.occurrences import occurrence_at
from node.web.templating import see_other

NEXT_MEETINGS = 5  # whose themes the group's page shows

REFUSALS = {
    store.Refusal.CLOSED: N_("The theme of this meeting is set, so proposals are closed."),
    store.Refusal.DUPLICATE: N_("That theme is already proposed for this meeting. You can"
                                " support it instead."),
    store.Refusal.YOUR_LIMIT: N_("You have proposed %(max)s themes for this meeting, the most"
                                 " one member can. Withdraw one to propose another."),
    store.Refusal.MEETING_LIMIT: N_("This meeting already has %(max)s proposed themes, the"
                                    " most it can have. You can support one of them."),
}
LIMITS = {store.Refusal.YOUR_LIMIT: store.PER_MEMBER,
          store.Refusal.MEETING_LIMIT: store.PER_MEETING}


def gathering_open(practice: Practice, occurrence: Occurrence, theme: str | None,
                   now: datetime) -> bool:
    """Whether members may still propose and support themes for this meeting: until its
    theme is set or its group's lead time begins. Then the totals are shown: to choose
    by, for a facilitator, and all at once, so no one vote can be told by its timing."""
    if theme is not None or occurrence.cancelled:
        return False
    return now < occurrence.start - timedelta(hours=practice.theme_lead_hours)


def _members_see(account: Account | None, membership: Membership | None) -> bool:
    return is_member(membership) or can_manage(account, membership)


async def meeting_context(request: Request, event: Event, group: Group,
                          account: Account | None, membership: Membership | None,
                          occurrence: Occurrence | None, practice: Practice) -> dict[str, Any]:
    """The theme for whoever may see it; proposals and one's own support for members."""
    if occurrence is None:
        return {}
    members_see = _members_see(account, membership)
    if not (members_see or practice.themes_public):
        return {}
    db = request.state.db
    theme = await store.meeting_theme(db, event.id, occurrence.key)
    if not members_see:
        return {"theme": theme or "", "theme_members": False}
    is_open = gathering_open(practice, occurrence, theme, datetime.now(UTC))
    proposals = await store.proposals(db, event.id, occurrence.key,
                                      account.id if account else None, counted=not is_open)
    member = is_member(membership)
    return {
        "theme": theme,
        "theme_members": True,
        "theme_open": is_open,
        "theme_proposals": proposals,
        "theme_supported": (await store.supported_by(db, event.id, occurrence.key, account.id)
                            if member and account else None),
        "theme_may_propose": member and is_open and len(proposals) < store.PER_MEETING
        and sum(p.mine for p in proposals) < store.PER_MEMBER,
        "theme_limits": {"length": store.THEME_LENGTH, "member": store.PER_MEMBER},
    }


async def group_context(request: Request, group: Group, account: Account | None,
                        membership: Membership | None, practice: Practice) -> dict[str, Any]:
    """The themes of the next meetings (for members, or anyone when they are public), and
    for members how many themes are proposed for those still open."""
    members_see = _members_see(account, membership)
    if not (members_see or practice.themes_public):
        return {}
    found = await store.next_meetings(request.state.db, group.id, datetime.now(UTC),
                                      NEXT_MEETINGS)
    return {"themed_meetings": [m for m in found if m.theme or (
        members_see and m.theme is None and m.proposed)]}


# Actions -------------------------------------------------------------------------

def _back(event: Event, occurrence: Occurrence) -> str:
    return f"/events/{event.id}?on={occurrence.key}#theme"


async def _meeting(request: Request) -> tuple[Event, Group, Account, Membership | None,
                                              Occurrence, Any]:
    """The meeting the form names, for someone who may see it; 400 if there is none."""
    # Imported here: events imports this module (through practice).
    from node.web.events import visible_event

    account = await require_account(request)
    event, group, _, membership = await visible_event(request)
    form = await request.form()
    occurrence = await occurrence_at(request.state.db, event, text(form, "on"))
    if occurrence is None:
        raise HTTPException(400, gettext("There is no meeting at that time."))
    return event, group, account, membership, occurrence, form


async def _open_meeting(request: Request):
    """As ``_meeting``, for a member, while themes are proposed and supported."""
    event, group, account, membership, occurrence, form = await _meeting(request)
    if not is_member(membership):
        raise HTTPException(403, gettext(
            "Only members of this group can propose and support themes. Join the group"
            " first."))
    db = request.state.db
    practice = await get_practice(db, group.id)
    theme = await store.meeting_theme(db, event.id, occurrence.key)
    if not gathering_open(practice, occurrence, theme, datetime.now(UTC)):
        raise HTTPException(400, gettext(
            "Themes for this meeting can no longer be proposed or supported."))
    return event, group, account, membership, occurrence, form


def _proposal_id(form: Any) -> int:
    value = text(form, "proposal")
    if not value.isdigit():
        raise HTTPException(400, gettext("Choose one of the proposed themes."))
    return int(value)


async def _with_errors(request: Request, event: Event, group: Group, account: Account,
                       membership: Membership | None, occurrence: Occurrence, form: Any,
                       errors: Errors) -> Response:
    from node.web.events import _render_event  # imported here, as in _meeting

    return await _render_event(request, event, group, account, membership, occurrence,
                               errors=errors, values=form_values(form), status=400)


async def propose(request: Request) -> Response:
    event, group, account, membership, occurrence, form = await _open_meeting(request)
    errors: Errors = {}
    theme = require(errors, "theme", " ".join(text(form, "theme").split()), gettext("a theme"),
                    store.THEME_LENGTH)
    if not errors:
        refusal = await store.propose(request.state.db, event.id, occurrence.key, account.id,
                                      theme, signed=text(form, "signed") == "yes")
        if refusal is not None:
            errors["theme"] = gettext(REFUSALS[refusal], max=LIMITS.get(refusal, 0))
    if errors:
        return await _with_errors(request, event, group, account, membership, occurrence,
                                  form, errors)
    return see_other(request, _back(event, occurrence), gettext(
        "Your theme is proposed. Members can now support it."))


async def withdraw(request: Request) -> Response:
    event, _, account, _, occurrence, form = await _open_meeting(request)
    if not await store.withdraw(request.state.db, event.id, occurrence.key, account.id,
                                _proposal_id(form)):
        raise HTTPException(400, gettext("You can withdraw only a theme you proposed."))
    return see_other(request, _back(event, occurrence), gettext(
        "Your proposal is withdrawn, with any support it had."))


async def support(request: Request) -> Response:
    event, _, account, _, occurrence, form = await _open_meeting(request)
    db = request.state.db
    if text(form, "action") == "withdraw":
        await store.withdraw_support(db, event.id, occurrence.key, account.id)
        message = gettext("Your support is withdrawn.")
    else:
        if not await store.support(db, event.id, occurrence.key, account.id,
                                   _proposal_id(form)):
            raise HTTPException(400, gettext("Choose one of the proposed themes."))
        message = gettext("Your support is noted. You can move it to another theme until"
                          " the theme is set.")
    return see_other(request, _back(event, occurrence), message)


async def choose(request: Request) -> Response:
    """A facilitator sets the theme (a proposal, or their own words) or clears it."""
    event, group, account, membership, occurrence, form = await _meeting(request)
    if not can_manage(account, membership):
        raise HTTPException(403, gettext("Only this group's facilitators can do this."))
    db = request.state.db
    if text(form, "action") == "clear":
        practice = await get_practice(db, group.id)
        now = datetime.now(UTC)
        if not gathering_open(practice, occurrence, None, now):
            # Past the lead time support is closed (and, were it to choose, it would set a
            # theme again at once): the meeting is left with none.
            await store.set_theme(db, event.id, occurrence.key, store.NO_THEME)
            return see_other(request, _back(event, occurrence), gettext(
                "The theme is cleared: this meeting has no theme."))
        await store.clear_theme(db, event.id, occurrence.key)
        return see_other(request, _back(event, occurrence), gettext(
            "The theme is cleared. Members can propose and support themes again."))
    errors: Errors = {}
    if "proposal" in form:
        chosen = _proposal_id(form)
        found = [p.theme for p in await store.proposals(db, event.id, occurrence.key, None,
                                                         counted=False) if p.id == chosen]
        if not found:
            raise HTTPException(400, gettext("Choose one of the proposed themes."))
        theme = found[0]
    else:
        theme = require(errors, "own_theme", " ".join(text(form, "own_theme").split()),
                        gettext("the theme"), store.THEME_LENGTH)
    if errors:
        return await _with_errors(request, event, group, account, membership, occurrence,
                                  form, errors)
    await store.set_theme(db, event.id, occurrence.key, theme)
    return see_other(request, _back(event, occurrence), gettext(
        "The theme is set: “%(theme)s”. Proposals and support are closed.", theme=theme))
