"""Reading peers' Group and Event documents into the node's listing values.

Everything remote is untrusted: text is stripped of markup and capped,
enumerations must be known values, recurrence rules must parse and be no
finer than daily, time zones must exist. A document that fails gets an
``ObjectError`` naming the field.
"""
from __future__ import annotations

import html
import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import nh3
from dateutil.rrule import DAILY, rrulestr

from node.domain import (
    ACCESSIBILITY,
    Cost,
    EventDraft,
    Format,
    GroupDraft,
    JoinPolicy,
    OccurrenceChange,
    Visibility,
)
from node.forms import LANGUAGE_TAG, TAG, known_timezone

LOCAL = "%Y-%m-%dT%H:%M"
MARKUP_LEFT = re.compile(r"<\s*[a-zA-Z!/]")


class ObjectError(ValueError):
    """A remote document that cannot become a listing; the message says why."""


def plain_text(value: Any, limit: int) -> str:
    """Remote HTML as plain text: tags removed, entities decoded, paragraphs kept."""
    if not isinstance(value, str):
        return ""
    text = re.sub(r"(?i)<\s*(br|/p|/li|/h\d)\s*/?>", "\n", value[: limit * 4])
    # Entity-encoded markup decodes into markup: clean again until nothing changes.
    for _ in range(3):
        cleaned = html.unescape(nh3.clean(text, tags=set()))
        if cleaned == text:
            break
        text = cleaned
    text = re.sub(r"<|>", "", text) if MARKUP_LEFT.search(text) else text
    text = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", "", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()[:limit]


def _strings(value: Any, pattern: re.Pattern[str], limit: int = 12) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    found = [v.strip() for v in value if isinstance(v, str) and pattern.match(v.strip())]
    return tuple(dict.fromkeys(found))[:limit]


def _enum(value: Any, enum: type, default: Any) -> Any:
    try:
        return enum(value)
    except ValueError:
        return default


def _place(document: dict[str, Any]) -> tuple[str, str, str]:
    """(name, street, locality) of a document's ``location``."""
    location = document.get("location")
    if isinstance(location, list):
        location = location[0] if location else None
    if not isinstance(location, dict):
        return "", "", ""
    address = location.get("address")
    street = locality = ""
    if isinstance(address, dict):
        street = plain_text(address.get("streetAddress"), 300)
        locality = plain_text(address.get("addressLocality"), 120)
    elif isinstance(address, str):
        street = plain_text(address, 300)
    return plain_text(location.get("name"), 200), street, locality


def _markdown(document: dict[str, Any], limit: int, fallback: str = "content") -> str:
    """The text of ``content``: its Markdown ``source`` when given, else the HTML of
    ``content`` (or of ``fallback`` when that is empty) as text.

    Either way it is stored as plain text (no markup, no entities), as all remote text is.
    """
    source = document.get("source")
    if isinstance(source, dict) and source.get("mediaType") == "text/markdown" \
            and isinstance(source.get("content"), str):
        return plain_text(source["content"], limit)
    return plain_text(document.get("content") or document.get(fallback), limit)


def _topics(document: dict[str, Any]) -> tuple[str, ...]:
    topics = _strings(document.get("topics"), TAG)
    if topics:
        return topics
    tags = document.get("tag") if isinstance(document.get("tag"), list) else []
    names = [t["name"].lstrip("#").lower().replace("_", "-") for t in tags
             if isinstance(t, dict) and t.get("type") == "Hashtag" and isinstance(t.get("name"), str)]
    return tuple(dict.fromkeys(n for n in names if isinstance(n, str) and TAG.match(n)))[:12]


