"""Remote actors: fetched, held to the origin rules, and cached with their keys.

An actor is refused unless its inbox, outbox, shared inbox and key all live
on the actor's own host, its key names it as owner and parses as RSA, and it
is not on this node's host. Its Ed25519 Multikeys (FEP-521a `assertionMethod`,
for RFC 9421 signatures) are kept when they are on its host and name it as
their controller; any other entry is passed over. A key is found through its
`keyId`: the actor document without the fragment (Mastodon's `actor#main-key`,
Fedify's `actor#ed25519-key`), or a bare key or Multikey document whose owner
(controller) lists that same key. Failed key fetches are remembered (negative
cache) so a dead or hostile key URL is not asked again and again.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from federation import store
from federation.addresses import url_host
from federation.fetch import BadStatus, Fetcher, FetchError, Unreachable, validate_url
from federation.keys import load_multikey, load_public_key
from federation.store import RemoteActor
from node.db import Database, stamp

ACTOR_TYPES = frozenset({"Application", "Group", "Organization", "Person", "Service"})
MAX_USERNAME_LENGTH = 255
MAX_MULTIKEYS = 8  # assertionMethod entries looked at
FAILURE_TTL = timedelta(minutes=10)       # a failed key URL is not fetched again for this long
REFRESH_INTERVAL = timedelta(minutes=5)   # a cached key is refetched (rotation) at most this often
_GONE_STATUSES = frozenset({404, 410})
_GONE = "actor is gone"


class ActorError(Exception):
    """An actor or key that could not be had or was refused, with a one-line reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ActorGone(ActorError):
    """The actor's or key's document answers 404 or 410: it was deleted."""


class ActorUnreachable(ActorError):
    """Nothing answered at the actor's address (yet)."""


async def fetch_actor(db: Database, fetcher: Fetcher, actor_url: str, *, local_host: str,
                      auth: httpx.Auth | None = None) -> RemoteActor:
    """Fetch, check and cache one remote actor; failures are recorded and raise ActorError."""
    try:
        actor = _parse_actor(await _get(fetcher, actor_url, local_host, auth), local_host,
                             fetcher.allow_private)
    except ActorError as error:
        await store.record_failure(db, actor_url, error.reason)
        raise
    await store.save_actor(db, actor)
    return actor


async def key_for_signature(db: Database, fetcher: Fetcher, key_id: str, *, local_host: str,
                            refresh: bool = False,
                            auth: httpx.Auth | None = None) -> RemoteActor:
    """The actor owning `key_id`, from the cache unless `refresh` (then at most every few minutes).

    Raises ActorGone when the key's document answers 404/410, ActorError otherwise.
    """
    try:
        validate_url(key_id, fetcher.allow_private)
    except FetchError as error:
        raise ActorError(f"keyId refused: {error.reason}") from None
    cached = await store.get_actor_by_key(db, key_id)
    if cached is not None and not (refresh and await _may_refresh(db, cached.id)):
        return cached
    url = str(httpx.URL(key_id).copy_with(fragment=None))
    failure = await store.recent_failure(db, url, FAILURE_TTL.total_seconds())
    if failure is not None:
        if failure.startswith(_GONE):
            raise ActorGone(failure)
        raise ActorError(f"recently failed: {failure}")
    try:
        actor = await _key_owner(fetcher, url, key_id, local_host, auth)
    except ActorError as error:
        await store.record_failure(db, url, error.reason)
        raise
    await store.save_actor(db, actor)
    return actor


async def _may_refresh(db: Database, actor_id: str) -> bool:
    fetched_at = await store.actor_fetched_at(db, actor_id)
    return fetched_at is None or fetched_at <= stamp(datetime.now(UTC) - REFRESH_INTERVAL)


async def _key_owner(fetcher: Fetcher, url: str, key_id: str, local_host: str,
                     auth: httpx.Auth | None) -> RemoteActor:
    document = await _get(fetcher, url, local_host, auth)
    if not _is_actor_type(document.get("type")):  # a bare key document: its owner must list it
        owner = (document.get("owner") if "publicKeyPem" in document
                 else document.get("controller") if document.get("type") == "Multikey"
                 else None)
        if owner is not None:
            if not isinstance(owner, str):
                raise ActorError("key owner is not a URL")
            document = await _get(fetcher, owner, local_host, auth)
    actor = _parse_actor(document, local_host, fetcher.allow_private)
    if actor.public_key(key_id) is None:
        raise ActorError(f"{actor.id[:200]} does not list {key_id[:200]} as its key")
    return actor


