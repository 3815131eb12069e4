"""A printable flyer's content, the same for its web page and its PDF."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from node.domain import Event, Format, Group, label
from node.i18n import format_day, format_time, gettext, language_name
from node.web.public_meetings import PublicMeeting

MEETINGS_ON_FLYER = 4
TEAR_OFF_SLIPS = 8


class Paper(StrEnum):
    A4 = "a4"
    LETTER = "letter"

    @classmethod
    def named(cls, value: str | None) -> Paper:
        """``?paper=letter`` for US Letter; anything else is A4."""
        return cls.LETTER if value == cls.LETTER else cls.A4


@dataclass(frozen=True, slots=True)
class FlyerMeeting:
    when: str  # "Tuesday 10 March 2026, 19:00–20:30", in the meeting's zone
    timezone: str  # named beside it: "Europe/London"
    title: str
    place: str  # "Upstairs room, 12 Kirkgate" or "Online"
    cancelled: bool


@dataclass(frozen=True, slots=True)
class Flyer:
    title: str
    group_name: str  # the group a meeting's flyer belongs to; the title itself otherwise
    summary: str
    audiences: tuple[str, ...]
    languages: tuple[str, ...]
    format: str  # its label
    where: tuple[str, ...]  # place, address, area: the lines that say where
    meetings: tuple[FlyerMeeting, ...]
    accessibility: tuple[str, ...]  # labels
    cost: str  # its label
    contact: str
    url: str  # the page the QR code opens, absolute
    origin: str | None  # a peer's listing: the node it comes from

    @property
    def timezone(self) -> str | None:
        """The one zone every meeting listed is in, to name once; else None."""
        zones = {m.timezone for m in self.meetings}
        return zones.pop() if len(zones) == 1 else None

    @property
    def titles_differ(self) -> bool:
        """A group's flyer listing meetings of several series names each one's title."""
        return self.title == self.group_name and len({m.title for m in self.meetings}) > 1

    @property
    def short_url(self) -> str:
        """The address without its scheme, for the tear-off slips."""
        return self.url.split("://", 1)[-1]


def plain_when(start: datetime, end: datetime) -> str:
    """'Tuesday 10 March 2026, 19:00–20:30' in the visitor's language, in the zone
    ``start`` carries."""
    until = format_time(end) if end.date() == start.date() else \
        f"{format_day(end)}, {format_time(end)}"
    return f"{format_day(start)}, {format_time(start)}–{until}"


def _place(m: PublicMeeting) -> str:
    if m.format is Format.ONLINE:
        return gettext(label(Format.ONLINE))
    return ", ".join(part for part in (m.place, m.address) if part)


def _where(group: Group, event: Event | PublicMeeting | None) -> tuple[str, ...]:
    if event is not None and event.format is Format.ONLINE:
        return (gettext(label(Format.ONLINE)),)
    lines = [event.place, event.address] if event is not None else [group.address]
    lines.append(group.area)
    seen: list[str] = []
    for line in lines:
        if line and line not in seen:
            seen.append(line)
    return tuple(seen)


def build_flyer(group: Group, meetings: list[PublicMeeting], url: str,
                event: Event | None = None) -> Flyer:
    meetings = meetings[:MEETINGS_ON_FLYER]
    places = {_place(m) for m in meetings}
    if event is not None:
        where = _where(group, event)
    elif len(places) == 1:  # every meeting at one place: said once
        where = _where(group, meetings[0])
    else:
        where = _where(group, None)
    each_place = event is None and len(places) > 1
    return Flyer(
        title=event.title if event else group.name,
        group_name=group.name,
        summary=group.summary,
        audiences=group.audiences,
        languages=tuple(language_name(code) for code in group.languages),
        format=gettext(label(event.format if event else group.format)),
        where=where,
        meetings=tuple(
            FlyerMeeting(plain_when(m.start, m.end), m.timezone, m.title,
                         _place(m) if each_place else "", m.cancelled)
            for m in meetings),
        accessibility=tuple(gettext(label(a)) for a in group.accessibility),
        cost=gettext(label(group.cost)),
        contact=group.contact,
        url=url,
        origin=group.origin,
    )
