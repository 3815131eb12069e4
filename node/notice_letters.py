"""What each kind of notice says: its template in ``templates/mail/`` and the context it is
written with, read as things are now (a group's name, a meeting's time), in the current
language (``node.notifier`` speaks its reader's). A writer returns None when the notice
has nothing left to say: the request was answered, the meeting or report is gone.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

from node.db import Database, parse_stamp
from node.domain import (
    Account,
    AccountStatus,
    Event,
    Format,
    Group,
    MembershipStatus,
    ReportState,
    RsvpStatus,
    label,
)
from node.feeds import PRODID, plain
from node.i18n import format_day, format_time, format_when, gettext, zone_abbreviation
from node.mail import Attachment
from node.recurrence import localize
from node.storage import agreements, rota
from node.storage.accounts import get_account
from node.storage.events import get_event, parse_local, rsvp_status
from node.storage.groups import get_group_by_id, get_membership
from node.storage.moderation import get_report
from node.storage.notices import Notice, occurrence_times


@dataclass(frozen=True, slots=True)
class Letter:
    template: str  # templates/mail/{template}.txt
    context: dict[str, Any]
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True, slots=True)
class _Scene:
    """Who a letter is for, and where the node is."""

    db: Database
    url: str  # the node's public URL
    reader: Account


async def write_letter(db: Database, public_url: str, reader: Account,
                       notice: Notice) -> Letter | None:
    """The letter ``notice`` makes for ``reader``; None when there is nothing to say.

    A kind with no writer is a mistake: it raises, and the notice is kept.
    """
    return await WRITERS[notice.kind](_Scene(db, public_url, reader), notice)


# Groups ---------------------------------------------------------------------------------

async def _group(scene: _Scene, data: dict[str, Any]) -> Group | None:
    group_id = data.get("group_id")
    return await get_group_by_id(scene.db, group_id) if isinstance(group_id, int) else None


async def _about_group(scene: _Scene, notice: Notice) -> Letter | None:
    """welcome, join_approved, join_declined, and the review of a public group."""
    group = await _group(scene, notice.data)
    name = group.name if group else notice.data.get("group_name")
    if not name:
        return None
    return Letter(notice.kind, {
        "group": name,
        "group_url": f"{scene.url}/groups/{group.slug}" if group else scene.url,
        "agreements": group.agreements.strip() if group else "",
        "reason": str(notice.data.get("reason") or "").strip(),
    })


async def _join_request(scene: _Scene, notice: Notice) -> Letter | None:
    group = await _group(scene, notice.data)
    member_id = notice.data.get("member_id")
    member = await get_account(scene.db, member_id) if isinstance(member_id, int) else None
    if group is None or member is None:
        return None
    membership = await get_membership(scene.db, group.id, member.id)
    if membership is None or membership.status is not MembershipStatus.PENDING:
        return None  # answered, or withdrawn, before this was written
    return Letter("join_request", {
        "group": group.name, "member": member.display_name,
        "members_url": f"{scene.url}/groups/{group.slug}/members"})


# Agreements -----------------------------------------------------------------------------

async def _member_of(scene: _Scene, data: dict[str, Any]) -> Group | None:
    """The group, while the reader is one of its active members."""
    group = await _group(scene, data)
    membership = await get_membership(scene.db, group.id, scene.reader.id) if group else None
    return group if membership and membership.is_active else None


async def _agreement_proposed(scene: _Scene, notice: Notice) -> Letter | None:
    group = await _member_of(scene, notice.data)
    proposal_id = notice.data.get("proposal_id")
    proposal = (await agreements.get_proposal(scene.db, group.id, proposal_id)
                if group and isinstance(proposal_id, int) else None)
    if group is None or proposal is None or proposal.state != "open":
        return None
    return Letter("agreement_proposed", {
        "group": group.name, "proposer": proposal.proposer,
        "closes": format_when(parse_stamp(proposal.closes_at), "UTC") + " UTC",
        "proposal_url": f"{scene.url}/groups/{group.slug}/agreements/proposals/{proposal.id}"})


async def _agreements_changed(scene: _Scene, notice: Notice) -> Letter | None:
    group = await _member_of(scene, notice.data)
    version = notice.data.get("version")
    if group is None or not group.agreements or not isinstance(version, int) or (
            await agreements.accepted_version(scene.db, group.id, scene.reader.id) >= version):
        return None  # nothing to read, or accepted already
    return Letter("agreements_changed", {
        "group": group.name, "agreements": group.agreements.strip(),
        "group_url": f"{scene.url}/groups/{group.slug}"})


# Meetings -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Meeting:
    event: Event
    group: Group
    key: str  # the occurrence's slot
    start: datetime  # as it is now, in the meeting's zone
    end: datetime
    cancelled: bool
    answer: RsvpStatus | None  # the reader's


async def _meeting(scene: _Scene, data: dict[str, Any]) -> _Meeting | None:
    event_id, key = data.get("event_id"), data.get("occurrence")
    if not isinstance(event_id, int) or not isinstance(key, str):
        return None
    event = await get_event(scene.db, event_id)
    group = await get_group_by_id(scene.db, event.group_id) if event else None
    if event is None or group is None:
        return None
    times = await occurrence_times(scene.db, event_id, key)
    if times is None:  # no longer expanded: a series cancelled, or moved off that slot
        start = localize(parse_local(key), event.tz)
        span = (start, start + timedelta(minutes=event.duration_minutes), True)
    else:
        span = (parse_stamp(times[0]), parse_stamp(times[1]), times[2])
    return _Meeting(event, group, key, span[0].astimezone(event.tz),
                    span[1].astimezone(event.tz), span[2] or event.cancelled,
                    await rsvp_status(scene.db, event_id, key, scene.reader.id))


def _when(start: datetime, end: datetime | None, tz: str) -> str:
    """'Tue 3 Mar 2026, 19:00–20:30 GMT (Europe/London)': in the meeting's own zone."""
    local = start.astimezone(ZoneInfo(tz))
    shown = format_when(local)
    if end is not None:
        shown += "–" + format_time(end.astimezone(ZoneInfo(tz)))
    return f"{shown} {zone_abbreviation(local, tz)} ({tz})"


