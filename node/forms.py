"""Parsing submitted forms into validated domain values.

Each parser returns ``(value, errors)``: the value is None when any field is
wrong, and ``errors`` maps a field name to the message shown beside it.
"""
from __future__ import annotations

import functools
import re
import zoneinfo
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from dateutil.rrule import rrulestr
from starlette.datastructures import FormData

from node.domain import (
    ACCESSIBILITY,
    AgreementDecision,
    Cost,
    EventDraft,
    Facilitation,
    Format,
    GroupDraft,
    JoinPolicy,
    NodeSettings,
    OccurrenceChange,
    Practice,
    RegistrationMode,
    ReportReason,
    ThemeChoice,
    Visibility,
)
from node.i18n import LANGUAGES, N_
from node.i18n import gettext as _
from node.recurrence import MAX_OCCURRENCES, localize
from node.security import MIN_PASSWORD_LENGTH

Errors = dict[str, str]

# Unambiguous parts (the domain's labels cannot contain dots), so matching is linear.
EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")
# BCP 47 in the shape people use: a primary language and optional subtags.
LANGUAGE_TAG = re.compile(r"^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*$")
TAG = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


def text(form: FormData, name: str) -> str:
    """A field's value with surrounding white space and NUL bytes removed."""
    value = form.get(name, "")
    return value.replace("\x00", "").strip() if isinstance(value, str) else ""


def form_values(form: FormData) -> dict[str, Any]:
    """Submitted values to refill a form, lists kept for multi-value fields."""
    values: dict[str, Any] = {}
    for key in form.keys():
        if key == "csrf_token":
            continue
        items = [v for v in form.getlist(key) if isinstance(v, str)]
        values[key] = items if len(items) > 1 else (items[0] if items else "")
    return values


# ``label`` below is a translated phrase naming the field as the object of a sentence
# ("a name", "the description"); the sentences around it are translated whole.

def require(errors: Errors, name: str, value: str, label: str, max_length: int) -> str:
    if not value:
        errors[name] = _("Enter %(what)s.", what=label)
    elif len(value) > max_length:
        errors[name] = _("Keep %(what)s to %(max)s characters or fewer (it has %(count)s).",
                         what=label, max=max_length, count=len(value))
    return value


def limit(errors: Errors, name: str, value: str, label: str, max_length: int) -> str:
    if len(value) > max_length:
        errors[name] = _("Keep %(what)s to %(max)s characters or fewer (it has %(count)s).",
                         what=label, max=max_length, count=len(value))
    return value


def choice(errors: Errors, name: str, value: str, enum: type, label: str) -> Any:
    try:
        return enum(value)
    except ValueError:
        errors[name] = _("Choose %(what)s.", what=label)
        return None


# Per kind of tag: the message for a malformed one, and for too many.
TAG_MESSAGES = {
    "topic": (N_("“%(tag)s” is not a valid topic."), N_("Use at most %(max)s topics.")),
    "audience": (N_("“%(tag)s” is not a valid audience."),
                 N_("Use at most %(max)s audiences.")),
    "language code": (N_("“%(tag)s” is not a valid language code."),
                      N_("Use at most %(max)s language codes.")),
}
MAX_TAGS = 12


def tags(errors: Errors, name: str, raw: str, label: str, pattern: re.Pattern[str],
         lower: bool = True) -> tuple[str, ...]:
    """Comma-separated tags, normalised; one bad tag names itself in the error."""
    invalid, too_many = TAG_MESSAGES[label]
    found = []
    for part in raw.split(","):
        tag = part.strip()
        if lower:
            tag = re.sub(r"\s+", "-", tag.lower())
        if not tag:
            continue
        if not pattern.match(tag):
            errors[name] = _(invalid, tag=tag[:40])
            return ()
        found.append(tag)
    if len(found) > MAX_TAGS:
        errors[name] = _(too_many, max=MAX_TAGS)
    return tuple(dict.fromkeys(found))


