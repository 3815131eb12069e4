"""Meeting pages: schedule, show and edit a series, RSVP, change one occurrence."""
from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from node.domain import (
    Account,
    Event,
    EventDraft,
    Format,
    Group,
    Membership,
    Occurrence,
    OccurrenceChange,
    RsvpStatus,
)
from node.forms import (
    REPEATS,
    event_form_values,
    form_values,
    parse_event_form,
    parse_move_form,
    text,
    timezone_names,
)
from node.i18n import format_day, gettext
from node.recurrence import is_series_slot
from node.storage import events as store
from node.storage.groups import get_group_by_id
from node.timezones import zone_menu
from node.web.auth import (
    can_manage,
    is_member,
    managed_group,
    require_account,
    visible_group,
)
from node.web.confirm import ask, confirmed
from node.web.federated import meeting_page
from node.web.occurrences import (
    occurrence_at,
    others_coming_up,
    requested_occurrence,
    slot_of,
)
from node.web.practice import meeting_context
from node.web.templating import render, see_other

DEFAULT_TIMEZONE = "Europe/London"


def form_choices() -> dict[str, Any]:
    return {"formats": list(Format), "timezones": zone_menu(DEFAULT_TIMEZONE),
            "repeats": REPEATS}


# Who may see and run a meeting -------------------------------------------

async def _event_and_group(request: Request) -> tuple[Event, Group]:
    db = request.state.db
    event = await store.get_event(db, request.path_params["id"])
    group = await get_group_by_id(db, event.group_id) if event else None
    if event is None or group is None:
        raise HTTPException(404)
    return event, group


async def visible_event(
    request: Request,
) -> tuple[Event, Group, Account | None, Membership | None]:
    """The meeting and its group; 404 whenever the viewer may not see the group."""
    event, group = await _event_and_group(request)
    group, account, membership = await visible_group(request, group.slug)
    return event, group, account, membership


async def managed_event(request: Request) -> tuple[Event, Group, Account, Membership | None]:
    event, group = await _event_and_group(request)
    group, account, membership = await managed_group(request, group.slug)
    return event, group, account, membership


def event_url(event: Event, key: str | None = None) -> str:
    return f"/events/{event.id}" + (f"?on={key}" if key else "")


# Pages ----------------------------------------------------------------------

async def create(request: Request) -> Response:
    group, _, _ = await managed_group(request, request.path_params["slug"])
    context = {"group": group, "event": None, "errors": {}, "online_url_hidden": False,
               **form_choices()}
    if request.method == "GET":
        timezone = request.query_params.get("timezone", "")
        defaults = {"timezone": timezone if timezone in timezone_names() else DEFAULT_TIMEZONE,
                    "repeat": "none", "format": group.format, "duration": "90",
                    "address": group.address}
        return await render(request, "event_form.html", {**context, "values": defaults})
    form = await request.form()
    draft, errors = parse_event_form(form)
    if draft is None:
        return await render(request, "event_form.html",
                            {**context, "values": form_values(form), "errors": errors},
                            status=400)
    event_id = await store.create_event(request.state.db, group.id, draft)
    return see_other(request, f"/events/{event_id}", gettext(
        "The meeting is scheduled. Members can now say they are coming."))


async def edit(request: Request) -> Response:
    event, group, _, membership = await managed_event(request)
    # An admin stepping in without being a member is not shown the online link.
    hidden = not is_member(membership) and bool(event.online_url)
    context = {"group": group, "event": event, "errors": {}, "online_url_hidden": hidden,
               **form_choices()}
    if request.method == "GET":
        draft = EventDraft(**{f.name: getattr(event, f.name) for f in fields(EventDraft)})
        return await render(request, "event_form.html",
                            {**context, "values": event_form_values(draft, not hidden)})
    form = await request.form()
    draft, errors = parse_event_form(form, kept_online_url=event.online_url if hidden else "")
    if draft is None:
        return await render(request, "event_form.html",
                            {**context, "values": form_values(form), "errors": errors},
                            status=400)
    await store.update_event(request.state.db, event.id, draft)
    return see_other(request, event_url(event), gettext("The changes are saved."))