def _address(event: Event) -> str:
    return ", ".join(part for part in (plain(event.place), plain(event.address)) if part)


def _place(event: Event) -> str:
    where = _address(event)
    if event.format is Format.ONLINE:
        return gettext("Online")
    if event.format is Format.HYBRID:
        return gettext("%(place)s, or online", place=where) if where else gettext("Online")
    return where


async def _online_url(scene: _Scene, meeting: _Meeting) -> str:
    """The meeting's online link, for a reader who is a member of its group now."""
    if not meeting.event.online_url:
        return ""
    membership = await get_membership(scene.db, meeting.group.id, scene.reader.id)
    return meeting.event.online_url if membership and membership.is_active else ""


def _page(scene: _Scene, meeting: _Meeting, one: bool = True) -> str:
    page = f"{scene.url}/events/{meeting.event.id}"
    return f"{page}?on={quote(meeting.key)}" if one else page


async def _meeting_context(scene: _Scene, meeting: _Meeting) -> dict[str, Any]:
    return {
        "title": meeting.event.title, "group": meeting.group.name,
        "when": _when(meeting.start, meeting.end, meeting.event.timezone),
        "day": format_day(meeting.start), "place": _place(meeting.event),
        "online_url": await _online_url(scene, meeting), "page_url": _page(scene, meeting),
    }


def occurrence_calendar(scene: _Scene, meeting: _Meeting, online_url: str) -> Attachment:
    """One occurrence as an iCalendar file, with its online link for a member."""
    from icalendar import Calendar
    from icalendar import Event as VEvent

    event = meeting.event
    host = urlsplit(scene.url).hostname or "localhost"
    description = [plain(meeting.group.name), plain(event.description), online_url,
                   _page(scene, meeting)]
    component = VEvent.new(
        uid=f"event-{event.id}-{meeting.key}@{host}",
        summary=plain(event.title),
        description="\n\n".join(line for line in description if line),
        location=_address(event) or online_url or None,
        url=_page(scene, meeting),
        start=meeting.start,
        end=meeting.end,
        stamp=datetime.now(UTC),
        status="CONFIRMED",
    )
    calendar = Calendar.new(prodid=PRODID, method="PUBLISH")
    calendar.add_component(component)
    calendar.add_missing_timezones(first_date=meeting.start.date() - timedelta(days=1))
    return Attachment("meeting.ics", "text/calendar", calendar.to_ical())


async def _rsvp_confirmed(scene: _Scene, notice: Notice) -> Letter | None:
    meeting = await _meeting(scene, notice.data)
    if meeting is None or meeting.answer is None or meeting.cancelled:
        return None
    context = await _meeting_context(scene, meeting)
    going = meeting.answer is RsvpStatus.GOING
    attachments = (occurrence_calendar(scene, meeting, context["online_url"]),) if going else ()
    return Letter("rsvp_confirmed", {**context, "going": going}, attachments)


async def _waitlist_promoted(scene: _Scene, notice: Notice) -> Letter | None:
    meeting = await _meeting(scene, notice.data)
    if meeting is None or meeting.answer is not RsvpStatus.GOING or meeting.cancelled:
        return None
    context = await _meeting_context(scene, meeting)
    return Letter("waitlist_promoted", context,
                  (occurrence_calendar(scene, meeting, context["online_url"]),))


