"""ASGI middleware: security headers, body size cap and CSRF protection."""
from __future__ import annotations

import hmac
import re
import secrets
from urllib.parse import parse_qs

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from node.i18n import gettext as _

MAX_FORM_BYTES = 256 * 1024
CSRF_FIELD = "csrf_token"
CSRF_SESSION_KEY = "csrf"
# RFC 8058 one-click unsubscribe: mail providers POST here with no cookies and no token;
# the signed token in the path is the authority (node.web.notices).
CSRF_EXEMPT = re.compile(r"/unsubscribe/[^/]+")

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    h for h in SECURITY_HEADERS if h[0] not in present
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def csrf_token(session: dict) -> str:
    """The session's CSRF token, created on first use."""
    token = session.get(CSRF_SESSION_KEY)
    if not token:
        token = session[CSRF_SESSION_KEY] = secrets.token_urlsafe(32)
    return token


class CSRFProtect:
    """Refuse any state-changing request without the session's CSRF token.

    The body is read here (capped), checked, and replayed to the app, so no
    handler can forget the check. Signed federation inboxes never reach it
    (federation.web.InboxFirst comes first).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS")
                or CSRF_EXEMPT.fullmatch(scope["path"])):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if not headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            await PlainTextResponse(_("Forms must be sent as URL-encoded form data."), 415)(
                scope, receive, send
            )
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > MAX_FORM_BYTES:
                await PlainTextResponse(_("The form is too large."), 413)(scope, receive, send)
                return
        sent = parse_qs(body.decode("latin-1")).get(CSRF_FIELD, [""])[0]
        expected = scope.get("session", {}).get(CSRF_SESSION_KEY, "")
        if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
            await PlainTextResponse(
                _("This form has expired or did not come from this site. "
                  "Go back, reload the page and try again."),
                403,
            )(scope, receive, send)
            return

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
