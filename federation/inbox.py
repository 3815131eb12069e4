"""POST /inbox, /actor/inbox and /groups/{slug}/inbox: a verified activity, stored once, 202.

`inbox` is a bare ASGI app: the busiest endpoint of a federating node builds
no request or response objects and reads its headers once. It needs in the
lifespan state `federation` (its database, fetcher, URLs and `admission`,
which remembers admitted peers and their keys) and `acceptor`
(federation.acceptor.InboxAcceptor, which commits concurrent arrivals
together). It refuses senders over their rate before reading anything, reads
the body within a cap, checks who claims to send it and from where, refuses
peers the policy does not admit before fetching anything, verifies the HTTP
signature (draft-cavage, or RFC 9421 when a Signature-Input header is sent)
against the key owner's key and for this node's host, answers 202 without
keeping an activity that can never apply (federation.applicable), and stores
the raw activity once by id, durably, before the 202; the runner applies it later.
Every refusal is a one-line text/plain reason; bodies are never logged.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from starlette.types import Receive, Scope, Send

from federation import ratelimit, store
from federation.acceptor import NotAccepted
from federation.actors import ActorError, ActorGone, key_for_signature
from federation.addresses import on_host, origin_prefix, url_domain, url_host
from federation.applicable import never_applies
from federation.context import Federation
from federation.events import activity_label
from federation.fetch import MAX_URL_LENGTH, FetchError, parse_json_document
from federation.local import node_auth
from federation.message_signatures import parse_message_signature, verify_message
from federation.signatures import (
    HeaderMap,
    SignatureError,
    Verification,
    check,
    parse_signature_header,
    verify_request,
)

MAX_BODY_BYTES = 1_000_000
MAX_TYPE_LENGTH = 64
ACTIVITY_MEDIA_TYPES = frozenset({"application/activity+json", "application/ld+json"})
# Their embedded object may be on another host: an Announce's is refetched from its
# origin by the handler; an Accept's or Reject's is our own Follow, matched to our record.
_FOREIGN_OBJECT_TYPES = frozenset({"Announce", "Accept", "Reject"})
_KNOWN_ACTOR_TYPES = frozenset({"Undo", "Delete"})
# Only an object's owner changes it: never one of this node's own, from outside.
_CHANGING_TYPES = frozenset({"Create", "Update", "Delete"})
_FOLLOWING = frozenset({"requested", "accepted"})
_FOLLOWER = frozenset({"approved"})
# Answers are short plain text, never a page: no other security header applies.
_TEXT = [(b"content-type", b"text/plain; charset=utf-8"), (b"x-content-type-options", b"nosniff")]

log = logging.getLogger(__name__)


class Refused(Exception):
    """Ends the request early with `status` and a one-line reason; nothing is stored.

    A 4xx, a 503 (with `retry_after` seconds), or a 202 that acknowledges and
    drops a deleted actor's Delete or an activity that can never apply. `kind`
    says why in a word (metrics count it); the status's own word unless the
    status has several reasons.
    """

    def __init__(self, status: int, reason: str, retry_after: int | None = None,
                 kind: str | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.retry_after = retry_after
        self.kind = kind or _KINDS[status]


_KINDS = {202: "actor_gone", 400: "malformed", 401: "bad_signature", 403: "forbidden",
          413: "too_large", 415: "media_type", 429: "rate_limited", 503: "unavailable"}


class Inbox:
    """The ASGI app behind every inbox path (POST only; the router answers other methods)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fed: Federation = scope["state"]["federation"]
        headers = HeaderMap.from_raw(scope["headers"])
        client = scope.get("client")
        activity_type = peer = "-"  # as far as they are known when an answer is decided
        try:
            if (throttled := ratelimit.retry_after(headers, client and client[0],
                                                   fed.inbox_limits)):
                sender, seconds = throttled
                raise Refused(429, f"too many requests from {sender[:100]}; retry in {seconds} s",
                              seconds)
            body = await _read_body(headers, receive)
            activity = _parse_activity(body)
            activity_type = activity_label(activity["type"])
            actor_host = peer = _check_origin(activity, fed.urls.host)
            await _check_admitted(fed, activity, actor_host)
            actor = await _verified_signer(scope, headers, fed, body, activity)
            if actor.id != activity["actor"]:
                raise Refused(403, "the signing key's owner is not the activity's actor",
                              kind="signer_not_actor")
            if (useless := never_applies(activity, actor, fed.negative_cache)) is not None:
                # 202, not a 4xx: every sender takes it as delivered, none retries or
                # counts it against this inbox (older Mastodon retries and counts any 4xx).
                raise Refused(202, f"accepted and not kept: {useless}", kind="ignored")
            try:  # the 202 follows a durable commit, shared with the requests arriving meanwhile
                fresh = await scope["state"]["acceptor"].accept(store.Arrival(
                    activity["id"], actor.id, actor.host, activity["type"], body.decode("utf-8")))
            except NotAccepted as failure:
                raise Refused(503, str(failure), 30) from None
        except Refused as refusal:
            fed.events.inbox_refused(refusal.status, refusal.kind)
            if refusal.status != 429:  # a flood is not worth a log line per request
                log.info("inbox %s from %s: %s %s: %s", activity_type, peer, refusal.status,
                         refusal.kind, refusal.reason,
                         extra={"activity_type": activity_type, "peer": peer,
                                "status": refusal.status, "outcome": refusal.kind})
            await _respond(send, refusal.status, refusal.reason, refusal.retry_after)
            return
        fed.arrived_at = asyncio.get_running_loop().time()
        fed.wake_inbox.set()
        fed.events.inbox_accepted(activity_type)
        outcome = "accepted" if fresh else "repeat"
        log.info("inbox %s from %s: 202 %s", activity_type, peer, outcome,
                 extra={"activity_type": activity_type, "peer": peer, "status": 202,
                        "outcome": outcome})
        await _respond(send, 202)


