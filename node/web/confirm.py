"""A step before actions that are hard to take back: a page that asks, with no script.

The handler answers an unconfirmed form with `ask`, which shows the question and
posts the same fields again with ``confirmed=yes``.
"""
from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from node.web.templating import render

CONFIRMED = "confirmed"


def confirmed(form: FormData) -> bool:
    return form.get(CONFIRMED) == "yes"


async def ask(request: Request, form: FormData, *, question: str, confirm: str,
              back: str) -> Response:
    """The confirmation page: ``question``, a ``confirm`` button, and a way ``back``."""
    fields = [(name, value) for name, value in form.multi_items()
              if name not in ("csrf_token", CONFIRMED) and isinstance(value, str)]
    return await render(request, "confirm.html", {
        "question": question, "confirm": confirm, "back": back,
        "action": request.url.path, "fields": fields,
    })
