"""Jinja2 pages: one environment, autoescaped, with the node's helpers."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse

from node import i18n
from node.db import parse_stamp
from node.domain import ACCESSIBILITY, ICONS, label
from node.storage.settings import load_settings
from node.text import render_markdown
from node.web.auth import current_account
from node.web.linked_data import event_linked_data, group_linked_data, script_json
from node.web.middleware import csrf_token

TEMPLATES_DIR = Path(__file__).resolve().parent.parent.parent / "templates"


def _when(value: datetime | str, tz: str | None = None) -> str:
    """'Tue 3 Mar 2026, 19:00' (in the visitor's language) in the meeting's own zone."""
    return i18n.format_when(_moment(value), tz)


def _moment(value: datetime | str) -> datetime:
    return parse_stamp(value) if isinstance(value, str) else value


def _zone(value: datetime | str, tz: str) -> str:
    return i18n.zone_abbreviation(_moment(value), tz)


def _yours(value: datetime | str, tz: str) -> str:
    return i18n.in_visitor_zone(_moment(value), tz)


def _label(value: str) -> str:
    return i18n.gettext(label(value))


def _labelled(value: str) -> Markup:
    """The translated label led by its symbol, which screen readers skip."""
    icon = ICONS.get(value)
    text = escape(_label(value))
    return Markup(f'<span aria-hidden="true">{icon}</span> {text}') if icon else text


environment = Environment(
    loader=FileSystemLoader(TEMPLATES_DIR),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
    extensions=["jinja2.ext.i18n"],
)
i18n.install(environment)
environment.filters["markdown"] = render_markdown
environment.filters["label"] = _label
environment.filters["labelled"] = _labelled
environment.filters["when"] = _when
environment.filters["zone"] = _zone
environment.filters["yours"] = _yours
environment.globals["visitor_zone"] = i18n.visitor_zone
environment.globals["ACCESSIBILITY"] = ACCESSIBILITY
environment.filters["script_json"] = script_json
environment.globals["event_linked_data"] = event_linked_data
environment.globals["group_linked_data"] = group_linked_data


FLASH_KEY = "flash"


def see_other(request: Request, url: str, message: str = "") -> RedirectResponse:
    """The answer to a done action: go to ``url``, which confirms it with ``message``."""
    if message:
        request.session[FLASH_KEY] = [*request.session.get(FLASH_KEY, []), message]
    return RedirectResponse(url, status_code=303)


async def render(
    request: Request, template: str, context: dict[str, Any] | None = None, status: int = 200
) -> HTMLResponse:
    page = {
        "request": request,
        "account": await current_account(request),
        "node": await load_settings(request.state.db),
        "csrf_token": csrf_token(request.session),
        "lang": i18n.current_language(),
        "page_languages": i18n.OWN_NAMES,
        **(context or {}),
    }
    # What the last action said first, then what this page says.
    page["messages"] = [*request.session.pop(FLASH_KEY, []), *page.get("messages", [])]
    html = environment.get_template(template).render(page)
    return HTMLResponse(html, status_code=status)