async def _render_event(
    request: Request,
    event: Event,
    group: Group,
    account: Account | None,
    membership: Membership | None,
    occurrence: Occurrence | None,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    db = request.state.db
    now = datetime.now(UTC)
    manage = can_manage(account, membership)
    key = occurrence.key if occurrence else ""
    others = await others_coming_up(db, event, key, now, with_cancelled=False)
    return await render(request, "event.html", {
        "event": event,
        "group": group,
        "occurrence": occurrence,
        "is_past": occurrence is not None and occurrence.end <= now,
        "is_member": is_member(membership),
        "can_manage": manage,
        # The one place the online link is rendered: for the group's members.
        "online_url": event.online_url if is_member(membership) else "",
        "counts": await store.rsvp_counts(db, event.id, key) if occurrence else {},
        "my_rsvp": (await store.rsvp_status(db, event.id, key, account.id)
                    if occurrence and account else None),
        "rsvps": await store.rsvp_list(db, event.id, key) if occurrence and manage else [],
        "others": others,
        "errors": errors or {},
        "values": values or {},
        **await meeting_context(request, event, group, account, membership, occurrence),
    }, status=status)


async def show(request: Request) -> Response:
    event, group = await _event_and_group(request)
    if not group.is_local:  # a peer's meeting: answered on its own node
        return await meeting_page(request, event.id)
    group, account, membership = await visible_group(request, group.slug)
    occurrence = await requested_occurrence(request, event)
    return await _render_event(request, event, group, account, membership, occurrence)


async def rsvp(request: Request) -> Response:
    account = await require_account(request)
    event, _, _, membership = await visible_event(request)
    if not is_member(membership):
        raise HTTPException(
            403, gettext("Only members of this group can answer. Join the group first."))
    form = await request.form()
    answer = text(form, "answer")
    if answer not in ("yes", "no"):
        raise HTTPException(400, gettext("Answer yes or no."))
    db = request.state.db
    occurrence = await occurrence_at(db, event, text(form, "on"))
    if occurrence is None or occurrence.cancelled or event.cancelled:
        raise HTTPException(400, gettext("There is no meeting at that time to answer for."))
    if answer == "yes":
        if occurrence.end <= datetime.now(UTC):
            raise HTTPException(400, gettext("This meeting has already happened."))
        going = await store.rsvp_yes(db, event.id, occurrence.key, account.id)
        message = (gettext("You are going on %(day)s.", day=format_day(occurrence.start))
                   if going is RsvpStatus.GOING else gettext(
                       "The meeting on %(day)s is full: you are on the waiting list, and get"
                       " a place when one opens up.", day=format_day(occurrence.start)))
    else:
        await store.rsvp_no(db, event.id, occurrence.key, account.id)
        message = gettext("You are not going on %(day)s.", day=format_day(occurrence.start))
    return see_other(request, event_url(event, occurrence.key), message)


OCCURRENCE_ACTIONS = ("cancel", "move", "restore")


async def change_occurrence(request: Request) -> Response:
    """Cancel, move or restore one slot of the series; the others stay as they are."""
    event, group, account, membership = await managed_event(request)
    form = await request.form()
    key, action = text(form, "on"), text(form, "action")
    slot = slot_of(key)
    if slot is None or not is_series_slot(event.starts_at, event.rrule, slot):
        raise HTTPException(400, gettext("That is not a meeting of this series."))
    if action not in OCCURRENCE_ACTIONS:
        raise HTTPException(400, gettext("Choose to cancel, move or restore the meeting."))
    db = request.state.db
    if action == "cancel":
        await store.change_occurrence(db, event.id, OccurrenceChange(slot, cancelled=True))
        message = gettext("This meeting is cancelled. The rest of the series is unchanged.")
    elif action == "restore":
        await store.restore_occurrence(db, event.id, slot)
        message = gettext("This meeting is back at its usual time.")
    else:
        change, errors = parse_move_form(form, slot, event.timezone)
        if change is None:
            occurrence = await occurrence_at(db, event, key)
            return await _render_event(request, event, group, account, membership, occurrence,
                                       errors=errors, values=form_values(form), status=400)
        await store.change_occurrence(db, event.id, change)
        message = gettext("This meeting is moved. Its page shows the new time.")
    return see_other(request, event_url(event, key), message)


async def cancel(request: Request) -> Response:
    """Cancel or reinstate the whole series."""
    event, _, _, _ = await managed_event(request)
    form = await request.form()
    action = text(form, "action")
    if action not in ("cancel", "reinstate"):
        raise HTTPException(400, gettext("Choose to cancel or reinstate the series."))
    if action == "cancel" and not confirmed(form):
        return await ask(request, form, back=event_url(event), question=gettext(
            "Cancel every meeting of “%(title)s”? Everyone who looks at them sees that"
            " they are cancelled.", title=event.title),
            confirm=gettext("Yes, cancel the series"))
    await store.set_cancelled(request.state.db, event.id, action == "cancel")
    return see_other(request, event_url(event), gettext("Every meeting of the series is cancelled.")
                     if action == "cancel" else gettext("The series is back on."))
