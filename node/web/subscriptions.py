"""A search of the directory or the calendar as something to subscribe to."""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

from starlette.requests import Request

# The pages' own parameters; the rest are the directory's filters, which a saved search keeps.
PAGE_PARAMS = {"view", "month", "from", "to", "page"}


def filter_params(request: Request) -> list[tuple[str, str]]:
    """The directory filters of this request, as a saved search carries them."""
    return [(k, v) for k, v in request.query_params.multi_items()
            if k not in PAGE_PARAMS and v]


@dataclass(frozen=True, slots=True)
class Subscriptions:
    """Where a search is served as a calendar (webcal:// for calendar apps), a feed and
    the calendar page; ``filtered`` if it narrows anything."""

    webcal: str
    ics: str
    atom: str
    calendar: str
    filtered: bool


def subscriptions(request: Request) -> Subscriptions:
    public = request.state.config.public_url
    search = urlencode(filter_params(request))
    suffix = f"?{search}" if search else ""
    parts = urlsplit(public)
    return Subscriptions(
        webcal=urlunsplit(("webcal", parts.netloc, parts.path + "/events.ics", search, "")),
        ics=f"{public}/events.ics{suffix}",
        atom=f"{public}/feed.atom{suffix}",
        calendar=f"/events{suffix}",
        filtered=bool(search),
    )