async def _meeting_reminder(scene: _Scene, notice: Notice) -> Letter | None:
    meeting = await _meeting(scene, notice.data)
    if meeting is None or meeting.answer is not RsvpStatus.GOING or meeting.cancelled:
        return None
    return Letter("meeting_reminder", await _meeting_context(scene, meeting))


async def _meeting_changed(scene: _Scene, notice: Notice) -> Letter | None:
    meeting = await _meeting(scene, notice.data)
    if meeting is None or meeting.answer is None:
        return None  # they said no since
    change = notice.data.get("change")
    tz = meeting.event.timezone
    minutes = timedelta(minutes=meeting.event.duration_minutes)

    def at(value: object) -> str:
        if not isinstance(value, str):
            return ""
        start = parse_stamp(value)
        return _when(start, start + minutes, tz)

    context = await _meeting_context(scene, meeting)
    series = change in ("edited", "series_cancelled")
    return Letter("meeting_changed", {
        **context, "change": change, "was": at(notice.data.get("was")),
        "starts": at(notice.data.get("starts")),
        "page_url": _page(scene, meeting, one=not series)})


# The rota of a group that shares facilitation -------------------------------------------

async def _holding_reminder(scene: _Scene, notice: Notice) -> Letter | None:
    meeting = await _meeting(scene, notice.data)
    if meeting is None or meeting.cancelled:
        return None
    role = await rota.holding(scene.db, meeting.event.id, meeting.key, scene.reader.id)
    if role is None:
        return None  # they stepped back, or swapped the turn, since
    return Letter("holding_reminder", {**await _meeting_context(scene, meeting),
                                       "co_holding": role is rota.Holding.CO_HOLDER})


async def _turn_changed(scene: _Scene, notice: Notice) -> Letter | None:
    """A turn taken, or swapped for the taker's, or a facilitator took the reader off it."""
    meeting = await _meeting(scene, notice.data)
    if meeting is None:
        return None
    by_id, given = notice.data.get("by"), notice.data.get("given")
    by = await get_account(scene.db, by_id) if isinstance(by_id, int) else None
    instead = None
    if isinstance(given, list) and len(given) == 3:
        instead = await _meeting(scene, {"event_id": given[0], "occurrence": given[1]})
    return Letter("turn_changed", {
        **await _meeting_context(scene, meeting),
        "change": notice.data.get("change"), "by": by.display_name if by else "",
        "co_holding": notice.data.get("role") == rota.Holding.CO_HOLDER,
        "given_title": instead.event.title if instead else "",
        "given_when": _when(instead.start, instead.end, instead.event.timezone)
        if instead else "",
        "given_url": _page(scene, instead) if instead else "",
        "given_co_holding": instead is not None and given[2] == rota.Holding.CO_HOLDER})


# Moderation -----------------------------------------------------------------------------

async def _report(scene: _Scene, notice: Notice) -> Letter | None:
    report_id = notice.data.get("report_id")
    report = (await get_report(scene.db, report_id, facilitator=None)
              if isinstance(report_id, int) else None)
    if report is None or report.state is not ReportState.OPEN:
        return None
    return Letter("report", {
        "target": report.target_name, "reason": gettext(label(report.reason)),
        "peer": report.peer_host or "", "reports_url": f"{scene.url}/admin/reports"})


async def _account_review(scene: _Scene, notice: Notice) -> Letter | None:
    applicant_id = notice.data.get("applicant_id")
    applicant = (await get_account(scene.db, applicant_id)
                 if isinstance(applicant_id, int) else None)
    if applicant_id is not None and (applicant is None
                                     or applicant.status is not AccountStatus.PENDING):
        return None  # answered, or gone, before this was written
    return Letter("account_review", {
        "applicant": applicant.display_name if applicant else "",
        "reason": str(notice.data.get("reason") or "").strip(),
        "accounts_url": f"{scene.url}/admin/accounts"})


WRITERS: dict[str, Callable[[_Scene, Notice], Awaitable[Letter | None]]] = {
    "welcome": _about_group,
    "join_approved": _about_group,
    "join_declined": _about_group,
    "join_request": _join_request,
    "agreement_proposed": _agreement_proposed,
    "agreements_changed": _agreements_changed,
    "rsvp_confirmed": _rsvp_confirmed,
    "waitlist_promoted": _waitlist_promoted,
    "meeting_changed": _meeting_changed,
    "meeting_reminder": _meeting_reminder,
    "holding_reminder": _holding_reminder,
    "turn_changed": _turn_changed,
    "report": _report,
    "account_review": _account_review,
    "group_review": _about_group,
    "group_approved": _about_group,
    "group_refused": _about_group,
}
