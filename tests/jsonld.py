"""JSON-LD expansion against the bundled contexts only: no network, ever."""
from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from pyld import jsonld

CONTEXTS = Path(__file__).resolve().parent.parent / "federation" / "contexts"
BUNDLED = {
    "https://www.w3.org/ns/activitystreams": "activitystreams.jsonld",
    "https://w3id.org/security/v1": "security-v1.jsonld",
}
AS = "https://www.w3.org/ns/activitystreams#"
SEC = "https://w3id.org/security#"
GRASSROOTS = "urn:x-grassroots:ns#"


class NotBundled(Exception):
    """A context URL that is not one of the bundled copies: a document needing the network."""


@cache
def _context(name: str) -> dict[str, Any]:
    return json.loads((CONTEXTS / name).read_text(encoding="utf-8"))


def offline_loader(url: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    name = BUNDLED.get(url.rstrip("/"))
    if name is None:
        raise NotBundled(f"not a bundled context (no network in tests): {url}")
    return {"contentType": "application/ld+json", "contextUrl": None,
            "documentUrl": url, "document": _context(name)}


def expand(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The expanded form; raises if any context is not bundled or the document is invalid."""
    return jsonld.expand(document, {"documentLoader": offline_loader})


def undefined_terms(expanded: Any) -> set[str]:
    """Properties or types that fell through to the AS context's `"@vocab": "_:"`."""
    found: set[str] = set()
    if isinstance(expanded, list):
        for item in expanded:
            found |= undefined_terms(item)
    elif isinstance(expanded, dict):
        for key, value in expanded.items():
            if key.startswith("_:"):
                found.add(key)
            if key == "@type":
                found |= {t for t in (value if isinstance(value, list) else [value])
                          if isinstance(t, str) and t.startswith("_:")}
            if key != "@value":
                found |= undefined_terms(value)
    return found
