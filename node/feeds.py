"""The node's feeds: an iCalendar (RFC 5545) calendar and an Atom (RFC 4287) feed.

Pure builders from domain records to bytes. Online links, members and RSVPs
are not among their inputs, so no feed can carry them.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape
from typing import TYPE_CHECKING
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from node.db import parse_stamp, timestamp
from node.domain import Event, Format, Group, NodeSettings, OccurrenceChange
from node.i18n import format_time, format_when, gettext, zone_abbreviation
from node.text import render_markdown

if TYPE_CHECKING:
    from icalendar import Event as VEvent

    from node.storage.events import MeetingSeries, UpcomingMeeting

# icalendar is imported where a calendar is built: it is ~4 MB an idle node need not hold.

PRODID = "-//Grassroots//Grassroots node//EN"
ATOM_NS = "http://www.w3.org/2005/Atom"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"

# Characters XML 1.0 and iCalendar TEXT both forbid (tab and newline are kept).
_FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")


def plain(text: str) -> str:
    """User text made safe for any feed: one kind of newline, no control bytes."""
    return _FORBIDDEN.sub("", text.replace("\r\n", "\n").replace("\r", "\n")).strip()


def _host(public_url: str) -> str:
    return urlsplit(public_url).hostname or "localhost"


def _location(event: Event) -> str:
    where = ", ".join(plain(part) for part in (event.place, event.address) if plain(part))
    return where or (gettext("Online") if event.format is Format.ONLINE else "")


# iCalendar ------------------------------------------------------------------

def calendar(
    *, name: str, url: str, public_url: str, groups: Sequence[Group],
    series: Sequence[MeetingSeries],
) -> bytes:
    """A calendar of meeting series: one VEVENT with RRULE and EXDATE per series,
    one more per moved occurrence (same UID, RECURRENCE-ID), and their VTIMEZONEs.

    ``series`` must belong to ``groups``; ``url`` is where this calendar is served.
    A peer's meeting keeps its ActivityPub id as UID and its page there as URL.
    """
    from icalendar import Calendar

    by_id = {group.id: group for group in groups}
    cal = Calendar.new(name=plain(name), prodid=PRODID, uid=url, url=url)
    earliest = []
    for one in series:
        for component in _vevents(one, by_id[one.event.group_id], public_url):
            cal.add_component(component)
        earliest.append(min([one.event.starts_at] + [_slot_start(c) for c in one.changes]))
    if earliest:
        cal.add_missing_timezones(first_date=min(earliest).date() - timedelta(days=1))
    return cal.to_ical()


def utc_until(rrule: str, tz: ZoneInfo) -> str:
    """RFC 5545 wants UNTIL in UTC beside a DTSTART with TZID; it is stored local."""
    parts = []
    for part in rrule.split(";"):
        name, _, value = part.partition("=")
        if name.upper() == "UNTIL" and "T" in value and not value.endswith("Z"):
            local = datetime.strptime(value, "%Y%m%dT%H%M%S").replace(tzinfo=tz)
            value = local.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        parts.append(f"{name}={value}")
    return ";".join(parts)


def _slot_start(change: OccurrenceChange) -> datetime:
    return min(change.original_start, change.starts_at or change.original_start)


@dataclass(frozen=True, slots=True)
class _About:
    """What a series' VEVENTs say of where it lives: this node, or a peer."""

    uid: str
    page: str
    group_line: str
    online_note: str


