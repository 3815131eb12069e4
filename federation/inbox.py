"""POST /inbox, /actor/inbox and /groups/{slug}/inbox: a verified activity, stored once, 202.

`receive` needs on `request.state`: `federation` (its database, fetcher and
URLs; it signs key fetches and wakes the runner) and `acceptor`
(federation.acceptor.InboxAcceptor, which commits concurrent arrivals
together). It reads the body within a cap, checks
who claims to send it and from where, refuses peers the policy does not
admit before fetching anything, verifies the HTTP signature against the key
owner's key, and stores the raw activity once by id, durably, before the 202;
the runner applies it later. Every refusal is a one-line text/plain reason;
bodies are never logged.
"""
from __future__ import annotations

import logging
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from federation import ratelimit, store
from federation.acceptor import NotAccepted
from federation.actors import ActorError, ActorGone, key_for_signature
from federation.addresses import normalise_host, url_host
from federation.context import Federation
from federation.fetch import MAX_URL_LENGTH, FetchError, parse_json_document
from federation.local import node_auth
from federation.signatures import (
    SignatureError,
    Verification,
    check,
    parse_signature_header,
    verify_request,
)
from node.db import Database

MAX_BODY_BYTES = 1_000_000
MAX_TYPE_LENGTH = 64
ACTIVITY_MEDIA_TYPES = frozenset({"application/activity+json", "application/ld+json"})
# Their embedded object may be on another host: an Announce's is refetched from its
# origin by the handler; an Accept's or Reject's is our own Follow, matched to our record.
_FOREIGN_OBJECT_TYPES = frozenset({"Announce", "Accept", "Reject"})
_KNOWN_ACTOR_TYPES = frozenset({"Undo", "Delete"})
_FOLLOWING = frozenset({"requested", "accepted"})
_FOLLOWER = frozenset({"approved"})

log = logging.getLogger(__name__)


class Refused(Exception):
    """Ends the request early with `status` and a one-line reason; nothing is stored.

    A 4xx, or the 202 that acknowledges and drops a deleted actor's Delete.
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


async def receive(request: Request) -> Response:
    fed: Federation = request.state.federation
    if (throttled := ratelimit.refusal(request, fed.inbox_limits)):
        return throttled
    try:
        body = await _read_body(request)
        activity = _parse_activity(body)
        actor_host = _check_origin(activity, fed.urls.host)
        await _check_admitted(fed.db, activity, actor_host)
        actor = await _verified_signer(request, fed, body, activity)
        if actor.id != activity["actor"]:
            raise Refused(403, "the signing key's owner is not the activity's actor")
    except Refused as refusal:
        log.info("inbox %s: %s", refusal.status, refusal.reason)
        return PlainTextResponse(refusal.reason, status_code=refusal.status)
    try:  # the 202 follows a durable commit, shared with the requests arriving meanwhile
        await request.state.acceptor.accept(store.Arrival(
            activity["id"], actor.id, actor.host, activity["type"], body.decode("utf-8")))
    except NotAccepted as failure:
        return PlainTextResponse(str(failure), status_code=503, headers={"Retry-After": "30"})
    fed.wake_inbox.set()
    return Response(status_code=202)


async def _read_body(request: Request) -> bytes:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in ACTIVITY_MEDIA_TYPES:
        raise Refused(415, "content type must be application/activity+json or application/ld+json")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise Refused(413, f"body is over {MAX_BODY_BYTES} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise Refused(413, f"body is over {MAX_BODY_BYTES} bytes")
    return bytes(body)


def _parse_activity(body: bytes) -> dict[str, Any]:
    try:
        activity = parse_json_document(body)
    except FetchError as error:
        raise Refused(400, error.reason) from None
    for name, limit in (("id", MAX_URL_LENGTH), ("type", MAX_TYPE_LENGTH),
                        ("actor", MAX_URL_LENGTH)):
        value = activity.get(name)
        if not (isinstance(value, str) and 0 < len(value) <= limit):
            raise Refused(400, f"activity has no usable {name}")
    return activity


def _check_origin(activity: dict[str, Any], local_host: str) -> str:
    """The actor's host, once the activity and its embedded objects are shown to be from it."""
    actor_host = _host(activity["actor"], "actor")
    if actor_host == local_host:
        raise Refused(403, "a remote actor cannot be on this node's host")
    if _host(activity["id"], "activity id") != actor_host:
        raise Refused(403, "activity id is not on the actor's host")
    if activity["type"] not in _FOREIGN_OBJECT_TYPES:
        embedded = activity.get("object")
        for item in embedded if isinstance(embedded, list) else [embedded]:
            if isinstance(item, dict) and "id" in item \
                    and _host(item["id"], "object id") != actor_host:
                raise Refused(403, "embedded object is not on the actor's host")
    return actor_host


