"""/admin/peers: which nodes this node follows, who follows it, blocks, and what waits to
be delivered to each; /admin/peers/{host}: those deliveries, retried now or dropped."""
from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from federation import peers, store
from federation.context import Federation
from node.db import stamp, timestamp
from node.forms import limit, text
from node.i18n import N_, ngettext
from node.i18n import gettext as _
from node.storage.audit import record_action
from node.web.auth import require_admin
from node.web.confirm import ask, confirmed
from node.web.templating import render, see_other

# Each action, with what the page says once it is done.
ACTIONS = {
    "follow": N_("Follow request sent to %(peer)s."),
    "unfollow": N_("This node no longer follows %(peer)s."),
    "approve": N_("%(peer)s may now follow this node."),
    "reject": N_("The follow request of %(peer)s is refused."),
    "block": N_("%(peer)s is blocked."),
    "unblock": N_("%(peer)s is no longer blocked."),
}
MAX_BLOCK_REASON = 500
PENDING_SHOWN = 100  # deliveries listed on a host's page, oldest first


def _stale_before(fed: Federation) -> str:
    return stamp(datetime.now(UTC) - fed.listing_stale_after)


def host_page(host: str) -> str:
    return f"/admin/peers/{quote(host)}"


async def admin_peers(request: Request) -> Response:
    me = await require_admin(request)
    fed = request.state.federation
    errors: dict[str, str] = {}
    messages: list[str] = []
    values: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        form = await request.form()
        action, target = text(form, "action"), text(form, "target")
        # The block form has its own fields, so its errors show beside them.
        field = "block" if action == "block" else "target"
        reason = limit(errors, "reason", text(form, "reason"), _("the reason"),
                       MAX_BLOCK_REASON) if action == "block" else ""
        if action not in ACTIONS:
            errors["target"] = _("Choose an action.")
        elif not target:
            errors[field] = _("Enter a peer's address, like https://other.example.")
        elif not errors:
            try:
                extra = {"reason": reason} if action == "block" else {}
                await getattr(peers, action)(fed, target, **extra)
                messages.append(_(ACTIONS[action], peer=target))
                await record_action(fed.db, me, f"peer.{action}",
                                    f"{target}: {reason}" if reason else target)
            except peers.PeerError as e:
                errors[field] = str(e)
        if errors:
            values, status = {field: target, "reason": reason}, 400
    return await render(request, "admin_peers.html", {
        "hosts": await peers.overview(fed.db, _stale_before(fed)),
        "stale_days": fed.listing_stale_after.days,
        "retire_days": fed.listing_retire_after.days,
        "inbox_limits": fed.inbox_limits,
        "blocked": await store.blocked_domains(fed.db),
        "now": timestamp(),
        "errors": errors, "messages": messages, "values": values,
    }, status=status)


async def host_deliveries(request: Request) -> Response:
    """One host's waiting and failed deliveries; POST retries or drops them, all or one."""
    me = await require_admin(request)
    fed = request.state.federation
    host = request.path_params["host"]
    found = await peers.host_status(fed.db, host, _stale_before(fed))
    inboxes = found.deliveries.inboxes
    if request.method == "POST":
        form = await request.form()
        action, raw_id = text(form, "action"), text(form, "delivery")
        if raw_id and not raw_id.isdigit():
            raise HTTPException(400, _("Unknown delivery."))
        one = int(raw_id) if raw_id else None
        if action == "retry":
            if found.blocked:
                return see_other(request, host_page(host), _(
                    "%(host)s is blocked: unblock it before retrying its deliveries.", host=host))
            count = await store.retry_deliveries(fed.db, inboxes, one)
            fed.wake_delivery.set()
            message = ngettext("%(num)s delivery to %(host)s is due now.",
                               "%(num)s deliveries to %(host)s are due now.", count, host=host)
        elif action == "drop":
            if not confirmed(form):
                return await ask(request, form, back=host_page(host), **_drop_question(
                    host, one, found.deliveries.queued + found.deliveries.failed))
            count = await store.drop_deliveries(fed.db, inboxes, one)
            message = ngettext(
                "%(num)s delivery to %(host)s is dropped: it will never be sent.",
                "%(num)s deliveries to %(host)s are dropped: they will never be sent.",
                count, host=host)
        else:
            raise HTTPException(400, _("Unknown delivery action."))
        if count == 0:
            message = _("Nothing changed: those deliveries were sent or dropped meanwhile.")
        else:
            await record_action(fed.db, me, f"delivery.{action}", f"delivery {one} to {host}"
                                if one else f"{count} deliveries to {host}")
        return see_other(request, host_page(host), message)
    pending, total = await store.pending_deliveries(fed.db, inboxes, PENDING_SHOWN)
    return await render(request, "admin_peer.html", {
        "h": found, "pending": pending, "total": total, "now": timestamp(),
    })


def _drop_question(host: str, one: int | None, count: int) -> dict[str, str]:
    if one is not None:
        return {"question": _("Drop delivery %(id)s to %(host)s? It will never be sent.",
                              id=one, host=host),
                "confirm": _("Yes, drop this delivery")}
    return {"question": ngettext(
        "Drop the %(num)s delivery to %(host)s that is waiting or failed? It will never be sent.",
        "Drop the %(num)s deliveries to %(host)s that are waiting or failed? They will never"
        " be sent.", count, host=host),
        "confirm": _("Yes, drop these deliveries")}