def _vevents(series: MeetingSeries, group: Group, public_url: str) -> list[VEvent]:
    from icalendar import vRecur

    event, changes = series.event, series.changes
    tz = event.tz
    if series.ap_id is None:
        about = _About(f"event-{event.id}@{_host(public_url)}", f"{public_url}/events/{event.id}",
                       plain(group.name), gettext("The online link is shown to the group's"
                                                  " members on the meeting page."))
    else:
        about = _About(series.ap_id, series.url or series.ap_id,
                       gettext("%(group)s (listed by %(origin)s)", group=plain(group.name),
                               origin=group.origin),
                       gettext("The group gives its online link to its members on %(origin)s.",
                               origin=group.origin))
    if event.rrule is None:
        # A one-off has a single slot: a change to it changes the event itself.
        change = next((c for c in changes if c.original_start == event.starts_at), None)
        if change is not None and not change.cancelled and change.starts_at is not None:
            return [_vevent(event, group, about, change.starts_at, change.duration_minutes,
                            event.cancelled)]
        cancelled = event.cancelled or (change is not None and change.cancelled)
        return [_vevent(event, group, about, event.starts_at, None, cancelled)]
    master = _vevent(event, group, about, event.starts_at, None, event.cancelled)
    master.add("rrule", vRecur.from_ical(utc_until(event.rrule, tz)))
    exdates = [c.original_start.replace(tzinfo=tz) for c in changes if c.cancelled]
    if exdates:
        master.add("exdate", exdates)
    found = [master]
    for change in changes:
        # EXDATE drops a cancelled slot everywhere; the override lets clients that show
        # cancelled meetings mark it (RFC 5546 cancels one instance this way).
        if change.cancelled:
            override = _vevent(event, group, about, change.original_start, None, True)
        elif change.starts_at is not None:
            override = _vevent(event, group, about, change.starts_at, change.duration_minutes,
                               event.cancelled)
        else:
            continue
        override.add("recurrence-id", change.original_start.replace(tzinfo=tz))
        found.append(override)
    return found


def _vevent(
    event: Event,
    group: Group,
    about: _About,
    start: datetime,
    minutes: int | None,
    cancelled: bool,
) -> VEvent:
    """One VEVENT at local wall time ``start``; never the online link."""
    from icalendar import Event as VEvent

    lines = [about.group_line, plain(event.description)]
    if event.format is not Format.IN_PERSON:
        lines.append(about.online_note)
    lines.append(about.page)
    updated = parse_stamp(event.updated_at)
    component = VEvent.new(
        uid=about.uid,
        summary=plain(event.title),
        description="\n\n".join(line for line in lines if line),
        location=_location(event) or None,
        url=about.page,
        categories=list(group.topics),
        start=start.replace(tzinfo=event.tz),
        stamp=updated,
        last_modified=updated,
        created=parse_stamp(event.created_at),
    )
    component.add("duration", timedelta(minutes=minutes or event.duration_minutes))
    component.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    return component


# Atom -----------------------------------------------------------------------

def atom_feed(
    *,
    settings: NodeSettings,
    public_url: str,
    groups: Sequence[Group],
    meetings: Sequence[UpcomingMeeting],
    self_url: str | None = None,
) -> bytes:
    """The node's public groups and upcoming meetings as an Atom feed; those of its peers
    it lists are marked by their node (author) and original page (``via``). ``self_url``
    is where this feed is served (a saved search has its own)."""
    host = _host(public_url)
    by_id = {group.id: group for group in groups}
    entries = [_group_entry(group, settings, public_url, host) for group in groups]
    entries += [
        _meeting_entry(meeting, by_id.get(meeting.event.group_id), settings, public_url, host)
        for meeting in meetings
    ]
    stamps = [group.updated_at for group in groups]
    stamps += [meeting.event.updated_at for meeting in meetings]
    feed = ET.Element("feed", {"xmlns": ATOM_NS, XML_LANG: settings.default_language})
    _text(feed, "id", f"{public_url}/")
    _text(feed, "title", plain(settings.name))
    if plain(settings.description):
        _text(feed, "subtitle", plain(settings.description))
    _text(feed, "updated", max(stamps, default=timestamp()))
    _link(feed, "self", self_url or f"{public_url}/feed.atom", "application/atom+xml")
    _link(feed, "alternate", f"{public_url}/", "text/html")
    _author(feed, settings.name)
    _text(feed, "generator", "Grassroots")
    feed.extend(entries)
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)


