"""The language picker: a small form in every page's footer."""
from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from node.i18n import COOKIE, supported
from node.web.accounts import safe_next

ONE_YEAR = 365 * 24 * 3600


def _back(request: Request) -> str:
    """The page the form was sent from (Referer is sent same-origin), else the home page."""
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc != request.url.netloc:
        return "/"
    return safe_next(referer.path + (f"?{referer.query}" if referer.query else ""))


async def choose(request: Request) -> Response:
    """Remember the chosen language in a cookie and go back to the page it was chosen on."""
    chosen = (await request.form()).get("lang", "")
    response = RedirectResponse(_back(request), status_code=303)
    language = supported(chosen) if isinstance(chosen, str) else None
    if language:
        response.set_cookie(COOKIE, language, max_age=ONE_YEAR, httponly=True, samesite="lax",
                            secure=request.state.config.secure_cookies)
    return response
