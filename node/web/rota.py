"""The rota of a group that shares facilitation, as its members see and change it: who
holds its next meetings (group page), and on a meeting's page volunteering to hold or
co-hold it, stepping back, asking for a swap and taking a turn someone would swap.

Only the group's active members see any of it, and only while the group runs a rota:
holders' names are member data, never shown to visitors nor sent to peers.
(``node.web.events`` is imported as a module: it imports this one, through practice.)
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from node.domain import (
    Account,
    Event,
    Facilitation,
    Group,
    Membership,
    Occurrence,
    Practice,
)
from node.forms import text
from node.i18n import format_day, gettext
from node.storage import rota as store
from node.storage.events import get_event
from node.storage.practice import get_practice
from node.storage.rota import Holding, Turn, TurnKey
from node.web import events
from node.web.auth import can_manage, is_member, require_account
from node.web.confirm import ask, confirmed
from node.web.occurrences import occurrence_at
from node.web.templating import see_other

TURNS_OFFERED = 20  # of a member's own, at most, to give in exchange for one they take


def _runs_rota(practice: Practice, membership: Membership | None) -> bool:
    return practice.facilitation is Facilitation.ROTATING and is_member(membership)


def _is_open(event: Event, occurrence: Occurrence | None, now: datetime) -> bool:
    """A meeting whose turns can still change: to come, and not cancelled."""
    return (occurrence is not None and not occurrence.cancelled and not event.cancelled
            and occurrence.start > now)


# What the pages show --------------------------------------------------------------------

async def group_context(request: Request, group: Group, account: Account | None,
                        membership: Membership | None, practice: Practice) -> dict[str, Any]:
    """Who holds the group's next meetings, for its members."""
    if not _runs_rota(practice, membership):
        return {}
    return {"rota_meetings": await store.upcoming_rota(request.state.db, group.id,
                                                       datetime.now(UTC))}


async def meeting_context(request: Request, event: Event, group: Group,
                          account: Account | None, membership: Membership | None,
                          occurrence: Occurrence | None, practice: Practice) -> dict[str, Any]:
    """Who holds this meeting, and what the member may do about it."""
    if not _runs_rota(practice, membership) or occurrence is None or account is None:
        return {}
    db = request.state.db
    now = datetime.now(UTC)
    held = await store.meeting_rota(db, event.id, occurrence.key)
    holder, co_holder = (held.holder, held.co_holder) if held else (None, None)
    mine = held.turn_of(account.id) if held else None
    swappable = [t for t in (holder, co_holder) if t and t.swap_wanted and not mine]
    to_give = []  # the member's own turns, one of which they may give for one they take
    if swappable:
        own = await store.upcoming_rota(db, group.id, now, limit=TURNS_OFFERED,
                                        held_by=account.id)
        to_give = [(m, m.turn_of(account.id)) for m in own
                   if (m.event_id, m.occurrence) != (event.id, occurrence.key)]
    return {"rota": {
        "holder": holder, "co_holder": co_holder, "mine": mine,
        "open": _is_open(event, occurrence, now), "swappable": swappable,
        "my_turns": to_give,
    }}


# Changing turns -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Asked:
    """One rota form, as posted on a meeting's page by a member of its group."""

    event: Event
    group: Group
    account: Account
    membership: Membership
    occurrence: Occurrence
    form: FormData
    now: datetime

    @property
    def day(self) -> str:
        return format_day(self.occurrence.start)


def _back(request: Request, asked: _Asked, message: str) -> Response:
    return see_other(request, events.event_url(asked.event, asked.occurrence.key) + "#rota",
                     message)


def _changed_meanwhile(request: Request, asked: _Asked) -> Response:
    return _back(request, asked, gettext(
        "The turns of this meeting changed while you looked: here is who holds it now."))


def _role(asked: _Asked) -> Holding:
    try:
        return Holding(text(asked.form, "role"))
    except ValueError:
        raise HTTPException(400, gettext("Choose which turn: holding or co-holding.")) from None


async def _turn(request: Request, asked: _Asked, role: Holding) -> Turn | None:
    """The turn in ``role`` of the meeting asked about, as it is now."""
    held = await store.meeting_rota(request.state.db, asked.event.id, asked.occurrence.key)
    if held is None:
        return None
    return held.holder if role is Holding.HOLDER else held.co_holder


async def _volunteer(request: Request, asked: _Asked, role: Holding) -> Response:
    if not await store.volunteer(request.state.db, asked.group.id, asked.event.id,
                                 asked.occurrence.key, asked.account.id, role, asked.now):
        return _changed_meanwhile(request, asked)
    return _back(request, asked, gettext(
        "Thank you: you hold the meeting on %(day)s.", day=asked.day)
        if role is Holding.HOLDER else gettext(
        "Thank you: you co-hold the meeting on %(day)s.", day=asked.day))


async def _hold(request: Request, asked: _Asked) -> Response:
    return await _volunteer(request, asked, Holding.HOLDER)


async def _co_hold(request: Request, asked: _Asked) -> Response:
    return await _volunteer(request, asked, Holding.CO_HOLDER)


