"""Parsing submitted forms into validated domain values.

Each parser returns ``(value, errors)``: the value is None when any field is
wrong, and ``errors`` maps a field name to the message shown beside it.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from starlette.datastructures import FormData

from node.domain import (
    ACCESSIBILITY,
    Cost,
    Format,
    GroupDraft,
    JoinPolicy,
    NodeSettings,
    RegistrationMode,
    Visibility,
)
from node.security import MIN_PASSWORD_LENGTH

Errors = dict[str, str]

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
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


def require(errors: Errors, name: str, value: str, label: str, max_length: int) -> str:
    if not value:
        errors[name] = f"Enter {label}."
    elif len(value) > max_length:
        errors[name] = f"Keep {label} to {max_length} characters or fewer (it has {len(value)})."
    return value


def limit(errors: Errors, name: str, value: str, label: str, max_length: int) -> str:
    if len(value) > max_length:
        errors[name] = f"Keep {label} to {max_length} characters or fewer (it has {len(value)})."
    return value


def choice(errors: Errors, name: str, value: str, enum: type, label: str) -> Any:
    try:
        return enum(value)
    except ValueError:
        errors[name] = f"Choose {label}."
        return None


def tags(errors: Errors, name: str, raw: str, label: str, pattern: re.Pattern[str],
         lower: bool = True) -> tuple[str, ...]:
    """Comma-separated tags, normalised; one bad tag names itself in the error."""
    found = []
    for part in raw.split(","):
        tag = part.strip()
        if lower:
            tag = re.sub(r"\s+", "-", tag.lower())
        if not tag:
            continue
        if not pattern.match(tag):
            errors[name] = f"“{tag[:40]}” is not a valid {label}."
            return ()
        found.append(tag)
    if len(found) > 12:
        errors[name] = f"Use at most 12 {label}s."
    return tuple(dict.fromkeys(found))


def parse_group_form(form: FormData) -> tuple[GroupDraft | None, Errors]:
    errors: Errors = {}
    name = require(errors, "name", text(form, "name"), "a name", 120)
    summary = require(errors, "summary", text(form, "summary"), "a one-line summary", 280)
    description = limit(errors, "description", text(form, "description"), "the description", 20000)
    agreements = limit(errors, "agreements", text(form, "agreements"), "the agreements", 10000)
    visibility = choice(errors, "visibility", text(form, "visibility"), Visibility, "who can see the group")
    join_policy = choice(errors, "join_policy", text(form, "join_policy"), JoinPolicy, "how people join")
    group_format = choice(errors, "format", text(form, "format"), Format, "a format")
    cost = choice(errors, "cost", text(form, "cost"), Cost, "a cost")
    area = limit(errors, "area", text(form, "area"), "the area", 120)
    address = limit(errors, "address", text(form, "address"), "the address", 300)
    contact = limit(errors, "contact", text(form, "contact"), "the contact", 200)
    if contact and "@" in contact and not EMAIL.match(contact):
        errors["contact"] = "Enter a valid email address, or a link, or leave it empty."
    topics = tags(errors, "topics", text(form, "topics"), "topic", TAG)
    audiences = tags(errors, "audiences", text(form, "audiences"), "audience", TAG)
    languages = tags(errors, "languages", text(form, "languages"), "language code",
                     LANGUAGE_TAG, lower=False)
    if not languages and "languages" not in errors:
        errors["languages"] = "Enter at least one language, such as en or es."
    accessibility = tuple(v for v in form.getlist("accessibility") if isinstance(v, str))
    unknown = [v for v in accessibility if v not in ACCESSIBILITY]
    if unknown:
        errors["accessibility"] = "Choose accessibility features from the list."
    if group_format in (Format.IN_PERSON, Format.HYBRID) and not area:
        errors["area"] = "Enter the neighbourhood or city where the group meets."
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
                           "a display name", 60)
    email = text(form, "email").lower()
    if not EMAIL.match(email) or len(email) > 254:
        errors["email"] = "Enter a valid email address, like name@example.org."
    password = form.get("password", "")
    password_errors = password_problems(password if isinstance(password, str) else "")
    if password_errors:
        errors["password"] = password_errors
    if errors:
        return None, errors
    return {"display_name": display_name, "email": email, "password": password}, errors


def password_problems(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"Use at least {MIN_PASSWORD_LENGTH} characters."
    if len(password) > 1024:
        return "Use at most 1024 characters."
    return ""


def parse_settings(form: FormData) -> tuple[NodeSettings | None, Errors]:
    errors: Errors = {}
    name = require(errors, "name", text(form, "name"), "the node's name", 80)
    description = limit(errors, "description", text(form, "description"), "the description", 5000)
    registration = choice(errors, "registration", text(form, "registration"),
                          RegistrationMode, "how people register")
    language = text(form, "default_language")
    if not LANGUAGE_TAG.match(language):
        errors["default_language"] = "Enter a language code such as en, es or pt-BR."
    crisis = limit(errors, "crisis_notice", text(form, "crisis_notice"), "the notice", 2000)
    if errors:
        return None, errors
    return NodeSettings(name=name, description=description, registration=registration,
                        default_language=language, crisis_notice=crisis), errors


def checked(values: Iterable[str] | str, option: str) -> bool:
    if isinstance(values, str):
        return values == option
    return option in values
