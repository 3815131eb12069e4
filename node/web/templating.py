"""Jinja2 pages: one environment, autoescaped, with the node's helpers."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from node.db import parse_stamp
from node.domain import ACCESSIBILITY, label
from node.storage.settings import load_settings
from node.text import render_markdown
from node.web.auth import current_account
from node.web.middleware import csrf_token

TEMPLATES_DIR = Path(__file__).resolve().parent.parent.parent / "templates"


def _when(value: datetime | str, tz: str | None = None) -> str:
    """'Tue 3 Mar 2026, 19:00' in the meeting's own zone."""
    if isinstance(value, str):
        value = parse_stamp(value)
    if tz:
        value = value.astimezone(ZoneInfo(tz))
    return f"{value:%a} {value.day} {value:%b %Y, %H:%M}"


environment = Environment(
    loader=FileSystemLoader(TEMPLATES_DIR),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
    enable_async=True,
    extensions=["jinja2.ext.i18n"],
)
environment.install_null_translations(newstyle=True)
environment.filters["markdown"] = render_markdown
environment.filters["label"] = label
environment.filters["when"] = _when
environment.globals["ACCESSIBILITY"] = ACCESSIBILITY


async def render(
    request: Request, template: str, context: dict[str, Any] | None = None, status: int = 200
) -> HTMLResponse:
    page = {
        "request": request,
        "account": await current_account(request),
        "node": await load_settings(request.state.db),
        "csrf_token": csrf_token(request.session),
        **(context or {}),
    }
    html = await environment.get_template(template).render_async(page)
    return HTMLResponse(html, status_code=status)
