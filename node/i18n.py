"""Languages: catalogues, the language of each request, gettext and Babel formatting.

Catalogues are the ``locales/{lang}/LC_MESSAGES/messages.po`` files, compiled in
memory the first time a page is shown in their language. The language of the
request lives in a ContextVar set by ``LanguageNegotiation``, so handlers, forms
and templates translate without passing it around.
"""
from __future__ import annotations

import functools
import gettext as stdlib_gettext
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from http.cookies import SimpleCookie
from io import BytesIO
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from starlette.types import ASGIApp, Message, Receive, Scope, Send

LANGUAGES = ("en", "de", "es")  # English is the language of the sources
# As CLDR names them; written out so the picker on every page loads no locale data.
OWN_NAMES = {"en": "English", "de": "Deutsch", "es": "español"}
DEFAULT = "en"
COOKIE = "lang"
ZONE_COOKIE = "tz"  # the visitor's own time zone, when they chose one
LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"

# Date and time patterns (CLDR) per language: 'Tue 3 Mar 2026, 19:00', 'Di., 3. März 2026, 19:00'.
DATETIME_PATTERNS = {
    "en": "EEE d MMM y, HH:mm",
    "de": "EEE, d. MMMM y, HH:mm",
    "es": "EEE, d 'de' MMMM 'de' y, HH:mm",
}

_language: ContextVar[str] = ContextVar("language", default=DEFAULT)
_zone: ContextVar[str | None] = ContextVar("zone", default=None)
_catalogues: dict[str, stdlib_gettext.NullTranslations] = {}


def N_(message: str) -> str:
    """Mark a message for extraction; it is translated where it is shown."""
    return message


def current_language() -> str:
    return _language.get()


def use_language(language: str) -> None:
    _language.set(language if language in LANGUAGES else DEFAULT)


@contextmanager
def speaking(language: str) -> Iterator[None]:
    """Translate and format in ``language`` for a while: mail is in its reader's language,
    whoever's request caused it."""
    token = _language.set(language if language in LANGUAGES else DEFAULT)
    try:
        yield
    finally:
        _language.reset(token)


def visitor_zone() -> str | None:
    return _zone.get()


def supported(language: str) -> str | None:
    """The supported language a tag like 'de-AT' or 'ES' means, if any."""
    primary = language.strip().lower().replace("_", "-").split("-")[0]
    return primary if primary in LANGUAGES else None


def catalogue(language: str) -> stdlib_gettext.NullTranslations:
    """The language's translations, compiled from its .po file on first use."""
    found = _catalogues.get(language)
    if found is None:
        found = _catalogues[language] = _compile(language)
    return found


def _compile(language: str) -> stdlib_gettext.NullTranslations:
    po = LOCALES_DIR / language / "LC_MESSAGES" / "messages.po"
    if language == DEFAULT or not po.exists():
        return stdlib_gettext.NullTranslations()
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with po.open("rb") as source:
        messages = read_po(source, locale=language)
    compiled = BytesIO()
    write_mo(compiled, messages)  # fuzzy entries are left out
    compiled.seek(0)
    return stdlib_gettext.GNUTranslations(compiled)


def gettext(message: str, **variables: Any) -> str:
    translated = catalogue(current_language()).gettext(message)
    return translated % variables if variables else translated


def ngettext(singular: str, plural: str, n: int, **variables: Any) -> str:
    translated = catalogue(current_language()).ngettext(singular, plural, n)
    return translated % {"num": n, **variables}


# Formatting ---------------------------------------------------------------------

def format_when(value: datetime, tz: str | None = None) -> str:
    """A moment in ``tz`` (else its own zone), like 'Di., 3. März 2026, 19:00'."""
    from babel.dates import format_datetime

    if tz:
        value = value.astimezone(ZoneInfo(tz))
    language = current_language()
    # The value is already in its zone: Babel is told not to convert it again.
    return format_datetime(value.replace(tzinfo=None), DATETIME_PATTERNS[language],
                           locale=language)


# A whole day in words, as a flyer says it: 'Tuesday 3 March 2026'.
DAY_PATTERNS = {
    "en": "EEEE d MMMM y",
    "de": "EEEE, d. MMMM y",
    "es": "EEEE, d 'de' MMMM 'de' y",
}


