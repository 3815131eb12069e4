"""The node's ASGI application, assembled in one place."""
from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from federation import web as federation_web
from federation.acceptor import InboxAcceptor
from node.background import Heartbeats, heartbeats
from node.config import Config, load_config
from node.db import database_at
from node.i18n import N_, LanguageNegotiation, gettext
from node.metrics import Metrics
from node.security import FailureLimiter, MailLimits
from node.storage.events import refresh_occurrences
from node.web import (
    about,
    account_data,
    accounts,
    admin,
    agreements,
    calendar,
    directory,
    embeds,
    events,
    feeds,
    flyers,
    groups,
    health,
    language,
    moderation,
    notices,
    password_reset,
    peers,
    practice,
    pulses,
    resources,
    review,
    rota,
    themes,
)
from node.web.auth import LoginRequired
from node.web.middleware import CSRFProtect, SecurityHeaders
from node.web.observe import ObserveRequests
from node.web.proxy import ProxyHeaders
from node.web.templating import TEMPLATES_DIR, render
from node.work import federation_for, mailer_for, start_work, stop_work

ROUTES = federation_web.ROUTES + [
    Route("/", directory.home),
    Route("/groups", directory.groups_page),
    Route("/groups/new", groups.create, methods=["GET", "POST"]),
    Route("/groups/{slug}", groups.show),
    Route("/groups/{slug}/edit", groups.edit, methods=["GET", "POST"]),
    Route("/groups/{slug}/join", groups.join, methods=["POST"]),
    Route("/groups/{slug}/leave", groups.leave, methods=["POST"]),
    Route("/groups/{slug}/delete", groups.delete, methods=["POST"]),
    Route("/groups/{slug}/members", groups.members, methods=["GET", "POST"]),
    Route("/groups/{slug}/practice", practice.settings, methods=["GET", "POST"]),
    Route("/groups/{slug}/agreements", agreements.page),
    Route("/groups/{slug}/agreements/versions/{number:int}", agreements.version),
    Route("/groups/{slug}/agreements/propose", agreements.propose, methods=["GET", "POST"]),
    Route("/groups/{slug}/agreements/proposals/{id:int}", agreements.proposal,
          methods=["GET", "POST"]),
    Route("/groups/{slug}/agreements/accept", agreements.accept, methods=["POST"]),
    Route("/groups/{slug}/resources", resources.resources_page, methods=["GET", "POST"]),
    Route("/groups/{slug}/resources/{id:int}/edit", resources.edit, methods=["GET", "POST"]),
    Route("/groups/{slug}/resources/{id:int}/delete", resources.delete, methods=["POST"]),
    Route("/groups/{slug}/resources/{id:int}/public", resources.publicity, methods=["POST"]),
    Route("/groups/{slug}/report", moderation.report_group, methods=["GET", "POST"]),
    Route("/groups/{slug}/events/new", events.create, methods=["GET", "POST"]),
    Route("/groups/{slug}/events.ics", feeds.group_calendar),
    Route("/groups/{slug}/flyer", flyers.group_flyer),
    Route("/groups/{slug}/flyer.pdf", flyers.group_flyer_pdf),
    Route("/groups/{slug}/embed", embeds.group_embed_help),
    Route("/groups/{slug}/embed.html", embeds.group_embed),
    Route("/groups/{slug}/meetings.json", embeds.group_meetings_json),
    Route("/events", calendar.calendar_page),
    Route("/events/{id:int}", events.show),
    Route("/events/{id:int}.ics", feeds.meeting_calendar),
    Route("/events/{id:int}/edit", events.edit, methods=["GET", "POST"]),
    Route("/events/{id:int}/occurrence", events.change_occurrence, methods=["POST"]),
    Route("/events/{id:int}/cancel", events.cancel, methods=["POST"]),
    Route("/events/{id:int}/rsvp", events.rsvp, methods=["POST"]),
    Route("/events/{id:int}/rota", rota.change, methods=["POST"]),
    Route("/events/{id:int}/pulse", pulses.answer, methods=["POST"]),
    Route("/events/{id:int}/themes", themes.propose, methods=["POST"]),
    Route("/events/{id:int}/themes/withdraw", themes.withdraw, methods=["POST"]),
    Route("/events/{id:int}/themes/support", themes.support, methods=["POST"]),
    Route("/events/{id:int}/theme", themes.choose, methods=["POST"]),
    Route("/events/{id:int}/report", moderation.report_event, methods=["GET", "POST"]),
    Route("/events/{id:int}/flyer", flyers.event_flyer),
    Route("/events/{id:int}/flyer.pdf", flyers.event_flyer_pdf),
    Route("/events.ics", feeds.node_calendar),
    Route("/feed.atom", feeds.atom),
    Route("/meetings.json", embeds.node_meetings_json),
    Route("/embed/meetings.html", embeds.node_embed),
    Route("/register", accounts.register, methods=["GET", "POST"]),
    Route("/login", accounts.login, methods=["GET", "POST"]),
    Route("/login/link/{token}", accounts.login_link, methods=["GET", "POST"]),
    Route("/login/reset", password_reset.request_link, methods=["GET", "POST"]),
    Route("/login/reset/{token}", password_reset.choose_password, methods=["GET", "POST"]),
    Route("/logout", accounts.logout, methods=["POST"]),
    Route("/account", accounts.account, methods=["GET", "POST"]),
    Route("/account/delete", accounts.delete, methods=["GET", "POST"]),
    Route("/account/verify", accounts.resend_verification, methods=["POST"]),
    Route("/account/verify/{token}", accounts.verify_address, methods=["GET", "POST"]),
    Route("/account/email/{token}", accounts.confirm_address, methods=["GET", "POST"]),
    Route("/account/export", account_data.export_json),
    Route("/account/export.ics", account_data.export_calendar),
    Route("/account/mail", notices.preferences, methods=["GET", "POST"]),
    Route("/unsubscribe/{token}", notices.unsubscribe, methods=["GET", "POST"]),
    Route("/admin/settings", admin.settings, methods=["GET", "POST"]),
    Route("/admin/accounts", admin.accounts, methods=["GET", "POST"]),
    Route("/admin/peers", peers.admin_peers, methods=["GET", "POST"]),
    Route("/admin/peers/{host}", peers.host_deliveries, methods=["GET", "POST"]),
    Route("/admin/reports", moderation.admin_reports),
    Route("/admin/reports/{id:int}", moderation.report_action, methods=["POST"]),
    Route("/admin/listings", moderation.admin_listings, methods=["POST"]),
    Route("/admin/groups", review.admin_groups),
    Route("/admin/groups/{id:int}", review.review_action, methods=["POST"]),
    Route("/admin/audit", moderation.audit),
    Route("/about", about.about),
    Route("/about/federation", about.about_federation),
    Route("/healthz", health.healthz),
    Route("/readyz", health.readyz),
    Route("/metrics", health.metrics),
    Route("/language", language.choose, methods=["POST"]),
    Route("/timezone", language.choose_zone, methods=["GET", "POST"]),
    Mount("/static", StaticFiles(directory=TEMPLATES_DIR / "static"), name="static"),
]