def _group_entry(group: Group, settings: NodeSettings, public_url: str, host: str) -> ET.Element:
    """A group's entry; a peer's by its ActivityPub id, authored by its node."""
    entry = ET.Element("entry")
    _text(entry, "id", group.ap_id or f"tag:{host},{group.created_at[:10]}:group-{group.id}")
    _text(entry, "title", plain(group.name))
    _text(entry, "published", group.created_at)
    _text(entry, "updated", group.updated_at)
    _link(entry, "alternate", f"{public_url}/groups/{group.slug}", "text/html")
    if group.ap_id:
        _link(entry, "via", group.url or group.ap_id, "text/html")
    _author(entry, group.origin or settings.name)
    _categories(entry, group)
    _text(entry, "summary", plain(group.summary) or plain(group.description))
    _html(entry, str(render_markdown(plain(group.description))))
    return entry


def _with_status(meeting: UpcomingMeeting, text: str) -> str:
    """``text`` led by what happened to the occurrence, if anything."""
    if meeting.cancelled:
        return gettext("Cancelled: %(meeting)s", meeting=text)
    if meeting.moved:
        return gettext("Moved: %(meeting)s", meeting=text)
    return text


def _meeting_entry(
    meeting: UpcomingMeeting,
    group: Group | None,
    settings: NodeSettings,
    public_url: str,
    host: str,
) -> ET.Element:
    """One occurrence's entry; a peer's by its ActivityPub id and slot, authored by its node."""
    event = meeting.event
    start = parse_stamp(meeting.starts_utc).astimezone(event.tz)
    end = parse_stamp(meeting.ends_utc).astimezone(event.tz)
    when = f"{format_when(start)}–{format_time(end)} {zone_abbreviation(start, event.timezone)}"
    group_name = (gettext("%(group)s (listed by %(origin)s)", group=plain(meeting.group_name),
                          origin=meeting.origin) if meeting.origin else plain(meeting.group_name))
    lines = [_with_status(meeting, f"{group_name}: {when}"), _location(event),
             plain(event.description)]
    entry = ET.Element("entry")
    _text(entry, "id", f"{meeting.ap_id}#{meeting.original_start}" if meeting.ap_id else
          f"tag:{host},{event.created_at[:10]}:event-{event.id}/{meeting.original_start}")
    _text(entry, "title", _with_status(meeting, f"{plain(event.title)} ({format_when(start)})"))
    _text(entry, "updated", event.updated_at)
    # The occurrence's own page (its key is digits, '-', 'T' and ':': no escaping).
    _link(entry, "alternate", f"{public_url}/events/{event.id}?on={meeting.original_start}",
          "text/html")
    if meeting.ap_id:
        _link(entry, "via", meeting.url or meeting.ap_id, "text/html")
    _author(entry, meeting.origin or settings.name)
    if group is not None:
        _categories(entry, group)
    _text(entry, "summary", "\n\n".join(line for line in lines if line))
    _html(entry, "".join(f"<p>{escape(line)}</p>" for line in lines[:2] if line)
          + str(render_markdown(plain(event.description))))
    return entry


def _html(parent: ET.Element, html: str) -> None:
    """Rendered, sanitized HTML as the entry's content (RFC 4287 type="html")."""
    if html:
        ET.SubElement(parent, "content", {"type": "html"}).text = html


def _text(parent: ET.Element, tag: str, text: str) -> None:
    ET.SubElement(parent, tag).text = text


def _link(parent: ET.Element, rel: str, href: str, media_type: str) -> None:
    ET.SubElement(parent, "link", {"rel": rel, "type": media_type, "href": href})


def _author(parent: ET.Element, name: str) -> None:
    _text(ET.SubElement(parent, "author"), "name", plain(name))


def _categories(parent: ET.Element, group: Group) -> None:
    for topic in group.topics:
        ET.SubElement(parent, "category", {"term": plain(topic)})