def zone_abbreviation(value: datetime, tz: str) -> str:
    """The zone as clocks there name it at that moment: 'CET', 'CEST', 'EST', '-03'."""
    return value.astimezone(ZoneInfo(tz)).tzname() or tz


def in_visitor_zone(value: datetime, tz: str) -> str:
    """'Tue 3 Mar 2026, 13:00 EST' when the visitor's chosen zone reads the moment
    differently from ``tz``; else nothing."""
    mine = _zone.get()
    if mine is None or mine == tz:
        return ""
    if value.astimezone(ZoneInfo(mine)).utcoffset() == value.astimezone(ZoneInfo(tz)).utcoffset():
        return ""
    return f"{format_when(value, mine)} {zone_abbreviation(value, mine)}"


def format_day(value: datetime) -> str:
    """The day of a moment, in words, in the zone it carries."""
    from babel.dates import format_date

    language = current_language()
    return format_date(value.replace(tzinfo=None), DAY_PATTERNS[language], locale=language)


def format_time(value: datetime) -> str:
    from babel.dates import format_time as babel_format_time

    return babel_format_time(value.replace(tzinfo=None), "HH:mm", locale=current_language())


def format_number(value: int | float) -> str:
    from babel.numbers import format_decimal

    return format_decimal(value, locale=current_language())


def language_name(code: str) -> str:
    """A language tag as its name in the visitor's language ('de' → 'German'); else the tag."""
    return _language_name(code, current_language())


@functools.lru_cache(maxsize=4096)
def _language_name(code: str, language: str) -> str:
    from babel import Locale, UnknownLocaleError

    try:
        name = Locale.parse(code.replace("-", "_")).get_display_name(language)
    except (UnknownLocaleError, ValueError, TypeError):
        return code
    return name or code


def install(environment: Any) -> None:
    """Give a Jinja environment (with the i18n extension) gettext and the formatting filters."""
    environment.install_gettext_callables(gettext, ngettext, newstyle=True)
    environment.filters["time"] = format_time
    environment.filters["number"] = format_number
    environment.filters["language_name"] = language_name


# Choosing the language of a request -------------------------------------------------

def from_accept_language(header: str) -> str | None:
    """The best supported language of an Accept-Language header (by q, then order)."""
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")[:32]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        language = supported(tag)
        if language and quality > 0:
            ranked.append((-quality, position, language))
    return min(ranked)[2] if ranked else None


def _cookies(header: str) -> dict[str, str]:
    """The Cookie header's values by name; a malformed header names nothing."""
    cookies: SimpleCookie = SimpleCookie()
    try:
        cookies.load(header)
    except Exception:
        return {}
    return {name: morsel.value for name, morsel in cookies.items()}


def from_cookie(cookies: dict[str, str]) -> str | None:
    value = cookies.get(COOKIE)
    return supported(value) if value else None


def zone_from_cookie(cookies: dict[str, str]) -> str | None:
    from node.forms import known_timezone

    value = cookies.get(ZONE_COOKIE)
    return value if known_timezone(value) else None


class LanguageNegotiation:
    """Set the request's language: the picker's cookie, else Accept-Language, else the
    node's default language; and the visitor's time zone, if they chose one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k: v.decode("latin-1") for k, v in scope["headers"]
                   if k in (b"cookie", b"accept-language")}
        cookies = _cookies(headers.get(b"cookie", ""))
        language = (from_cookie(cookies)
                    or from_accept_language(headers.get(b"accept-language", ""))
                    or await _node_language(scope))
        token = _language.set(language)
        zone_token = _zone.set(zone_from_cookie(cookies))

        async def send_varying(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []),
                                      (b"vary", b"Accept-Language, Cookie")]
            await send(message)

        try:
            await self.app(scope, receive, send_varying)
        finally:
            _language.reset(token)
            _zone.reset(zone_token)


async def _node_language(scope: Scope) -> str:
    from node.storage.settings import load_settings

    db = scope.get("state", {}).get("db")
    if db is None:
        return DEFAULT
    return supported((await load_settings(db)).default_language) or DEFAULT
