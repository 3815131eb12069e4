"""The check-out pulse on a meeting's page: each member answers once, anonymously, and
facilitators see only the summary of whole batches of answers (node.storage.pulses says
why). None of it is in feeds, embeds or anything sent to peers: only this page shows it."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from node.db import Database
from node.domain import Account, Event, Group, Membership, Occurrence, Practice
from node.forms import Errors, form_values, limit, text
from node.i18n import N_, gettext
from node.storage import pulses as store
from node.storage.events import occurrences_of
from node.storage.practice import get_practice
from node.storage.pulses import K_ANONYMITY, SCALE, PulseSummary
from node.web import events
from node.web.auth import can_manage, is_member, require_account
from node.web.occurrences import occurrence_at
from node.web.templating import render, see_other

OPEN_DAYS = 7  # members may answer from a meeting's start until this long after its end
MAX_WORD = 40
SCALE_WORDS = {1: N_("Hard going"), 2: N_("A bit hard"), 3: N_("Mixed"), 4: N_("Good"),
               5: N_("Really good")}


@dataclass(frozen=True, slots=True)
class PulseView:
    """What the meeting's page shows of its pulse to one member or facilitator."""

    key: str  # the occurrence answered for
    can_answer: bool
    answered: bool
    for_facilitators: bool  # the summary part: facilitators, once the meeting has started
    summary: PulseSummary | None
    erase_on: datetime | None
    earlier: Occurrence | None  # a meeting just held that the member has not answered for


def closes(occurrence: Occurrence, practice: Practice) -> datetime:
    """The end of answering; never after the pulses are erased."""
    return occurrence.end + timedelta(days=min(OPEN_DAYS, practice.pulse_keep_days))


def is_open(event: Event, occurrence: Occurrence, practice: Practice, now: datetime) -> bool:
    return (not event.cancelled and not occurrence.cancelled
            and occurrence.start <= now < closes(occurrence, practice))


def parse_pulse(form: FormData) -> tuple[tuple[int, str] | None, Errors]:
    """(scale, word) from the form; the word is one short phrase, its spaces collapsed."""
    errors: Errors = {}
    scale = text(form, "scale")
    if scale not in {str(step) for step in SCALE}:
        errors["scale"] = gettext("Choose how it was for you, from 1 to 5.")
    word = limit(errors, "word", " ".join(text(form, "word").split()), gettext("the word"),
                 MAX_WORD)
    if errors:
        return None, errors
    return (int(scale), word), errors


async def _earlier_unanswered(db: Database, event: Event, practice: Practice,
                              account_id: int, now: datetime) -> Occurrence | None:
    """The latest meeting of the series still open for a pulse this member has not left."""
    since = now - timedelta(days=OPEN_DAYS + 1, minutes=event.duration_minutes)
    for occurrence in reversed(await occurrences_of(db, event, since, now)):
        if (is_open(event, occurrence, practice, now)
                and not await store.has_answered(db, event.id, occurrence.key, account_id)):
            return occurrence
    return None


async def meeting_context(request: Request, event: Event, group: Group,
                          account: Account | None, membership: Membership | None,
                          occurrence: Occurrence | None, practice: Practice) -> dict[str, Any]:
    member, manage = is_member(membership), can_manage(account, membership)
    if account is None or not (member or manage):
        return {}
    db = request.state.db
    now = datetime.now(UTC)
    started = (occurrence is not None and not occurrence.cancelled and not event.cancelled
               and occurrence.start <= now)
    if not started:
        earlier = (await _earlier_unanswered(db, event, practice, account.id, now)
                   if member else None)
        return {"pulse": PulseView("", False, False, False, None, None, earlier)}
    key = occurrence.key
    answered = member and await store.has_answered(db, event.id, key, account.id)
    summary, erase_on = None, None
    if manage:
        summary = await store.stored_summary(db, event.id, key)
        erase_on = (await store.erase_time(db, event.id, key)
                    or occurrence.end + timedelta(days=practice.pulse_keep_days))
    return {"pulse": PulseView(
        key=key, can_answer=member and not answered and is_open(event, occurrence, practice, now),
        answered=answered, for_facilitators=manage, summary=summary, erase_on=erase_on,
        earlier=None), **pulse_form_context()}


def pulse_form_context(values: dict[str, Any] | None = None,
                       errors: Errors | None = None) -> dict[str, Any]:
    return {"pulse_scale": SCALE_WORDS, "pulse_k": K_ANONYMITY, "pulse_values": values or {},
            "pulse_errors": errors or {}}


async def answer(request: Request) -> Response:
    """A member's one answer for a meeting that has been held."""
    account = await require_account(request)
    event, group, _, membership = await events.visible_event(request)
    if not is_member(membership):
        raise HTTPException(403, gettext("Only members of this group can leave a pulse."))
    db = request.state.db
    form = await request.form()
    occurrence = await occurrence_at(db, event, text(form, "on"))
    practice = await get_practice(db, group.id)
    if occurrence is None or not is_open(event, occurrence, practice, datetime.now(UTC)):
        raise HTTPException(400, gettext(
            "This meeting takes no pulse: it has not started yet, it was cancelled, or it"
            " ended more than a week ago."))
    answered, errors = parse_pulse(form)
    if answered is None:
        return await render(request, "pulse.html", {
            "event": event, "group": group, "occurrence": occurrence,
            **pulse_form_context(form_values(form), errors)}, status=400)
    scale, word = answered
    stored = await store.answer_pulse(
        db, event_id=event.id, occurrence=occurrence.key, group_id=group.id,
        account_id=account.id, scale=scale, word=word,
        erase_after=occurrence.end + timedelta(days=practice.pulse_keep_days))
    return see_other(request, events.event_url(event, occurrence.key), gettext(
        "Thank you. Your pulse is in, with no name on it.") if stored else gettext(
        "You have already left a pulse for this meeting, so it stays as it was. Thank you."))