def parse_group_form(form: FormData) -> tuple[GroupDraft | None, Errors]:
    errors: Errors = {}
    name = require(errors, "name", text(form, "name"), _("a name"), 120)
    summary = require(errors, "summary", text(form, "summary"), _("a one-line summary"), 280)
    description = limit(errors, "description", text(form, "description"), _("the description"),
                        20000)
    agreements = limit(errors, "agreements", text(form, "agreements"), _("the agreements"), 10000)
    visibility = choice(errors, "visibility", text(form, "visibility"), Visibility,
                        _("who can see the group"))
    join_policy = choice(errors, "join_policy", text(form, "join_policy"), JoinPolicy,
                         _("how people join"))
    group_format = choice(errors, "format", text(form, "format"), Format, _("a format"))
    cost = choice(errors, "cost", text(form, "cost"), Cost, _("a cost"))
    area = limit(errors, "area", text(form, "area"), _("the area"), 120)
    address = limit(errors, "address", text(form, "address"), _("the address"), 300)
    contact = limit(errors, "contact", text(form, "contact"), _("the contact"), 200)
    if contact and "@" in contact and not EMAIL.match(contact):
        errors["contact"] = _("Enter a valid email address, or a link, or leave it empty.")
    topics = tags(errors, "topics", text(form, "topics"), "topic", TAG)
    audiences = tags(errors, "audiences", text(form, "audiences"), "audience", TAG)
    languages = tags(errors, "languages", text(form, "languages"), "language code",
                     LANGUAGE_TAG, lower=False)
    if not languages and "languages" not in errors:
        errors["languages"] = _("Enter at least one language, such as en or es.")
    accessibility = tuple(v for v in form.getlist("accessibility") if isinstance(v, str))
    unknown = [v for v in accessibility if v not in ACCESSIBILITY]
    if unknown:
        errors["accessibility"] = _("Choose accessibility features from the list.")
    if group_format in (Format.IN_PERSON, Format.HYBRID) and not area:
        errors["area"] = _("Enter the neighbourhood or city where the group meets.")
    if errors:
        return None, errors
    return GroupDraft(
        name=name, summary=summary, description=description, agreements=agreements,
        visibility=visibility, join_policy=join_policy, format=group_format, cost=cost,
        area=area, address=address, contact=contact, topics=topics,
        languages=languages, accessibility=tuple(dict.fromkeys(accessibility)),
        audiences=audiences,
    ), errors


def group_form_values(draft: GroupDraft) -> dict[str, Any]:
    """A stored group's fields in the shape the form shows them."""
    return {
        "name": draft.name, "summary": draft.summary, "description": draft.description,
        "agreements": draft.agreements, "visibility": draft.visibility,
        "join_policy": draft.join_policy, "format": draft.format, "cost": draft.cost,
        "area": draft.area, "address": draft.address, "contact": draft.contact,
        "topics": ", ".join(draft.topics), "languages": ", ".join(draft.languages),
        "audiences": ", ".join(draft.audiences), "accessibility": list(draft.accessibility),
    }


def parse_registration(form: FormData) -> tuple[dict[str, str] | None, Errors]:
    errors: Errors = {}
    display_name = require(errors, "display_name", text(form, "display_name"),
                           _("a display name"), 60)
    email = text(form, "email").lower()
    if len(email) > 254 or not EMAIL.match(email):
        errors["email"] = _("Enter a valid email address, like name@example.org.")
    password = form.get("password", "")
    password_errors = password_problems(password if isinstance(password, str) else "")
    if password_errors:
        errors["password"] = password_errors
    if errors:
        return None, errors
    return {"display_name": display_name, "email": email, "password": password}, errors


