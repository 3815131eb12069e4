"""Federation endpoints: WebFinger, NodeInfo, actors, collections, inboxes.

Every document here is built from public listings only. The node actor and
its key are served without a signed fetch, so two nodes that verify each
other's fetches never wait on each other.
"""
from __future__ import annotations

import json
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from federation import store
from federation.context import Federation
from federation.documents import (
    CONTEXT,
    collection_page,
    group_actor,
    meeting_note,
    node_actor,
    ordered_collection,
)
from federation.inbox import inbox
from federation.local import NODE, federated_group, group_owner
from federation.publisher import event_document
from node.domain import NodeSettings, RegistrationMode
from node.storage.events import get_event
from node.storage.groups import get_group_by_id
from node.storage.settings import load_settings

AP_TYPE = "application/activity+json"
PAGE_SIZE = 50
PUBLIC_TYPES = ("Create", "Update", "Delete", "Announce")
SOFTWARE = {"name": "grassroots", "version": "0.1.0"}


def ap_response(document: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(document), status_code=status, media_type=AP_TYPE,
                    headers={"Vary": "Accept"})


def not_found(reason: str = "not found") -> Response:
    return Response(reason, status_code=404, media_type="text/plain")


def wants_activitypub(accept: str) -> bool:
    """An ActivityPub media type, or plain JSON rather than a page (as Mastodon answers)."""
    accept = accept.lower()
    return AP_TYPE in accept or ("application/ld+json" in accept
                                 and "https://www.w3.org/ns/activitystreams" in accept) \
        or ("application/json" in accept and "text/html" not in accept)


def _fed(request: Request) -> Federation:
    return request.state.federation


# Discovery -----------------------------------------------------------------------

async def webfinger(request: Request) -> Response:
    fed = _fed(request)
    resource = request.query_params.get("resource", "")
    if not resource:
        return Response("resource is required", status_code=400, media_type="text/plain")
    actor = None
    match = re.fullmatch(r"acct:([^@]+)@(.+)", resource)
    if match and match.group(2).lower() == fed.urls.host.lower():
        name = match.group(1).lower()  # slugs are lower-case; handles are not case-sensitive
        if name == fed.urls.host:
            actor = fed.urls.node_actor
        elif await federated_group(fed, name):
            actor = fed.urls.group(name)
    elif resource == fed.urls.node_actor:
        actor = fed.urls.node_actor
    elif resource.startswith(fed.urls.base + "/groups/"):
        slug = resource.removeprefix(fed.urls.base + "/groups/")
        actor = resource if await federated_group(fed, slug) else None
    if actor is None:
        return not_found("no such account")
    username = fed.urls.host if actor == fed.urls.node_actor else actor.rsplit("/", 1)[1]
    document = {
        "subject": f"acct:{username}@{fed.urls.host}",
        "aliases": [actor],
        "links": [
            {"rel": "self", "type": AP_TYPE, "href": actor},
            {"rel": "http://webfinger.net/rel/profile-page", "type": "text/html",
             "href": actor if actor != fed.urls.node_actor else fed.urls.base + "/"},
        ],
    }
    return JSONResponse(document, media_type="application/jrd+json",
                        headers={"Access-Control-Allow-Origin": "*"})


async def host_meta(request: Request) -> Response:
    base = _fed(request).urls.base
    xml = ('<?xml version="1.0" encoding="UTF-8"?>\n'
           '<XRD xmlns="http://docs.oasis-open.org/ns/xri/xrd-1.0">\n'
           f'  <Link rel="lrdd" template="{base}/.well-known/webfinger?resource={{uri}}"/>\n'
           '</XRD>\n')
    return Response(xml, media_type="application/xrd+xml",
                    headers={"Access-Control-Allow-Origin": "*"})


async def nodeinfo_links(request: Request) -> Response:
    base = _fed(request).urls.base
    return JSONResponse({"links": [{
        "rel": "http://nodeinfo.diaspora.software/ns/schema/2.1",
        "href": f"{base}/nodeinfo/2.1"}]}, headers={"Access-Control-Allow-Origin": "*"})