async def _login_required(request: Request, exc: Exception) -> Response:
    return RedirectResponse(f"/login?next={request.url.path}", status_code=303)


MESSAGES = {
    403: N_("You do not have permission to do this."),
    404: N_("There is nothing here. The page may have moved, or you may need to log in."),
    405: N_("This page does not accept that kind of request."),
}


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = exc.detail if exc.detail and exc.detail not in ("Not Found", "Forbidden") else ""
    if not detail and exc.status_code in MESSAGES:
        detail = gettext(MESSAGES[exc.status_code])
    return await render(
        request,
        "error.html",
        {"status": exc.status_code, "detail": detail},
        status=exc.status_code,
    )


# serve --workers: (data directory, public URL, dev) for each web process to make its app.
WEB_PROCESS = "_GRASSROOTS_WEB_PROCESS"


def web_process() -> Starlette:
    """The app of one of ``serve --workers``' web processes: requests only."""
    data, public_url, dev = json.loads(os.environ[WEB_PROCESS])
    return create_app(load_config(Path(data), public_url), dev=dev, work=False)


def create_app(config: Config, dev: bool = False, work: bool = True) -> Starlette:
    """The node; ``dev`` lets it federate with http:// and private-address peers.
    ``work``: the process also does the node's work beside answering (node.work); without
    it, worker processes on the same PostgreSQL database do (``serve --workers``)."""
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        db = database_at(config.database)
        await db.open()
        await refresh_occurrences(db)
        beats = Heartbeats()
        heartbeats.set(beats)  # every worker loop started below reports to it
        metrics = Metrics()
        federation = federation_for(db, config, dev, events=metrics)
        acceptor = InboxAcceptor(db)
        acceptor.start()
        # Without the work here, a wake-up reaches no loop: the workers poll the outbox.
        mailer = mailer_for(db, config)
        running = await start_work(config, federation, mailer) if work else None
        try:
            yield {
                "db": db,
                "config": config,
                "fetcher": federation.fetcher,
                "federation": federation,
                "acceptor": acceptor,
                "mailer": mailer,  # enqueue with node.storage.mail, then mailer.wake()
                # (per account, per address): failed logins in a 15-minute window
                "login_limits": (FailureLimiter(5, 900), FailureLimiter(30, 900)),
                "mail_limits": MailLimits(),  # registrations and links asked for, an hour
                "metrics": metrics,
                "readiness": health.Readiness(db, config, beats),
            }
        finally:
            # The server has answered its last request: store what is waiting, then let
            # the work finish what it is doing (SIGTERM drains; it never half-applies).
            await acceptor.stop()
            if running is not None:
                await stop_work(running)
            await federation.fetcher.aclose()
            await db.close()

    middleware = [
        # First: every rate limit after it, the inbox's too, counts the real client.
        Middleware(ProxyHeaders, trusted=config.trusted_proxies),
        Middleware(ObserveRequests),  # before InboxFirst: inbox POSTs are requests too
        Middleware(federation_web.InboxFirst),
        Middleware(SecurityHeaders),
        Middleware(LanguageNegotiation),
        Middleware(
            SessionMiddleware,
            secret_key=config.secret_key,
            session_cookie="grassroots_session",
            same_site="lax",
            https_only=config.secure_cookies,
        ),
        Middleware(CSRFProtect),
        Middleware(federation_web.ActivityPubNegotiation),
    ]
    return Starlette(
        routes=ROUTES,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={LoginRequired: _login_required, HTTPException: _http_error},
    )
