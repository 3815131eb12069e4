"""Finding a series' occurrences for its page: one slot, the next, those coming up."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from starlette.exceptions import HTTPException
from starlette.requests import Request

from node.db import Database
from node.domain import Event, Occurrence, occurrence_key
from node.i18n import gettext as _
from node.recurrence import expand, is_series_slot, localize
from node.storage import events as store

OTHER_OCCURRENCES = 5  # listed on a meeting's page

def slot_of(key: str) -> datetime | None:
    try:
        return store.parse_local(key)
    except ValueError:
        return None


async def occurrence_at(db: Database, event: Event, key: str) -> Occurrence | None:
    """The occurrence in the series slot ``key`` names (cancelled ones flagged), or None."""
    slot = slot_of(key)
    if slot is None or not is_series_slot(event.starts_at, event.rrule, slot):
        return None
    changes = [c for c in await store.changes_of(db, event.id) if c.original_start == slot]
    moved_to = changes[0].starts_at if changes else None
    start = localize(moved_to or slot, event.tz)
    found = expand(
        event_id=event.id, starts_at=event.starts_at, duration_minutes=event.duration_minutes,
        timezone=event.timezone, rrule=event.rrule, changes=changes,
        window_start=start, window_end=start + timedelta(minutes=1), include_cancelled=True,
    )
    return next((o for o in found if o.original_start == slot), None)


async def coming_up(db: Database, event: Event, now: datetime) -> list[Occurrence]:
    """Occurrences not yet over, soonest first, cancelled ones flagged."""
    found = await store.occurrences_of(db, event, now - timedelta(days=1),
                                       now + store.HORIZON_AHEAD, include_cancelled=True)
    return [o for o in found if o.end > now]


async def default_occurrence(db: Database, event: Event, now: datetime) -> Occurrence | None:
    """The next meeting still to happen; else the series' first."""
    ahead = await coming_up(db, event, now)
    held = [o for o in ahead if not o.cancelled]
    if held or ahead:
        return (held or ahead)[0]
    return await occurrence_at(db, event, occurrence_key(event.starts_at))


async def others_coming_up(db: Database, event: Event, key: str, now: datetime, *,
                           with_cancelled: bool) -> list[Occurrence]:
    """The series' next few occurrences besides the one at ``key``."""
    if event.cancelled:
        return []
    return [o for o in await coming_up(db, event, now)
            if o.key != key and (with_cancelled or not o.cancelled)][:OTHER_OCCURRENCES]


async def requested_occurrence(request: Request, event: Event) -> Occurrence | None:
    """The occurrence the page's ``?on=`` names (404 if the series has none there), else
    the next one."""
    on = request.query_params.get("on")
    if on is None:
        return await default_occurrence(request.state.db, event, datetime.now(UTC))
    occurrence = await occurrence_at(request.state.db, event, on)
    if occurrence is None:
        raise HTTPException(404, _("This meeting series has no meeting at that time."))
    return occurrence