async def nodeinfo(request: Request) -> Response:
    db = _fed(request).db
    settings = await load_settings(db)
    users = await db.fetchval("SELECT count(*) FROM accounts WHERE status = 'active'")
    groups = await db.fetchval("SELECT count(*) FROM groups WHERE origin IS NULL"
                               " AND visibility = 'public'"
                               " AND (review IS NULL OR review = 'approved')")
    document = {
        "version": "2.1",
        "software": {**SOFTWARE, "homepage": _fed(request).urls.base + "/"},
        "protocols": ["activitypub"],
        "services": {"inbound": [], "outbound": ["atom1.0"]},
        "openRegistrations": settings.registration is RegistrationMode.OPEN,
        # Aggregate counts only: how many, never who.
        "usage": {"users": {"total": users}, "localPosts": groups},
        "metadata": await _metadata(_fed(request), settings),
    }
    return JSONResponse(document, media_type=(
        'application/json; profile="http://nodeinfo.diaspora.software/ns/schema/2.1#"'),
        headers={"Access-Control-Allow-Origin": "*"})


async def _metadata(fed: Federation, settings: NodeSettings) -> dict[str, Any]:
    """What /about says, in the keys other servers use: nodeName and nodeDescription as
    Mastodon and GoToSocial, maintainer as Misskey, and the block list as Pleroma and
    Akkoma publish it (``mrf_simple``), which block-list tools read."""
    following, followers = await store.neighbours(fed.db)
    blocks = await store.blocked_domains(fed.db)
    policy: dict[str, Any] = {
        "enabled": True,
        "following": len(following),
        "followers": len(followers),
        "blockedDomains": len(blocks),
        "exclusions": settings.block_list_private,  # Pleroma's "some is not shown"
    }
    if not settings.block_list_private:
        policy["mrf_simple"] = {"reject": [b.domain for b in blocks]}
        policy["mrf_simple_info"] = {
            "reject": {b.domain: {"reason": b.reason} for b in blocks if b.reason}}
    metadata: dict[str, Any] = {
        "nodeName": settings.name,
        "nodeDescription": settings.description,
        "registrationMode": settings.registration.value,
        "rulesUrl": f"{fed.urls.base}/about#rules",
        "federationPolicyUrl": f"{fed.urls.base}/about/federation",
        "federation": policy,
    }
    if settings.contact_address:
        metadata["maintainer"] = {"email": settings.contact_address}
    return metadata


# Actors and collections ------------------------------------------------------------

async def node_actor_document(request: Request) -> Response:
    fed = _fed(request)
    key = await store.key_for(fed.db, NODE)
    return ap_response(node_actor(fed.urls, await load_settings(fed.db), key.public_pem))


