"""Every request, observed: an id, one log line and its count and time in the metrics.

The id is the request's sane ``X-Request-ID`` or a new one, and is sent back in
the answer's. Requests are named by their route's template (``/groups/{slug}``),
never by the path or query they carried.
"""
from __future__ import annotations

import logging
import re
import secrets
import time

from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from node.logs import request_id

log = logging.getLogger("node.requests")

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")
UNMATCHED = "unmatched"  # no route: one label for every path nobody serves


class ObserveRequests:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _incoming_id(scope) or secrets.token_hex(8)
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 500  # unless an answer starts: an exception escaped

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()),
                                                  (b"x-request-id", rid.encode("ascii"))]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            method = scope["method"] if scope["method"] in METHODS else "other"
            route = route_template(scope)
            if (metrics := scope.get("state", {}).get("metrics")) is not None:
                metrics.request_answered(method, route, status, seconds)
            log.info("%s %s %d %.1f ms", method, route, status, seconds * 1000,
                     extra={"method": method, "route": route, "status": status,
                            "duration_ms": round(seconds * 1000, 1), "request_id": rid})
            request_id.reset(token)


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id" and SANE_REQUEST_ID.fullmatch(value):
            return value.decode("ascii")
    return None


def route_template(scope: Scope) -> str:
    """The template of the route that answered, as the router chose it.

    Requests answered before the router (inbox POSTs, ActivityPub documents) or
    under a middleware that copied the scope are matched here the same way.
    """
    route: BaseRoute | None = scope.get("route")
    if route is None:
        partial = None
        for candidate in getattr(scope.get("app"), "routes", ()):
            match, _ = candidate.matches(scope)
            if match is Match.FULL:
                route = candidate
                break
            if match is Match.PARTIAL and partial is None:
                partial = candidate
        route = route or partial
    if isinstance(route, Mount):
        return route.path + "/{path}"
    return getattr(route, "path", None) or UNMATCHED