async def _get(fetcher: Fetcher, url: str, local_host: str,
               auth: httpx.Auth | None) -> dict[str, Any]:
    """The document at `url` (its id checked by the fetcher), never one of this node's."""
    if _host_or_none(url) == local_host:
        raise ActorError("a remote actor cannot be on this node's host")
    try:
        return (await fetcher.get_json(url, auth=auth)).document
    except BadStatus as error:
        if error.status in _GONE_STATUSES:
            raise ActorGone(f"{_GONE} (HTTP {error.status})") from None
        raise ActorError(f"fetching {url[:200]}: {error.reason}") from None
    except Unreachable as error:
        raise ActorUnreachable(f"fetching {url[:200]}: {error.reason}") from None
    except FetchError as error:
        raise ActorError(f"fetching {url[:200]}: {error.reason}") from None


def _parse_actor(document: dict[str, Any], local_host: str, allow_private: bool) -> RemoteActor:
    actor_id = document.get("id")
    if not isinstance(actor_id, str):
        raise ActorError("actor has no id")
    host = _host_or_none(actor_id)
    if host is None:
        raise ActorError("actor id is not an http(s) URL")
    if host == local_host:  # also reached through a redirect to this node
        raise ActorError("a remote actor cannot be on this node's host")
    kind = document.get("type")
    if not _is_actor_type(kind):
        raise ActorError(f"type {str(kind)[:50]!r} is not an actor type")
    username = document.get("preferredUsername")
    if not (isinstance(username, str) and 0 < len(username) <= MAX_USERNAME_LENGTH
            and username.isprintable()):
        raise ActorError("actor has no usable preferredUsername")
    endpoints = document.get("endpoints")
    key = document.get("publicKey")
    if not isinstance(key, dict):
        raise ActorError("actor has no publicKey")
    if key.get("owner") != actor_id:
        raise ActorError("publicKey.owner is not the actor")
    pem = key.get("publicKeyPem")
    try:
        load_public_key(pem if isinstance(pem, str) else "")
    except ValueError as error:
        raise ActorError(f"publicKeyPem: {error}") from None
    return RemoteActor(
        id=actor_id,
        host=host,
        type=kind,
        username=username,
        inbox=_url_on_host("inbox", document.get("inbox"), host, allow_private, required=True),
        shared_inbox=_url_on_host("endpoints.sharedInbox", endpoints.get("sharedInbox")
                                  if isinstance(endpoints, dict) else None, host, allow_private),
        outbox=_url_on_host("outbox", document.get("outbox"), host, allow_private),
        key_id=_url_on_host("publicKey.id", key.get("id"), host, allow_private, required=True),
        public_pem=pem,
        multikeys=_multikeys(document.get("assertionMethod"), actor_id, host, allow_private),
    )


def _multikeys(entries: Any, actor_id: str, host: str,
               allow_private: bool) -> tuple[tuple[str, str], ...]:
    """(id, publicKeyMultibase) of the usable Ed25519 Multikeys among ``entries``."""
    found = []
    for entry in (entries if isinstance(entries, list) else [entries])[:MAX_MULTIKEYS]:
        if not (isinstance(entry, dict) and entry.get("type") == "Multikey"
                and entry.get("controller") == actor_id
                and isinstance(key_id := entry.get("id"), str)
                and isinstance(multibase := entry.get("publicKeyMultibase"), str)):
            continue
        try:
            _url_on_host("Multikey id", key_id, host, allow_private)
            load_multikey(multibase)
        except (ActorError, ValueError):
            continue
        found.append((key_id, multibase))
    return tuple(found)


def _url_on_host(name: str, value: Any, host: str, allow_private: bool, *,
                 required: bool = False) -> str | None:
    """The field's URL, refused unless this node may reach it and it is on the actor's host."""
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise ActorError(f"{name} is not a URL")
    try:
        validate_url(value, allow_private)
    except FetchError as error:
        raise ActorError(f"{name} refused: {error.reason}") from None
    if _host_or_none(value) != host:
        raise ActorError(f"{name} is not on the actor's host")
    return value


def _is_actor_type(kind: Any) -> bool:
    return isinstance(kind, str) and kind in ACTOR_TYPES


def _host_or_none(url: str) -> str | None:
    try:
        return url_host(url)
    except ValueError:
        return None