def _host(url: Any, name: str) -> str:
    try:
        return url_host(url)
    except ValueError:
        raise Refused(400, f"{name} is not an http(s) URL") from None


async def _check_admitted(db: Database, activity: dict[str, Any], actor_host: str) -> None:
    """Allow-list federation, decided on the claimed actor (the signature must then prove it)."""
    domain = normalise_host(httpx.URL(activity["actor"]).host)  # a block covers every port
    for blocked in {domain, actor_host}:
        if await store.is_blocked(db, blocked):
            raise Refused(403, "domain is blocked")
    if activity["type"] == "Follow":  # anyone may ask; it becomes a pending request
        return
    peer = await store.get_peer(db, actor_host)
    if peer is not None and (peer.following in _FOLLOWING or peer.follower in _FOLLOWER):
        return
    if activity["type"] in _KNOWN_ACTOR_TYPES and await store.get_actor(db, activity["actor"]):
        return
    raise Refused(403, "not a followed or approved peer")


async def _verified_signer(request: Request, fed: Federation, body: bytes,
                           activity: dict[str, Any]) -> store.RemoteActor:
    """The owner of the key that signed the request; a stale cached key is refetched once."""
    header = request.headers.get("signature")
    if header is None:
        raise Refused(401, "request is not signed")
    try:
        key_id = parse_signature_header(header).key_id
    except SignatureError as error:
        raise Refused(401, str(error)) from None
    actor = await _signing_actor(fed, key_id, activity, refresh=False)
    verification = _verify(request, body, actor.public_pem)
    if _may_be_rotated(verification):
        fresh = await _signing_actor(fed, key_id, activity, refresh=True)
        if fresh.public_pem != actor.public_pem:  # the same PEM: refetch rate-limited or no news
            actor, verification = fresh, _verify(request, body, fresh.public_pem)
    try:
        check(verification)
    except SignatureError as error:
        raise Refused(401, str(error)) from None
    return actor


def _verify(request: Request, body: bytes, public_pem: str) -> Verification:
    # The signature covers the path as sent; ASGI servers may omit raw_path.
    raw_path = request.scope.get("raw_path") or request.scope["path"].encode("utf-8")
    query = request.scope.get("query_string", b"").decode("latin-1") or None
    return verify_request(request.method, raw_path.decode("latin-1"), query, request.headers,
                          body, public_pem)


def _may_be_rotated(verification: Verification) -> bool:
    """Only a signature that fails while every other fact holds is worth a fresh key."""
    return (not verification.signature_valid and verification.required_headers_signed
            and verification.date_in_window and verification.digest_matches is not False)


async def _signing_actor(fed: Federation, key_id: str, activity: dict[str, Any], *,
                         refresh: bool) -> store.RemoteActor:
    try:
        return await key_for_signature(fed.db, fed.fetcher, key_id, local_host=fed.urls.host,
                                       refresh=refresh, auth=await node_auth(fed))
    except ActorGone as error:
        if activity["type"] == "Delete":  # a deleted actor's farewell: acknowledged, dropped
            raise Refused(202, "actor is gone; Delete dropped") from None
        raise Refused(401, f"key: {error.reason}") from None
    except ActorError as error:
        raise Refused(401, f"key: {error.reason}") from None
