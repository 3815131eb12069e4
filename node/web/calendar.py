"""/events: the node's meetings as a month and as an agenda, with the directory's filters."""
from __future__ import annotations

import calendar as months
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from node.db import parse_stamp
from node.domain import Cost, Format
from node.storage.calendar import meetings_by_day
from node.storage.events import UpcomingMeeting
from node.storage.groups import directory_choices
from node.web.auth import current_account
from node.web.directory import directory_query
from node.web.subscriptions import filter_params, subscriptions
from node.web.templating import render

MONTH = re.compile(r"^([0-9]{4})-(0[1-9]|1[0-2])$")
DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
AGENDA_DAYS = 7
MONTH_PER_DAY = 4  # a busy day links to its agenda for the rest
AGENDA_PER_DAY = 25  # a busier day asks for narrower filters


@dataclass(frozen=True, slots=True)
class Entry:
    """One occurrence as the calendar shows it: in its own zone, at its own address."""

    meeting: UpcomingMeeting
    start: datetime
    end: datetime
    href: str


def occurrence_href(meeting: UpcomingMeeting) -> str:
    return f"/events/{meeting.event.id}?on={meeting.original_start}"


def _entry(meeting: UpcomingMeeting) -> Entry:
    tz = meeting.event.tz
    return Entry(meeting, parse_stamp(meeting.starts_utc).astimezone(tz),
                 parse_stamp(meeting.ends_utc).astimezone(tz), occurrence_href(meeting))


def _month(text: str, today: date) -> date:
    found = MONTH.match(text)
    return date(int(found[1]), int(found[2]), 1) if found else today.replace(day=1)


def _add_months(first: date, n: int) -> date:
    index = first.year * 12 + first.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


async def calendar_page(request: Request) -> Response:
    db = request.state.db
    query, errors = directory_query(request)
    params = request.query_params
    today = datetime.now(UTC).date()
    agenda = params.get("view") == "agenda"
    viewer = await current_account(request)
    base = filter_params(request)
    context: dict[str, object] = {
        "query": query, "errors": errors, "choices": await directory_choices(db),
        "formats": list(Format), "costs": list(Cost), "today": today,
        "subscribe": subscriptions(request), "agenda": agenda,
        "month_href": "/events?" + urlencode(base),
        "agenda_href": "/events?" + urlencode([*base, ("view", "agenda")]),
    }
    if agenda:
        start_text = params.get("from", "")
        first = date.fromisoformat(start_text) if DATE.match(start_text) and \
            not errors.get("from") else today
        last = first + timedelta(days=AGENDA_DAYS - 1)
        found = await meetings_by_day(db, query, viewer, first, last, AGENDA_PER_DAY)

        def page(day: date) -> str:
            return "/events?" + urlencode([*base, ("view", "agenda"), ("from", day.isoformat())])

        context.update(
            first=first, last=last, more=found.more,
            days=[(day, [_entry(m) for m in found.days[day]]) for day in sorted(found.days)],
            previous_href=page(first - timedelta(days=AGENDA_DAYS)),
            next_href=page(last + timedelta(days=1)),
        )
    else:
        first = _month(params.get("month", ""), today)
        last = _add_months(first, 1) - timedelta(days=1)
        found = await meetings_by_day(db, query, viewer, first, last, MONTH_PER_DAY)

        def month_page(month: date) -> str:
            return "/events?" + urlencode([*base, ("month", f"{month:%Y-%m}")])

        context.update(
            first=first, more=found.more,
            weeks=months.Calendar().monthdatescalendar(first.year, first.month),
            days={day: [_entry(m) for m in found.days[day]] for day in found.days},
            weekdays=[date(2024, 1, n) for n in range(1, 8)],  # a Monday to a Sunday
            previous_href=month_page(_add_months(first, -1)),
            next_href=month_page(_add_months(first, 1)),
            day_href=lambda day: "/events?" + urlencode(
                [*base, ("view", "agenda"), ("from", day.isoformat())]),
        )
    return await render(request, "calendar.html", context, status=400 if errors else 200)