def password_problems(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        return _("Use at least %(min)s characters.", min=MIN_PASSWORD_LENGTH)
    if len(password) > 1024:
        return _("Use at most %(max)s characters.", max=1024)
    return ""


def parse_settings(form: FormData) -> tuple[NodeSettings | None, Errors]:
    errors: Errors = {}
    name = require(errors, "name", text(form, "name"), _("the node's name"), 80)
    description = limit(errors, "description", text(form, "description"), _("the description"),
                        5000)
    registration = choice(errors, "registration", text(form, "registration"),
                          RegistrationMode, _("how people register"))
    language = text(form, "default_language")
    if language not in LANGUAGES:
        errors["default_language"] = _("Choose one of the listed languages.")
    crisis = limit(errors, "crisis_notice", text(form, "crisis_notice"), _("the notice"), 2000)
    if errors:
        return None, errors
    return NodeSettings(name=name, description=description, registration=registration,
                        default_language=language, crisis_notice=crisis), errors


def parse_practice_form(form: FormData) -> tuple[Practice | None, Errors]:
    """How a group runs itself, from its facilitators' form."""
    errors: Errors = {}
    values: dict[str, Any] = {
        "theme_choice": choice(errors, "theme_choice", text(form, "theme_choice"), ThemeChoice,
                               _("who sets a meeting's theme")),
        "themes_public": form.get("themes_public") == "yes",
        "facilitation": choice(errors, "facilitation", text(form, "facilitation"),
                               Facilitation, _("who holds the meetings")),
        "agreement_decision": choice(errors, "agreement_decision",
                                     text(form, "agreement_decision"), AgreementDecision,
                                     _("how changes to the agreements are adopted")),
    }
    for name, label, maximum in (
            ("theme_lead_hours", _("the hours before a meeting"), 336),
            ("discussion_days", _("the days of discussion"), 60),
            ("pulse_keep_days", _("the days pulses are kept"), 365)):
        values[name] = whole_number(errors, name, text(form, name), label, maximum)
        if values[name] is None and name not in errors:
            errors[name] = _("Enter %(what)s.", what=label)
    if errors:
        return None, errors
    return Practice(**values), errors


def checked(values: Iterable[str] | str, option: str) -> bool:
    if isinstance(values, str):
        return values == option
    return option in values


# Meetings ------------------------------------------------------------------

LOCAL_INPUT_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S")  # what datetime-local sends
MAX_DURATION_MINUTES = 24 * 60
MAX_CAPACITY = 10000
# The simple repeat choices of the form, with the label people see.
REPEATS: dict[str, str] = {
    "none": N_("Does not repeat"),
    "weekly": N_("Every week, on the same weekday"),
    "biweekly": N_("Every 2 weeks, on the same weekday"),
    "monthly_weekday": N_("Monthly, on the same weekday of the month (e.g. the first Saturday)"),
    "monthly_day": N_("Monthly, on the same date"),
}
# Meetings repeat at most daily; finer rules would flood the calendar.
RRULE_FREQUENCIES = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
RRULE_TEXT = re.compile(r"^[A-Z]+=[A-Z0-9,+-]+(;[A-Z]+=[A-Z0-9,+-]+)*$")
WEEKDAY_CODES = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


@functools.cache
def timezone_names() -> tuple[str, ...]:
    return tuple(sorted(zoneinfo.available_timezones()))


@functools.cache
def _timezone_set() -> frozenset[str]:
    return frozenset(timezone_names())


def known_timezone(name: object) -> bool:
    """An IANA zone this machine knows (the list is read from disk once)."""
    return isinstance(name, str) and name in _timezone_set()


def local_datetime(errors: Errors, name: str, value: str, label: str) -> datetime | None:
    """A ``datetime-local`` value as naive wall time, to the minute."""
    for fmt in LOCAL_INPUT_FORMATS:
        try:
            moment = datetime.strptime(value, fmt)
        except ValueError:
            continue
        if 2000 <= moment.year <= 2100:
            return moment.replace(second=0)
        break
    errors[name] = _("Enter %(what)s as a date and time, like 2026-03-03 19:00.", what=label)
    return None


def whole_number(errors: Errors, name: str, value: str, label: str, maximum: int) -> int | None:
    """An optional whole number from 1 to ``maximum``; empty gives None."""
    if not value:
        return None
    if re.fullmatch(r"[0-9]{1,6}", value) and 1 <= int(value) <= maximum:
        return int(value)
    errors[name] = _("Enter %(what)s as a whole number from 1 to %(max)s.", what=label,
                     max=maximum)
    return None


def exists_in_zone(errors: Errors, name: str, local: datetime | None, timezone: str) -> None:
    """Refuse a wall time skipped when the clocks go forward."""
    if local is None:
        return
    if localize(local, zoneinfo.ZoneInfo(timezone)).replace(tzinfo=None) != local:
        errors[name] = _("%(time)s does not exist on that day in %(zone)s: the clocks go "
                         "forward. Choose another time.",
                         time=local.strftime("%H:%M"), zone=timezone)


def meeting_length(errors: Errors, form: FormData, start: datetime | None) -> int:
    """Minutes, from the duration field or else from the end time."""
    duration, ends_at = text(form, "duration"), text(form, "ends_at")
    if duration:
        minutes = whole_number(errors, "duration", duration, _("the length in minutes"),
                               MAX_DURATION_MINUTES)
        return minutes or 0
    if not ends_at:
        errors["duration"] = _("Enter how many minutes the meeting lasts, or its end time.")
        return 0
    try:
        end_time = datetime.strptime(ends_at, "%H:%M").time()
    except ValueError:
        errors["ends_at"] = _("Enter the end time like 21:00.")
        return 0
    if start is None:
        return 0
    end = datetime.combine(start.date(), end_time)
    if end <= start:  # ends after midnight
        end += timedelta(days=1)
    return (end - start) // timedelta(minutes=1)


def repeat_rule(start: datetime, repeat: str) -> str | None:
    """The RRULE of a simple repeat choice, anchored on the first meeting."""
    day = WEEKDAY_CODES[start.weekday()]
    nth = (start.day - 1) // 7 + 1
    return {
        "none": None,
        "weekly": f"FREQ=WEEKLY;BYDAY={day}",
        "biweekly": f"FREQ=WEEKLY;INTERVAL=2;BYDAY={day}",
        # A fifth weekday is the last one; not every month has a fifth.
        "monthly_weekday": f"FREQ=MONTHLY;BYDAY={nth if nth < 5 else -1}{day}",
        "monthly_day": f"FREQ=MONTHLY;BYMONTHDAY={start.day}",
    }[repeat]


def rule_parts(rule: str) -> dict[str, str]:
    return dict(part.partition("=")[::2] for part in rule.split(";"))


def custom_rule(errors: Errors, raw: str) -> str | None:
    """The advanced field's RRULE value, checked for shape (not yet for meaning)."""
    rule = re.sub(r"^RRULE:", "", raw.upper())
    if not RRULE_TEXT.match(rule):
        errors["rrule"] = _("Write one RRULE value without spaces, like FREQ=WEEKLY;BYDAY=TU.")
        return None
    parts = rule_parts(rule)
    if parts.get("FREQ") not in RRULE_FREQUENCIES:
        errors["rrule"] = _("Start the rule with FREQ=DAILY, WEEKLY, MONTHLY or YEARLY.")
    elif "COUNT" in parts and "UNTIL" in parts:
        errors["rrule"] = _("Use COUNT or UNTIL, not both.")
    elif parts.get("UNTIL", "").endswith("Z"):
        errors["rrule"] = _("Write UNTIL in the meeting's local time, without a Z.")
    return None if "rrule" in errors else rule


def series_end(errors: Errors, form: FormData, rule: str, start: datetime) -> str:
    """The UNTIL or COUNT part from the form's "until" and "count" fields."""
    until, count = text(form, "until"), text(form, "count")
    if not (until or count):
        return ""
    if until and count:
        errors["until"] = _("Give a last date or a number of meetings, not both.")
        return ""
    if {"UNTIL", "COUNT"} & rule_parts(rule).keys():
        errors["until"] = _("The custom rule already says when the series ends.")
        return ""
    if count:
        number = whole_number(errors, "count", count, _("the number of meetings"),
                              MAX_OCCURRENCES)
        return f";COUNT={number}" if number else ""
    try:
        last = datetime.strptime(until, "%Y-%m-%d").date()
    except ValueError:
        errors["until"] = _("Enter the last date like 2026-12-31.")
        return ""
    if last < start.date():
        errors["until"] = _("The last date must be on or after the first meeting.")
        return ""
    return f";UNTIL={last:%Y%m%d}T235959"


def meeting_rule(errors: Errors, form: FormData, start: datetime | None) -> str | None:
    """The series' RRULE (None for a one-off), checked by expanding it."""
    repeat = text(form, "repeat") or "none"
    advanced = text(form, "rrule")
    if repeat not in REPEATS:
        errors["repeat"] = _("Choose how often the meeting repeats.")
        return None
    if start is None or (repeat == "none" and not advanced):
        return None
    rule = custom_rule(errors, advanced) if advanced else repeat_rule(start, repeat)
    if rule is None:
        return None
    rule += series_end(errors, form, rule, start)
    field = "rrule" if advanced else "until"
    try:
        first = rrulestr(f"RRULE:{rule}", dtstart=start, forceset=False).after(start, inc=True)
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
        errors.setdefault(field, _("This repeat rule is not valid (%(reason)s).", reason=exc))
        return None
    if first is None:
        errors.setdefault(field, _("This repeat rule gives no meetings from the start date on."))
    return rule


def https_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme == "https" and bool(parts.hostname) and not re.search(r"\s", value)


def parse_event_form(form: FormData, kept_online_url: str = "") -> tuple[EventDraft | None, Errors]:
    """A meeting series from the form.

    ``kept_online_url`` is the stored link, used when the field comes back
    empty because the editor (an admin who is not a member) was not shown it.
    """
    errors: Errors = {}
    title = require(errors, "title", text(form, "title"), _("a title"), 120)
    description = limit(errors, "description", text(form, "description"), _("the description"),
                        20000)
    start = local_datetime(errors, "starts_at", text(form, "starts_at"), _("the start"))
    duration = meeting_length(errors, form, start)
    timezone = text(form, "timezone")
    if not known_timezone(timezone):
        errors["timezone"] = _("Choose a time zone from the list, such as Europe/London.")
    elif "starts_at" not in errors:
        exists_in_zone(errors, "starts_at", start, timezone)
    rule = meeting_rule(errors, form, start)
    event_format = choice(errors, "format", text(form, "format"), Format, _("a format"))
    place = limit(errors, "place", text(form, "place"), _("the place"), 200)
    address = limit(errors, "address", text(form, "address"), _("the address"), 300)
    online_url = text(form, "online_url") or kept_online_url
    if online_url and (len(online_url) > 500 or not https_url(online_url)):
        errors["online_url"] = _("Enter a full link starting with https://.")
    elif not online_url and event_format in (Format.ONLINE, Format.HYBRID):
        errors["online_url"] = _("Enter the https:// link people use to join online.")
    capacity = whole_number(errors, "capacity", text(form, "capacity"), _("the capacity"),
                            MAX_CAPACITY)
    if errors or start is None:
        return None, errors
    return EventDraft(
        title=title, description=description, starts_at=start, duration_minutes=duration,
        timezone=timezone, rrule=rule, format=event_format, place=place, address=address,
        online_url=online_url, capacity=capacity,
    ), errors


def event_form_values(draft: EventDraft, show_online_url: bool) -> dict[str, Any]:
    """A stored series in the shape the form shows it; simple rules map back to a choice."""
    values: dict[str, Any] = {
        "title": draft.title, "description": draft.description,
        "starts_at": draft.starts_at.strftime("%Y-%m-%dT%H:%M"),
        "duration": str(draft.duration_minutes), "timezone": draft.timezone,
        "format": draft.format, "place": draft.place, "address": draft.address,
        "online_url": draft.online_url if show_online_url else "",
        "capacity": "" if draft.capacity is None else str(draft.capacity),
        "repeat": "none", "rrule": "", "until": "", "count": "",
    }
    if draft.rrule is None:
        return values
    parts = rule_parts(draft.rrule)
    until, count = parts.pop("UNTIL", ""), parts.pop("COUNT", "")
    core = ";".join(f"{k}={v}" for k, v in parts.items())
    simple = next((r for r in REPEATS if r != "none" and repeat_rule(draft.starts_at, r) == core),
                  None)
    if simple is None or (until and not until.endswith("T235959")):
        values["rrule"] = draft.rrule
    else:
        values["repeat"] = simple
        values["count"] = count
        values["until"] = f"{until[:4]}-{until[4:6]}-{until[6:8]}" if until else ""
    return values


def parse_move_form(
    form: FormData, original_start: datetime, timezone: str
) -> tuple[OccurrenceChange | None, Errors]:
    """One occurrence moved to a new local start (and optionally a new length)."""
    errors: Errors = {}
    start = local_datetime(errors, "new_start", text(form, "new_start"), _("the new start"))
    exists_in_zone(errors, "new_start", start, timezone)
    duration = whole_number(errors, "new_duration", text(form, "new_duration"),
                            _("the length in minutes"), MAX_DURATION_MINUTES)
    if errors or start is None:
        return None, errors
    return OccurrenceChange(original_start=original_start, cancelled=False, starts_at=start,
                            duration_minutes=duration), errors


MAX_REPORT_TEXT = 2000


def parse_report(form: FormData) -> tuple[tuple[ReportReason, str] | None, Errors]:
    """A member's report: one of the fixed reasons and a comment (needed for "other")."""
    errors: Errors = {}
    reason = choice(errors, "reason", text(form, "reason"), ReportReason, _("a reason"))
    comment = limit(errors, "comment", text(form, "comment"), _("the comment"), MAX_REPORT_TEXT)
    if reason is ReportReason.OTHER and not comment:
        errors["comment"] = _("Say in a few words what is wrong.")
    if errors:
        return None, errors
    return (reason, comment), errors
