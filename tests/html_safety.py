"""The check every rendered or sanitized piece of HTML must pass, shared by the fuzzers."""
from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

from node.text import ALLOWED_TAGS


class _Elements(HTMLParser):
    """Every start tag and its attributes in a piece of HTML."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    handle_startendtag = handle_starttag


def assert_safe_html(html: str) -> None:
    """Only allowed tags; no script, event handler, style or non-http(s)/mailto link."""
    assert not re.search(r"<\s*script", html, re.IGNORECASE), html
    parser = _Elements()
    parser.feed(html)
    parser.close()
    for tag, attrs in parser.tags:
        assert tag in ALLOWED_TAGS, (tag, html)
        for name, value in attrs:
            assert not name.startswith("on") and name != "style", (name, html)
            if name == "href":
                scheme = urlsplit((value or "").strip()).scheme.lower()
                assert scheme in ("", "http", "https", "mailto"), (value, html)
