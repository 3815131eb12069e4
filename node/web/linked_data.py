"""schema.org Event data for search engines and link previews, and its safe embedding.

Only what a group's public page shows: a meeting's place, never its online link.
"""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from markupsafe import Markup

from node.db import parse_stamp
from node.domain import Cost, Event, Format, Group, Occurrence
from node.storage.events import UpcomingMeeting

ATTENDANCE = {
    Format.IN_PERSON: "https://schema.org/OfflineEventAttendanceMode",
    Format.ONLINE: "https://schema.org/OnlineEventAttendanceMode",
    Format.HYBRID: "https://schema.org/MixedEventAttendanceMode",
}
# In JSON these stand for themselves; in HTML they could end the <script> element or
# start a comment, so they are written as JSON escapes (which mean the same).
_SCRIPT_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                              "\u2028": "\\u2028", "\u2029": "\\u2029"})


def script_json(value: Any) -> Markup:
    """JSON to place inside ``<script type="application/ld+json">``: nothing in it can
    close the element, whatever the strings hold."""
    return Markup(json.dumps(value, ensure_ascii=False, separators=(",", ":"))
                  .translate(_SCRIPT_SAFE))


def _event_data(event: Event, group: Group, start: datetime, end: datetime, url: str,
                public_url: str, *, cancelled: bool = False, moved: bool = False) -> dict:
    place = {"@type": "Place", "name": event.place or group.area or group.name,
             "address": event.address or group.address or group.area}
    online = {"@type": "VirtualLocation", "url": url}  # the page: the link is for members
    location: Any = {Format.IN_PERSON: place, Format.ONLINE: online,
                     Format.HYBRID: [place, online]}[event.format]
    status = ("EventCancelled" if cancelled or event.cancelled
              else "EventRescheduled" if moved else "EventScheduled")
    data = {
        "@context": "https://schema.org",
        "@type": "Event",
        "name": event.title,
        "description": group.summary,
        "startDate": start.isoformat(),  # in the meeting's own zone, with its offset
        "endDate": end.isoformat(),
        "eventStatus": f"https://schema.org/{status}",
        "eventAttendanceMode": ATTENDANCE[event.format],
        "location": location,
        "url": url,
        "isAccessibleForFree": group.cost is Cost.FREE,
        "organizer": {"@type": "Organization", "name": group.name,
                      "url": f"{public_url}/groups/{group.slug}"},
    }
    if group.languages:
        data["inLanguage"] = group.languages[0]
    return data


def event_linked_data(event: Event, group: Group, occurrence: Occurrence | None,
                      public_url: str) -> dict | None:
    """The meeting page's occurrence as a schema.org Event."""
    if occurrence is None:
        return None
    url = f"{public_url}/events/{event.id}?on={occurrence.key}"
    return _event_data(event, group, occurrence.start, occurrence.end, url, public_url,
                       cancelled=occurrence.cancelled, moved=occurrence.moved)


def group_linked_data(group: Group, meetings: list[UpcomingMeeting],
                      public_url: str) -> list[dict]:
    """A group page's next meetings as schema.org Events."""
    found = []
    for m in meetings:
        start = parse_stamp(m.starts_utc).astimezone(m.event.tz)
        end = parse_stamp(m.ends_utc).astimezone(m.event.tz)
        url = f"{public_url}/events/{m.event.id}?on={m.original_start}"
        found.append(_event_data(m.event, group, start, end, url, public_url,
                                 cancelled=m.cancelled, moved=m.moved))
    return found