inbox = Inbox()


async def _respond(send: Send, status: int, reason: str = "",
                   retry_after: int | None = None) -> None:
    body = reason.encode("utf-8")
    headers = [*_TEXT, (b"content-length", str(len(body)).encode("ascii"))]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode("ascii")))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _read_body(headers: HeaderMap, receive: Receive) -> bytes:
    media_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in ACTIVITY_MEDIA_TYPES:
        raise Refused(415, "content type must be application/activity+json or application/ld+json")
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise Refused(413, f"body is over {MAX_BODY_BYTES} bytes")
    body = bytearray()  # grows in place: a body sent a byte at a time costs no more
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Refused(400, "the client went away before sending its body",
                          kind="incomplete")
        body += message.get("body", b"")
        if len(body) > MAX_BODY_BYTES:
            raise Refused(413, f"body is over {MAX_BODY_BYTES} bytes")
        if not message.get("more_body", False):
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
    actor = activity["actor"]
    actor_host = _host(actor, "actor")
    if actor_host == local_host:
        raise Refused(403, "a remote actor cannot be on this node's host", kind="wrong_origin")
    prefix = origin_prefix(actor)
    if not _on_host(activity["id"], actor_host, prefix, "activity id"):
        raise Refused(403, "activity id is not on the actor's host", kind="wrong_origin")
    if activity["type"] not in _FOREIGN_OBJECT_TYPES:
        embedded = activity.get("object")
        for item in embedded if isinstance(embedded, list) else [embedded]:
            if isinstance(item, dict) and "id" in item \
                    and not _on_host(item["id"], actor_host, prefix, "object id"):
                raise Refused(403, "embedded object is not on the actor's host",
                              kind="wrong_origin")
            if isinstance(item, str) and activity["type"] in _CHANGING_TYPES \
                    and _is_on(item, local_host):
                raise Refused(403, "the object lives on this node; only it changes it",
                              kind="wrong_origin")
    return actor_host


def _host(url: Any, name: str) -> str:
    try:
        return url_host(url)
    except ValueError:
        raise Refused(400, f"{name} is not an http(s) URL") from None


def _is_on(url: str, host: str) -> bool:
    try:
        return url_host(url) == host
    except ValueError:  # not a URL at all: not one of ours either
        return False


def _on_host(url: Any, host: str, prefix: str | None, name: str) -> bool:
    try:
        return on_host(url, host, prefix)
    except ValueError:
        raise Refused(400, f"{name} is not an http(s) URL") from None


