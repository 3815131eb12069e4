"""Benchmark 2: our signature verifier against the raw RSA verification it wraps.

The request is shaped as Mastodon sends a delivery: POST to the shared inbox,
``headers="(request-target) host date digest content-type"``, rsa-sha256, a
Create{Note} body of about 2 KB, its headers as the inbox hands them over
(a ``HeaderMap`` of the raw pairs an ASGI server passes). One verification is ``verify_request`` then ``check``; the
baseline is ``cryptography``'s RSA-2048 PKCS#1 v1.5 SHA-256 verify of the
same signature over the same signing string with the same, already parsed key.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from bench.common import median
from federation.keys import generate_key, load_public_key, public_pem
from federation.signatures import (
    HeaderMap,
    check,
    parse_signature_header,
    sign_headers,
    verify_request,
)

ACTOR = "https://mastodon.example/users/alice"


def mastodon_request(private_pem: str) -> tuple[str, HeaderMap, bytes]:
    """(path, headers, body) of a delivery as Mastodon 4 signs it."""
    body = json.dumps({
        "@context": ["https://www.w3.org/ns/activitystreams",
                     {"ostatus": "http://ostatus.org#", "sensitive": "as:sensitive",
                      "toot": "http://joinmastodon.org/ns#", "Hashtag": "as:Hashtag"}],
        "id": f"{ACTOR}/statuses/113502938475/activity", "type": "Create", "actor": ACTOR,
        "published": "2026-11-27T10:00:00Z",
        "to": ["https://www.w3.org/ns/activitystreams#Public"], "cc": [f"{ACTOR}/followers"],
        "object": {
            "id": f"{ACTOR}/statuses/113502938475", "type": "Note", "attributedTo": ACTOR,
            "content": "<p>Our grief circle meets again on Tuesday, all welcome. "
                       "Tea and biscuits from 18:30.</p>" * 6,
            "tag": [{"type": "Hashtag", "name": "#grief",
                     "href": "https://mastodon.example/tags/grief"}],
            "to": ["https://www.w3.org/ns/activitystreams#Public"],
            "cc": [f"{ACTOR}/followers"], "sensitive": False,
            "url": "https://mastodon.example/@alice/113502938475",
        },
    }).encode()
    headers = {"Host": "node.example", "Content-Type": "application/activity+json",
               "User-Agent": "http.rb/5.2.0 (Mastodon/4.3.2; +https://mastodon.example/)",
               "Accept-Encoding": "gzip", "Content-Length": str(len(body))}
    headers |= sign_headers("POST", "https://node.example/inbox", headers, body,
                            f"{ACTOR}#main-key", private_pem)
    raw = [(name.lower().encode("latin-1"), value.encode("latin-1"))
           for name, value in headers.items()]
    return "/inbox", HeaderMap.from_raw(raw), body


def _rate(step: Callable[[], None], seconds: float) -> float:
    """Calls per second of ``step`` over about ``seconds``."""
    done, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(100):
            step()
        done += 100
    return done / elapsed


def run(quick: bool = False) -> dict[str, Any]:
    private = generate_key()
    pem = public_pem(private)
    path, headers, body = mastodon_request(private)
    params = parse_signature_header(headers["signature"])
    # The signing string as Mastodon builds it, for the raw verification.
    message = "\n".join(f"{name}: post {path}" if name == "(request-target)"
                        else f"{name}: {headers[name]}" for name in params.headers).encode()
    key = load_public_key(pem)

    def ours() -> None:
        check(verify_request("POST", path, None, headers, body, pem))

    def raw() -> None:
        key.verify(params.signature, message, padding.PKCS1v15(), hashes.SHA256())

    ours(), raw()  # both valid before anything is timed
    seconds = 0.2 if quick else 1.5
    rounds = [(_rate(ours, seconds), _rate(raw, seconds)) for _ in range(1 if quick else 5)]
    ratios = [o / r for o, r in rounds]
    return {"ours_per_s": median([o for o, _ in rounds]),
            "raw_per_s": median([r for _, r in rounds]),
            "ratio": median(ratios), "ratios": ratios}


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
