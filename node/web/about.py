"""/about and /about/federation: what this node is, its rules, how to reach its admins,
and whom it federates with (its public federation policy)."""
from __future__ import annotations

import httpx
from starlette.requests import Request
from starlette.responses import Response

from federation import store
from node.storage.settings import load_settings
from node.web.templating import render


async def about(request: Request) -> Response:
    following, followers = await store.neighbours(request.state.db)
    return await render(request, "about.html", {"following": len(following),
                                                "followers": len(followers)})


async def about_federation(request: Request) -> Response:
    db = request.state.db
    following, followers = await store.neighbours(db)
    blocks = await store.blocked_domains(db)
    private = (await load_settings(db)).block_list_private
    return await render(request, "about_federation.html", {
        "following": [(n.host, _home(n.actor_id)) for n in following],
        "followers": [(n.host, _home(n.actor_id)) for n in followers],
        "blocked_count": len(blocks),
        "blocks": [] if private else blocks,
        "private": private,
    })


def _home(actor_id: str) -> str:
    """A peer's home page: the root of its node actor's origin."""
    return str(httpx.URL(actor_id).copy_with(path="/", query=None, fragment=None))