def parse_group(document: dict[str, Any]) -> tuple[str, GroupDraft]:
    """(username, listing) of a remote ``Group`` actor."""
    if document.get("type") != "Group":
        raise ObjectError("not a Group")
    username = document.get("preferredUsername")
    if not isinstance(username, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", username):
        raise ObjectError("preferredUsername is missing or not a plain name")
    name = plain_text(document.get("name"), 120) or username
    summary = plain_text(document.get("summary"), 280).split("\n", 1)[0]
    place, street, locality = _place(document)
    languages = _strings(document.get("languages"), LANGUAGE_TAG) or ("und",)
    return username, GroupDraft(
        name=name,
        summary=summary,
        description=_markdown(document, 20000, fallback="summary"),
        agreements=plain_text(document.get("agreements"), 10000),
        visibility=Visibility.PUBLIC,
        join_policy=_enum(document.get("joinPolicy"), JoinPolicy, JoinPolicy.OPEN),
        format=_enum(document.get("format"), Format, Format.IN_PERSON),
        cost=_enum(document.get("cost"), Cost, Cost.FREE),
        area=plain_text(document["area"], 120) if "area" in document else
        locality or place[:120],
        address=street,
        contact=plain_text(document.get("contact"), 200),
        topics=_topics(document),
        languages=languages,
        accessibility=_accessibility(document),
        audiences=_strings(document.get("audiences"), TAG),
    )


def _accessibility(document: dict[str, Any]) -> tuple[str, ...]:
    """Keys of the fixed vocabulary (``step_free``...); anything else is dropped."""
    value = document.get("accessibility")
    found = [v for v in value if isinstance(v, str) and v in ACCESSIBILITY] \
        if isinstance(value, list) else []
    return tuple(dict.fromkeys(found))


def _local(value: Any, field: str) -> datetime:
    try:
        return datetime.strptime(value, LOCAL)
    except (TypeError, ValueError) as e:
        raise ObjectError(f"{field} is not a local date-time") from e


def _instant(value: Any, field: str) -> datetime:
    if not isinstance(value, str):
        raise ObjectError(f"{field} is missing")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        raise ObjectError(f"{field} is not a date-time") from e
    if moment.tzinfo is None:
        raise ObjectError(f"{field} has no offset")
    return moment


def _rrule(value: Any, dtstart: datetime) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 300 or "\n" in value:
        raise ObjectError("recurrence rule is not a single RRULE value")
    try:
        rule = rrulestr(f"RRULE:{value}", dtstart=dtstart)
    except (ValueError, TypeError) as e:
        raise ObjectError("recurrence rule does not parse") from e
    if rule._freq > DAILY:  # finer than daily would flood the expansion
        raise ObjectError("recurrence more often than daily")
    return value


def parse_event(document: dict[str, Any]) -> tuple[EventDraft, list[OccurrenceChange], bool]:
    """(series, changed occurrences, whole series cancelled) of a remote ``Event``."""
    if document.get("type") != "Event":
        raise ObjectError("not an Event")
    title = plain_text(document.get("name"), 200)
    if not title:
        raise ObjectError("name is missing")
    timezone = document.get("timezone")
    if not known_timezone(timezone):
        timezone = "UTC"
    recurrence = document.get("recurrence")
    changes: list[OccurrenceChange] = []
    try:
        if isinstance(recurrence, dict):
            if known_timezone(recurrence.get("timezone")):
                timezone = recurrence["timezone"]
            starts_at = _local(recurrence.get("dtstart"), "recurrence.dtstart")
            duration = recurrence.get("durationMinutes")
            rrule = _rrule(recurrence.get("rrule"), starts_at)
            changes = _changes(recurrence)
        else:
            start = _instant(document.get("startTime"), "startTime")
            end = _instant(document["endTime"], "endTime") if document.get("endTime") else \
                start + timedelta(hours=1)
            starts_at = start.astimezone(ZoneInfo(timezone)).replace(tzinfo=None)
            duration = int((end - start).total_seconds() // 60)
            rrule = None
    except OverflowError as e:
        raise ObjectError("a date is out of range") from e
    if not isinstance(duration, int) or not 0 < duration <= 24 * 60:
        duration = 60
    capacity = document.get("maximumAttendeeCapacity")
    place, street, locality = _place(document)
    if "format" not in document and locality:  # ours name the group's area there instead
        street = ", ".join(p for p in (street, locality) if p)
    event_format = _enum(document.get("format"), Format,
                         Format.ONLINE if document.get("isOnline") is True else Format.IN_PERSON)
    draft = EventDraft(
        title=title,
        description=_markdown(document, 20000),
        starts_at=starts_at.replace(second=0, microsecond=0),
        duration_minutes=duration,
        timezone=timezone,
        rrule=rrule,
        format=event_format,
        place="" if place == street else place,  # a Place with no name is named by its street
        address=street,
        online_url="",  # never carried between nodes
        capacity=capacity if isinstance(capacity, int) and 0 < capacity < 100000 else None,
    )
    cancelled = document.get("ical:status") == "CANCELLED"
    return draft, changes, cancelled


def _changes(recurrence: dict[str, Any]) -> list[OccurrenceChange]:
    """Cancelled and moved occurrences of a series (at most 500 of each)."""
    cancelled, moved = recurrence.get("cancelled"), recurrence.get("moved")
    changes = [OccurrenceChange(_local(slot, "cancelled"), cancelled=True)
               for slot in (cancelled if isinstance(cancelled, list) else [])[:500]]
    for item in (moved if isinstance(moved, list) else [])[:500]:
        if isinstance(item, dict):
            minutes = item.get("durationMinutes")
            changes.append(OccurrenceChange(
                _local(item.get("original"), "moved.original"), cancelled=False,
                starts_at=_local(item.get("start"), "moved.start"),
                duration_minutes=minutes if isinstance(minutes, int) and
                0 < minutes <= 24 * 60 else None))
    return changes


THEMES = 100  # at most, per series
THEME_LENGTH = 80


def parse_themes(document: dict[str, Any]) -> list[tuple[str, str]]:
    """(occurrence key, theme) of an ``Event``'s public themes, in ``recurrence.themes``.

    As with ``moved``: what is not a list or not an object is ignored, and an object
    whose key is not a local date-time or whose name is not a short text refuses the
    document.
    """
    recurrence = document.get("recurrence")
    listed = recurrence.get("themes") if isinstance(recurrence, dict) else None
    themes: dict[str, str] = {}
    for item in (listed if isinstance(listed, list) else [])[:THEMES]:
        if not isinstance(item, dict):
            continue
        key = _local(item.get("original"), "themes.original").strftime(LOCAL)
        name = item.get("name")
        if not isinstance(name, str) or not 0 < len(name.strip()) <= THEME_LENGTH:
            raise ObjectError("themes.name is not a theme of at most 80 characters")
        name = plain_text(name, THEME_LENGTH)
        if name:
            themes.setdefault(key, name)
    return list(themes.items())


def first_id(value: Any) -> str | None:
    """The id of a reference that may be a string, an object or a list of either."""
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) else None