async def _check_admitted(fed: Federation, activity: dict[str, Any], actor_host: str) -> None:
    """Allow-list federation, decided on the claimed actor (the signature must then prove it)."""
    if fed.admission.admits(actor_host):
        return
    # A block covers every port: the actor's domain is checked as well as its host.
    blocked, peer = await store.standing(fed.db, {url_domain(activity["actor"]), actor_host},
                                         actor_host)
    if blocked:
        raise Refused(403, "domain is blocked", kind="blocked")
    if activity["type"] == "Follow":  # anyone may ask; it becomes a pending request
        return
    if peer is not None and (peer.following in _FOLLOWING or peer.follower in _FOLLOWER):
        fed.admission.admitted(actor_host)
        return
    if activity["type"] in _KNOWN_ACTOR_TYPES and await store.get_actor(fed.db, activity["actor"]):
        return
    raise Refused(403, "not a followed or approved peer", kind="not_admitted")


async def _verified_signer(scope: Scope, headers: HeaderMap, fed: Federation, body: bytes,
                           activity: dict[str, Any]) -> store.RemoteActor:
    """The owner of the key that signed the request; a stale cached key is refetched once."""
    header = headers.get("signature")
    if header is None:
        raise Refused(401, "request is not signed", kind="unsigned")
    signature_input = headers.get("signature-input")  # RFC 9421; else draft-cavage
    try:
        key_id = (parse_signature_header(header).key_id if signature_input is None
                  else parse_message_signature(signature_input, header).key_id)
    except SignatureError as error:
        raise Refused(401, str(error)) from None
    verify = verify_request if signature_input is None else verify_message
    actor = await _signing_actor(fed, key_id, activity, refresh=False)
    verification = _verify(verify, scope, headers, body, fed, actor, key_id)
    if _may_be_rotated(verification):
        fresh = await _signing_actor(fed, key_id, activity, refresh=True)
        # The same key: the refetch was rate-limited or brought no news.
        if fresh.public_key(key_id) != actor.public_key(key_id):
            actor, verification = fresh, _verify(verify, scope, headers, body, fed, fresh, key_id)
    try:
        check(verification)
    except SignatureError as error:
        raise Refused(401, str(error)) from None
    return actor


def _verify(verify: Callable[..., Verification], scope: Scope, headers: HeaderMap,
            body: bytes, fed: Federation, actor: store.RemoteActor,
            key_id: str) -> Verification:
    """``verify`` (`verify_request` or `verify_message`) with the actor's key ``key_id``,
    for this node's host. The actor was found by that key id, so it lists it."""
    # The signature covers the path as sent; ASGI servers may omit raw_path.
    raw_path = scope.get("raw_path") or scope["path"].encode("utf-8")
    query = scope.get("query_string", b"").decode("latin-1") or None
    return verify(scope["method"], raw_path.decode("latin-1"), query, headers, body,
                  actor.public_key(key_id) or "", origin=fed.urls.base)


def _may_be_rotated(verification: Verification) -> bool:
    """Only a signature that fails while every other fact holds is worth a fresh key."""
    return (not verification.signature_valid and verification.required_headers_signed
            and verification.date_in_window and verification.digest_matches is not False
            and verification.host_matches is not False)


async def _signing_actor(fed: Federation, key_id: str, activity: dict[str, Any], *,
                         refresh: bool) -> store.RemoteActor:
    if not refresh and (known := fed.admission.signer(key_id)) is not None:
        return known
    try:
        actor = await key_for_signature(fed.db, fed.fetcher, key_id, local_host=fed.urls.host,
                                        refresh=refresh, auth=await node_auth(fed))
    except ActorGone as error:
        if activity["type"] == "Delete":  # a deleted actor's farewell: acknowledged, dropped
            raise Refused(202, "actor is gone; Delete dropped") from None
        raise Refused(401, f"key: {error.reason}", kind="key_unavailable") from None
    except ActorError as error:
        raise Refused(401, f"key: {error.reason}", kind="key_unavailable") from None
    fed.admission.signed_by(key_id, actor)
    return actor