async def _step_back(request: Request, asked: _Asked) -> Response:
    if await store.step_back(request.state.db, asked.group.id, asked.event.id,
                             asked.occurrence.key, asked.account.id, asked.now) is None:
        return _changed_meanwhile(request, asked)
    return _back(request, asked, gettext(
        "You stepped back from the meeting on %(day)s. Someone else can hold it now.",
        day=asked.day))


async def _want_swap(request: Request, asked: _Asked, wanted: bool) -> Response:
    if not await store.want_swap(request.state.db, asked.group.id, asked.event.id,
                                 asked.occurrence.key, asked.account.id, wanted, asked.now):
        return _changed_meanwhile(request, asked)
    return _back(request, asked, gettext(
        "The group's members can see that you would like to swap this turn. It stays yours"
        " until someone takes it.") if wanted else gettext(
        "You keep your turn: your request to swap it is withdrawn."))


async def _ask_swap(request: Request, asked: _Asked) -> Response:
    return await _want_swap(request, asked, True)


async def _keep(request: Request, asked: _Asked) -> Response:
    return await _want_swap(request, asked, False)


def _given(value: str) -> TurnKey | None:
    """A turn of the member's own as the exchange select names it; None for none."""
    event_id, _, rest = value.partition("|")
    occurrence, _, role = rest.partition("|")
    try:
        return TurnKey(int(event_id), occurrence, Holding(role))
    except ValueError:
        return None


async def _take(request: Request, asked: _Asked) -> Response:
    db = request.state.db
    role = _role(asked)
    turn = await _turn(request, asked, role)
    given = _given(text(asked.form, "give"))
    if text(asked.form, "give") and given is None:
        raise HTTPException(400, gettext("Choose one of your turns, or to just take this one."))
    if turn is None or not await store.take_turn(
            db, asked.group.id, TurnKey(asked.event.id, asked.occurrence.key, role),
            asked.account.id, given, asked.now):
        return _changed_meanwhile(request, asked)
    if given is None:
        return _back(request, asked, gettext(
            "The turn on %(day)s is yours now, and %(name)s is told. Thank you!",
            day=asked.day, name=turn.name))
    series = await get_event(db, given.event_id)
    other = await occurrence_at(db, series, given.occurrence) if series else None
    return _back(request, asked, gettext(
        "The turns are swapped: the one on %(day)s is yours now, and %(name)s has yours on"
        " %(other)s. They are told.", day=asked.day, name=turn.name,
        other=format_day(other.start) if other else given.occurrence))


async def _remove(request: Request, asked: _Asked) -> Response:
    if not can_manage(asked.account, asked.membership):
        raise HTTPException(403, gettext("Only this group's facilitators can do this."))
    role = _role(asked)
    turn = await _turn(request, asked, role)
    if turn is None:
        return _changed_meanwhile(request, asked)
    if not confirmed(asked.form):
        return await ask(
            request, asked.form,
            back=events.event_url(asked.event, asked.occurrence.key) + "#rota",
            question=gettext("Take %(name)s off holding the meeting on %(day)s? They are told.",
                             name=turn.name, day=asked.day) if role is Holding.HOLDER
            else gettext("Take %(name)s off co-holding the meeting on %(day)s? They are told.",
                         name=turn.name, day=asked.day),
            confirm=gettext("Yes, take them off"))
    if not await store.remove_turn(request.state.db, asked.group.id, asked.event.id,
                                   asked.occurrence.key, role, asked.now):
        return _changed_meanwhile(request, asked)
    return _back(request, asked, gettext(
        "%(name)s no longer has a turn at the meeting on %(day)s, and is told.",
        name=turn.name, day=asked.day))


ACTIONS: dict[str, Callable[[Request, _Asked], Awaitable[Response]]] = {
    "hold": _hold,
    "co_hold": _co_hold,
    "step_back": _step_back,
    "ask_swap": _ask_swap,
    "keep": _keep,
    "take": _take,
    "remove": _remove,
}


async def change(request: Request) -> Response:
    """POST /events/{id}/rota: one of ``ACTIONS`` on one meeting of the series."""
    account = await require_account(request)
    event, group, _, membership = await events.visible_event(request)
    db = request.state.db
    if (await get_practice(db, group.id)).facilitation is not Facilitation.ROTATING:
        raise HTTPException(403, gettext(
            "This group does not run a rota: its facilitators hold its meetings."))
    if not is_member(membership):
        raise HTTPException(403, gettext(
            "Only members of this group can hold its meetings. Join the group first."))
    assert membership is not None
    form = await request.form()
    action = ACTIONS.get(text(form, "action"))
    if action is None:
        raise HTTPException(400, gettext("Choose what to do with this turn."))
    now = datetime.now(UTC)
    occurrence = await occurrence_at(db, event, text(form, "on"))
    if occurrence is None or not _is_open(event, occurrence, now):
        raise HTTPException(400, gettext(
            "There is no meeting still to come at that time: its turns cannot change."))
    return await action(request, _Asked(event, group, account, membership, occurrence, form,
                                        now))