def _seq(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


async def _outbox(request: Request, owner: str | None, collection_id: str) -> Response:
    """The collection (``first`` the newest page, ``last`` the oldest, as Mastodon pages),
    or one page, newest first within it: ``?page=1``, ``?before=SEQ`` (older, linked as
    ``next``) or ``?after=SEQ`` (newer, linked as ``prev``)."""
    db = _fed(request).db
    query = request.query_params
    if not {"page", "before", "after"} & query.keys():
        total = await store.outbox_total(db, owner, PUBLIC_TYPES)
        return ap_response(ordered_collection(collection_id, total, f"{collection_id}?page=1")
                           | {"last": f"{collection_id}?after=0"})
    before, after = _seq(query.get("before")), _seq(query.get("after"))
    if "after" in query:
        after = after or 0
        page_id = f"{collection_id}?after={after}"
    else:
        page_id = f"{collection_id}?before={before}" if before else f"{collection_id}?page=1"
    items = await store.outbox_page(db, owner, PUBLIC_TYPES, before=None if after is not None
                                    else before, after=after, limit=PAGE_SIZE)
    full = len(items) == PAGE_SIZE
    older = items and (after if after is not None else full)
    newer = items and (full if after is not None else before)
    document = collection_page(
        page_id, collection_id, [{k: v for k, v in a.items() if k != "@context"}
                                 for _, a in items],
        f"{collection_id}?before={items[-1][0]}" if older else None)
    if newer:
        document["prev"] = f"{collection_id}?after={items[0][0]}"
    return ap_response(document)


async def node_outbox(request: Request) -> Response:
    return await _outbox(request, None, _fed(request).urls.node_actor + "/outbox")


async def node_followers(request: Request) -> Response:
    fed = _fed(request)
    count = len(await store.follower_inboxes(fed.db))
    return ap_response(ordered_collection(fed.urls.node_actor + "/followers", count, None))


async def node_following(request: Request) -> Response:
    fed = _fed(request)
    count = sum(p.following == "accepted" for p in await store.list_peers(fed.db))
    return ap_response(ordered_collection(fed.urls.node_actor + "/following", count, None))


async def group_outbox(request: Request) -> Response:
    fed = _fed(request)
    group = await federated_group(fed, request.path_params["slug"])
    if group is None:
        return not_found()
    return await _outbox(request, group_owner(group), fed.urls.group(group.slug) + "/outbox")


async def group_followers(request: Request) -> Response:
    """A count only: who follows a support group is nobody's business."""
    fed = _fed(request)
    group = await federated_group(fed, request.path_params["slug"])
    if group is None:
        return not_found()
    count = await store.group_follower_count(fed.db, group.id)
    return ap_response(ordered_collection(fed.urls.group(group.slug) + "/followers", count,
                                          None))


async def activity_document(request: Request) -> Response:
    fed = _fed(request)
    found = await store.get_activity(fed.db, f"{fed.urls.base}/activities/"
                                             f"{request.path_params['id']}")
    if found is None or found.get("type") not in PUBLIC_TYPES:
        return not_found()
    return ap_response(found)


ROUTES = [
    Route("/.well-known/webfinger", webfinger),
    Route("/.well-known/host-meta", host_meta),
    Route("/.well-known/nodeinfo", nodeinfo_links),
    Route("/nodeinfo/2.1", nodeinfo),
    Route("/actor", node_actor_document),
    Route("/actor/outbox", node_outbox),
    Route("/actor/followers", node_followers),
    Route("/actor/following", node_following),
    Route("/actor/inbox", inbox, methods=["POST"]),
    Route("/inbox", inbox, methods=["POST"]),
    Route("/groups/{slug}/inbox", inbox, methods=["POST"]),
    Route("/groups/{slug}/outbox", group_outbox),
    Route("/groups/{slug}/followers", group_followers),
    Route("/activities/{id}", activity_document),
]
INBOX_PATH = re.compile(r"/inbox|/actor/inbox|/groups/[^/]+/inbox")


class InboxFirst:
    """Inbox POSTs go straight to the inbox, past the page middleware and its headers.

    They carry no session cookie and no CSRF token (their signature is their
    proof) and want no negotiation; every other request goes on to ``app``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive_: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" \
                and INBOX_PATH.fullmatch(scope["path"]):
            await inbox(scope, receive_, send)
        else:
            await self.app(scope, receive_, send)


# Content negotiation on the HTML URLs -------------------------------------------------

GROUP_PATH = re.compile(r"^/groups/([a-z0-9-]+)$")
EVENT_PATH = re.compile(r"^/events/(\d+)(/note)?$")


class ActivityPubNegotiation:
    """GET /groups/{slug} and /events/{id} with an ActivityPub Accept get the AP document."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive_: Receive, send: Send) -> None:
        if (scope["type"] == "http" and scope["method"] in ("GET", "HEAD")
                and (GROUP_PATH.match(scope["path"]) or EVENT_PATH.match(scope["path"]))):
            request = Request(scope)
            if wants_activitypub(request.headers.get("accept", "")):
                document = await self._document(scope["state"]["federation"], scope["path"])
                response = ap_response(document) if document else not_found()
                await response(scope, receive_, send)
                return
        await self.app(scope, receive_, send)

    async def _document(self, fed: Federation, path: str) -> dict[str, Any] | None:
        if match := GROUP_PATH.match(path):
            group = await federated_group(fed, match.group(1))
            if group is None:
                return None
            key = await store.key_for(fed.db, group_owner(group))
            return group_actor(fed.urls, group, key.public_pem)
        if match := EVENT_PATH.match(path):
            event = await get_event(fed.db, int(match.group(1)))
            group = await get_group_by_id(fed.db, event.group_id) if event else None
            if event is None or group is None or \
                    await federated_group(fed, group.slug) is None:
                return None
            document = await event_document(fed, event, group)
            if match.group(2):  # the Note microblog followers were sent
                return {"@context": CONTEXT, **meeting_note(document)}
            return document
        return None
