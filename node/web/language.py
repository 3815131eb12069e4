"""The visitor's choices kept in cookies: the language (a small form in every page's
footer) and their own time zone (asked for on online meetings' pages)."""
from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from node.forms import known_timezone, text
from node.i18n import COOKIE, ZONE_COOKIE, gettext, supported, visitor_zone
from node.timezones import zone_menu
from node.web.templating import render, see_other
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


async def choose_zone(request: Request) -> Response:
    """Show times of online meetings in the visitor's own zone too; empty forgets it."""
    back = safe_next(request.query_params.get("next", "/"))
    context = {"zones": zone_menu(visitor_zone()), "zone": visitor_zone() or "", "back": back,
               "errors": {}}
    if request.method == "GET":
        return await render(request, "timezone.html", context)
    form = await request.form()
    zone, back = text(form, "zone"), safe_next(text(form, "next") or "/")
    if zone and not known_timezone(zone):
        return await render(request, "timezone.html", {**context, "back": back, "errors": {
            "zone": gettext("Choose a time zone from the list.")}}, status=400)
    response = see_other(request, back, gettext("Times are shown in %(zone)s too.", zone=zone)
                         if zone else gettext("Times are shown in each meeting's own zone."))
    if zone:
        response.set_cookie(ZONE_COOKIE, zone, max_age=ONE_YEAR, httponly=True, samesite="lax",
                            secure=request.state.config.secure_cookies)
    else:
        response.delete_cookie(ZONE_COOKIE)
    return response
