"""/admin/peers: which nodes this node follows, who follows it, blocks."""
from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response

from federation import peers, store
from node.db import stamp
from node.forms import text
from node.i18n import N_
from node.i18n import gettext as _
from node.storage.audit import record_action
from node.web.auth import require_admin
from node.web.templating import render

# Each action, with what the page says once it is done.
ACTIONS = {
    "follow": N_("Follow request sent to %(peer)s."),
    "unfollow": N_("This node no longer follows %(peer)s."),
    "approve": N_("%(peer)s may now follow this node."),
    "reject": N_("The follow request of %(peer)s is refused."),
    "block": N_("%(peer)s is blocked."),
    "unblock": N_("%(peer)s is no longer blocked."),
}


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
        if action not in ACTIONS:
            errors["target"] = _("Choose an action.")
        elif not target:
            errors["target"] = _("Enter a peer's address, like https://other.example.")
        else:
            try:
                await getattr(peers, action)(fed, target)
                messages.append(_(ACTIONS[action], peer=target))
                await record_action(fed.db, me, f"peer.{action}", target)
            except peers.PeerError as e:
                errors["target"] = str(e)
        if errors:
            values, status = {"target": target}, 400
    stale_before = stamp(datetime.now(UTC) - fed.listing_stale_after)
    return await render(request, "admin_peers.html", {
        "peers": await store.list_peers(fed.db, stale_before),
        "stale_days": fed.listing_stale_after.days,
        "retire_days": fed.listing_retire_after.days,
        "blocked": await store.blocked_domains(fed.db),
        "errors": errors, "messages": messages, "values": values,
    }, status=status)
