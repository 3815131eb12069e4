"""Applying verified inbound activities: one small function per type.

The inbox has already checked the signature, that the key belongs to the
actor and that ids are on the actor's host. Here each activity is applied
idempotently through the node's listing functions; unknown types are
ignored. Objects given only by id are fetched from their own origin.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from federation import flags, store
from federation.addresses import url_host
from federation.context import Federation
from federation.documents import AS_PUBLIC, activity
from federation.fetch import (
    BadContentType,
    BadStatus,
    BlockedAddress,
    FetchError,
    IdMismatch,
    TooLarge,
    TooManyRedirects,
)
from federation.local import federated_group, group_owner, node_auth
from federation.negative_cache import Kind
from federation.objects import (
    ObjectError,
    first_id,
    parse_event,
    parse_group,
    parse_themes,
)
from node.storage import remote

log = logging.getLogger(__name__)

# Newest first, every item is held until the walk ends: a small cap.
MAX_BACKFILL_PAGES = 20
MAX_BACKFILL_ITEMS = 2000
# Oldest first, each page is applied and let go: only a hostile peer reaches these.
MAX_OLDEST_FIRST_PAGES = 5000
MAX_OLDEST_FIRST_ITEMS = 250_000
BACKFILL_SECONDS = 900.0


class Ignored(Exception):
    """The activity is valid but has nothing to do here (logged, not retried)."""


def host_of(url: str | None) -> str:
    """The origin host of a URL (with a non-default port), or "" if it has none."""
    try:
        return url_host(url or "")
    except ValueError:
        return ""


# The last argument, when given, marks the inbox item applied in the handler's last write.
Handler = Callable[[Federation, dict[str, Any], str, str, store.Finish | None], Awaitable[None]]


async def apply(fed: Federation, act: dict[str, Any], sender: str, host: str,
                done: store.Finish | None = None) -> bool:
    """Apply one activity from ``sender`` (an actor on ``host``); False if ignored.

    ``done``, when given, is run inside the transaction of the last write if the
    handler has one that nothing follows (``done.done`` then says so).
    """
    handler = HANDLERS.get(act.get("type"))
    if handler is None:
        return False
    try:
        await handler(fed, act, sender, host, done)
    except (Ignored, ObjectError) as e:
        log.info("ignored %s %s: %s", act.get("type"), act.get("id"), e)
        return False
    return True


# Follows ----------------------------------------------------------------------

async def on_follow(fed: Federation, act: dict[str, Any], sender: str, host: str,
                   done: store.Finish | None) -> None:
    target = first_id(act.get("object"))
    actor = await store.get_actor(fed.db, sender)
    if actor is None:
        raise Ignored("unknown actor")
    if target == fed.urls.node_actor:
        await store.save_peer(fed.db, host, actor.id, actor.delivery_inbox, actor.outbox)
        peer = await store.get_peer(fed.db, host)
        if peer.follower == "approved":  # a repeated Follow is answered again
            await answer_follow(fed, peer.host, "Accept", act["id"])
        else:
            await store.set_follower(fed.db, host, "pending", act["id"])
        return
    if target and target.startswith(fed.urls.base + "/groups/"):
        group = await federated_group(fed, target.removeprefix(fed.urls.base + "/groups/"))
        if group is None:
            raise Ignored("follow of a group that is not public")
        # Public groups accept followers at once, as Mastodon expects of Group actors.
        await store.add_group_follower(fed.db, group.id, actor.id, actor.delivery_inbox,
                                       act["id"])
        group_url = fed.urls.group(group.slug)
        reply = activity(fed.urls.new_activity(), "Accept", group_url,
                         {"id": act["id"], "type": "Follow", "actor": actor.id,
                          "object": group_url}, to=[actor.id])
        await store.publish(fed.db, reply, group_owner(group), [actor.inbox])
        fed.wake_delivery.set()
        return
    raise Ignored("follow of something that is not ours")


async def answer_follow(fed: Federation, host: str, kind: str, follow_id: str) -> None:
    """Accept or Reject a peer node's Follow of this node's actor."""
    peer = await store.get_peer(fed.db, host)
    reply = activity(fed.urls.new_activity(), kind, fed.urls.node_actor,
                     {"id": follow_id, "type": "Follow", "actor": peer.actor_id,
                      "object": fed.urls.node_actor}, to=[peer.actor_id])
    await store.publish(fed.db, reply, "node", [peer.inbox])
    fed.wake_delivery.set()


async def _our_follow(fed: Federation, act: dict[str, Any], host: str):
    peer = await store.get_peer(fed.db, host)
    follow_id = first_id(act.get("object"))
    if peer is None or not follow_id or follow_id != peer.follow_id:
        raise Ignored("not an answer to our follow")
    return peer


async def on_accept(fed: Federation, act: dict[str, Any], sender: str, host: str,
                   done: store.Finish | None) -> None:
    peer = await _our_follow(fed, act, host)
    await store.set_following(fed.db, host, "accepted")
    if peer.outbox:
        start_backfill(fed, peer.outbox, host)


async def on_reject(fed: Federation, act: dict[str, Any], sender: str, host: str,
                   done: store.Finish | None) -> None:
    await _our_follow(fed, act, host)
    await store.set_following(fed.db, host, "rejected")
    await remote.remove_listings_of(fed.db, host)


async def on_undo(fed: Federation, act: dict[str, Any], sender: str, host: str,
                 done: store.Finish | None) -> None:
    inner = act.get("object")
    if not isinstance(inner, dict) or inner.get("type") != "Follow":
        raise Ignored("only an undone Follow means something here")
    if first_id(inner.get("actor")) not in (None, sender):
        raise Ignored("an Undo of someone else's Follow")
    target = first_id(inner.get("object"))
    if target == fed.urls.node_actor:
        await store.set_follower(fed.db, host, "none")
    elif target and target.startswith(fed.urls.base + "/groups/"):
        group = await federated_group(fed, target.removeprefix(fed.urls.base + "/groups/"))
        if group is not None:
            await store.remove_group_follower(fed.db, group.id, sender)


# Listings ------------------------------------------------------------------------
#
# Only an object's owner speaks for it: a group for itself, a meeting's group
# (its attributedTo) for the meeting, as recorded when the copy was first stored.
# An object in an activity from anyone else (an Announce, another actor on the
# same host) is never taken as given: it is fetched from its origin, and a
# Delete from anyone else is applied only when the origin says the object is gone.

async def fetch_current(fed: Federation, object_id: str) -> dict[str, Any] | None:
    """The object as its origin serves it now; None when the origin says it is gone.

    A failure is remembered (``fed.negative_cache``): until it expires, the same
    answer is given again without asking the origin. Gone is never remembered: a
    Delete acts on it, so the origin is asked each time.
    """
    if (failure := fed.negative_cache.failure(object_id)) is not None:
        if failure.transient:
            raise FetchError(f"lately failed: {failure.reason}")  # the runner retries later
        raise Ignored(f"lately failed: {failure.reason}")
    try:
        document = (await fed.fetcher.get_json(object_id, auth=await node_auth(fed))).document
    except FetchError as e:
        if isinstance(e, BadStatus) and e.status in (404, 410):
            return None
        outage = transient(e)
        fed.negative_cache.remember(object_id, Kind.OUTAGE if outage else Kind.REFUSED,
                                    e.reason)
        if outage:
            raise  # the origin may be down for a while: the runner retries later
        raise Ignored(f"object could not be fetched: {e.reason}") from e
    fed.negative_cache.forget(object_id)
    return document


def transient(error: FetchError) -> bool:
    """A failure worth retrying: an outage, not a refusal or a bad document."""
    if isinstance(error, BadStatus):
        return error.status >= 500 or error.status in (401, 408, 429)
    return not isinstance(error, (BlockedAddress, IdMismatch, BadContentType, TooLarge,
                                  TooManyRedirects)) and not error.reason.startswith(
        ("scheme", "invalid", "credentials", "URL", "port", "JSON", "not ", "HTTP", "content"))


def owner_of(obj: dict[str, Any]) -> str | None:
    """Who speaks for an object: a Group for itself, anything else its attributedTo."""
    return obj.get("id") if obj.get("type") == "Group" else first_id(obj.get("attributedTo"))


async def _following(fed: Federation, host: str) -> None:
    peer = await store.get_peer(fed.db, host)
    if peer is None or peer.following != "accepted":
        raise Ignored("listings only come from peers this node follows")


async def on_upsert(fed: Federation, act: dict[str, Any], sender: str, host: str,
                   done: store.Finish | None) -> None:
    """A Create or Update: taken as sent from the owner, fetched from its origin otherwise."""
    await _following(fed, host)
    obj = act.get("object")
    object_id = first_id(obj)
    if object_id is None or host_of(object_id) != host:
        raise Ignored("object is not on the sender's host")
    if not (isinstance(obj, dict) and obj.get("type") not in (None, "Link")
            and owner_of(obj) == sender):
        obj = await fetch_current(fed, object_id)
        if obj is None:
            raise Ignored("the origin no longer has the object")
    await store_listing(fed, obj, host, done)


async def store_listing(fed: Federation, obj: dict[str, Any], host: str,
                        done: store.Finish | None = None) -> None:
    """Store the owner's own word on a group or meeting; a meeting no longer public goes."""
    if obj.get("type") == "Group":
        await _upsert_group(fed, obj, host, done)
    elif obj.get("type") == "Event":
        group_id = first_id(obj.get("attributedTo"))
        if host_of(group_id) != host:
            raise Ignored("meeting attributed to a group on another host")
        if await remote.owner_of(fed.db, obj["id"]) not in (None, group_id):
            raise Ignored("the meeting belongs to another group")
        if AS_PUBLIC not in _audience(obj):  # audience narrows only by the owner's word
            await remote.delete_remote(fed.db, obj["id"], host)
            raise Ignored("only public meetings are listed")
        local_group = await remote.remote_group_id(fed.db, group_id)
        if local_group is None:
            group = await fetch_current(fed, group_id)
            if group is None:
                raise Ignored("the meeting's group is gone")
            try:
                local_group = await _upsert_group(fed, group, host)
            except ObjectError as e:  # the inbox refuses its next meetings at once
                fed.negative_cache.remember(group_id, Kind.UNUSABLE,
                                            f"not usable as a meeting's group: {e}")
                raise
        draft, changes, cancelled = parse_event(obj)
        try:
            await remote.upsert_remote_event(fed.db, group_id=local_group, ap_id=obj["id"],
                                             url=page_url(obj, host), draft=draft,
                                             changes=changes, cancelled=cancelled,
                                             themes=parse_themes(obj), then=done)
        except remote.NotOwner as e:
            raise Ignored(str(e)) from e
    else:
        raise Ignored(f"{obj.get('type')} objects are not listed")


def page_url(obj: dict[str, Any], host: str) -> str:
    """The listing's public page: its ``url`` when that is http(s) on its origin."""
    url = first_id(obj.get("url"))
    if url and url.lower().startswith(("https://", "http://")) and host_of(url) == host:
        return url
    return obj["id"]


def _audience(obj: dict[str, Any]) -> list[str]:
    found: list[str] = []
    for field in ("to", "cc"):
        value = obj.get(field)
        found += value if isinstance(value, list) else [value] if isinstance(value, str) else []
    return found


async def _upsert_group(fed: Federation, obj: dict[str, Any], host: str,
                        done: store.Finish | None = None) -> int:
    username, draft = parse_group(obj)
    try:
        stored = await remote.upsert_remote_group(
            fed.db, origin=host, ap_id=obj["id"], url=page_url(obj, host),
            username=username, draft=draft, then=done)
    except remote.NotOwner as e:
        raise Ignored(str(e)) from e
    fed.negative_cache.forget(obj["id"])  # a group now: its meetings are no longer refused
    return stored


async def on_delete(fed: Federation, act: dict[str, Any], sender: str, host: str,
                   done: store.Finish | None) -> None:
    """The owner's Delete removes its copy; anyone else's only once the origin agrees."""
    object_id = first_id(act.get("object"))
    if object_id is None or host_of(object_id) != host:
        raise Ignored("delete of an object on another host")
    owner = await remote.owner_of(fed.db, object_id)
    if owner is None:
        raise Ignored("nothing listed with that id")
    if owner != sender and await fetch_current(fed, object_id) is not None:
        raise Ignored("a Delete from someone who does not own the object")
    await remote.delete_remote(fed.db, object_id, host, done)


async def on_announce(fed: Federation, act: dict[str, Any], sender: str, host: str,
                     done: store.Finish | None) -> None:
    """A shared object or activity (FEP-1b12) only points at an object: what is stored is
    what its origin serves, never the Announce's copy or addressing."""
    await _following(fed, host)
    inner = act.get("object")
    target = inner.get("object") if isinstance(inner, dict) and inner.get("type") in (
        "Create", "Update", "Delete") else inner
    object_id = first_id(target)
    if object_id is None or host_of(object_id) != host:
        raise Ignored("announced object from another host")
    obj = await fetch_current(fed, object_id)
    if obj is None:
        if await remote.owner_of(fed.db, object_id) is not None:
            await remote.delete_remote(fed.db, object_id, host, done)
        return
    await store_listing(fed, obj, host, done)


async def on_flag(fed: Federation, act: dict[str, Any], sender: str, host: str,
                 done: store.Finish | None) -> None:
    """A peer's report: kept for our admins when it names our group or meeting."""
    if not await flags.receive_flag(fed, act, host):
        raise Ignored("the Flag names nothing of this node's")


HANDLERS: dict[str, Handler] = {
    "Follow": on_follow,
    "Accept": on_accept,
    "Reject": on_reject,
    "Undo": on_undo,
    "Create": on_upsert,
    "Update": on_upsert,
    "Delete": on_delete,
    "Announce": on_announce,
    "Flag": on_flag,
}


# Backfill -------------------------------------------------------------------------
#
# A newly followed peer's listings are read from its outbox in the background, so the
# Accept is applied at once and pages are answered while the listings arrive.

def start_backfill(fed: Federation, outbox_url: str, host: str) -> None:
    """Read ``host``'s outbox in a task the Federation holds, unless one already runs."""
    running = fed.backfills.get(host)
    if running is not None and not running.done():
        log.info("backfill from %s already under way", host)
        return
    task = asyncio.create_task(_logged_backfill(fed, outbox_url, host), name=f"backfill {host}")
    fed.backfills[host] = task
    task.add_done_callback(lambda done: fed.backfills.pop(host, None)
                           if fed.backfills.get(host) is done else None)


async def _logged_backfill(fed: Federation, outbox_url: str, host: str) -> None:
    try:
        applied = await backfill(fed, outbox_url, host)
    except asyncio.CancelledError:
        log.warning("backfill from %s cancelled; its later activities still arrive, and"
                    " following it again reads its outbox again", host)
        raise
    except Exception:
        log.exception("backfill from %s failed", host)
    else:
        log.info("backfill from %s: %d activities applied", host, applied)


async def stop_backfills(fed: Federation) -> None:
    """Cancel the backfills under way (the node is stopping); each item is applied whole
    or not at all."""
    tasks = list(fed.backfills.values())
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def backfill(fed: Federation, outbox_url: str, host: str) -> int:
    """Import a peer's listings from its outbox, oldest first; how many were applied.

    With a ``last`` page, pages are walked from it through ``prev`` and each is
    applied as it comes (bounded in pages, items and time); without one, at most
    ``MAX_BACKFILL_PAGES`` newest pages are read, then applied oldest first.
    Every page and item must be on the peer's host.
    """
    if host_of(outbox_url) != host:
        return 0
    auth = await node_auth(fed)
    try:
        collection = (await fed.fetcher.get_json(outbox_url, auth=auth)).document
    except FetchError as e:
        log.warning("backfill from %s stopped: %s", host, e.reason)
        return 0
    last = first_id(collection.get("last")) \
        if collection.get("type") == "OrderedCollection" else None
    if last:
        return await _oldest_first(fed, last, host, auth)
    return await _apply_items(fed, list(reversed(
        await _newest_pages(fed, collection, outbox_url, host, auth))), host)


async def _oldest_first(fed: Federation, url: str, host: str, auth: Any) -> int:
    """Apply page after page from the oldest, each page's items oldest first; the next
    page is asked for while one is applied."""
    deadline = asyncio.get_running_loop().time() + BACKFILL_SECONDS
    applied = items = 0
    read: set[str] = set()
    coming = await _next_page(fed, url, host, auth, read, items, deadline)
    try:
        while coming is not None:
            try:
                page = (await coming).document
            except FetchError as e:
                log.warning("backfill from %s stopped: %s", host, e.reason)
                return applied
            found = [i for i in page.get("orderedItems", []) if isinstance(i, dict)]
            found = found[:MAX_OLDEST_FIRST_ITEMS - items]
            items += len(found)
            coming = await _next_page(fed, first_id(page.get("prev")), host, auth, read,
                                      items, deadline)
            applied += await _apply_items(fed, list(reversed(found)), host)
    finally:
        if coming is not None:  # cancelled, or an item failed
            coming.cancel()
            await asyncio.gather(coming, return_exceptions=True)
    return applied


async def _next_page(fed: Federation, url: str | None, host: str, auth: Any, read: set[str],
                     items: int, deadline: float) -> asyncio.Task | None:
    """The fetch of the page at ``url``, under way; None where the walk ends: no such
    page, one off the peer's host or read before, a peer no longer followed, or the
    walk's bounds reached (pages, items, time)."""
    if not url or host_of(url) != host or url in read:
        return None
    if len(read) >= MAX_OLDEST_FIRST_PAGES or items >= MAX_OLDEST_FIRST_ITEMS \
            or asyncio.get_running_loop().time() > deadline:
        log.warning("backfill from %s stopped at its bounds (%d items read)", host, items)
        return None
    peer = await store.get_peer(fed.db, host)
    if peer is None or peer.following != "accepted":
        log.info("backfill from %s stopped: no longer followed", host)
        return None
    read.add(url)
    return asyncio.create_task(fed.fetcher.get_json(url, auth=auth))


async def _newest_pages(fed: Federation, collection: dict[str, Any], outbox_url: str,
                        host: str, auth: Any) -> list[dict[str, Any]]:
    """The items of at most ``MAX_BACKFILL_PAGES`` pages from the newest, newest first."""
    items: list[dict[str, Any]] = []
    page = collection
    try:
        next_url = first_id(page.get("first")) if page.get("type") == "OrderedCollection" \
            else outbox_url
        if isinstance(page.get("first"), dict):
            page, next_url = page["first"], first_id(page["first"].get("next"))
            items += [i for i in page.get("orderedItems", []) if isinstance(i, dict)]
        for _ in range(MAX_BACKFILL_PAGES):
            if not next_url or host_of(next_url) != host or len(items) >= MAX_BACKFILL_ITEMS:
                break
            page = (await fed.fetcher.get_json(next_url, auth=auth)).document
            items += [i for i in page.get("orderedItems", []) if isinstance(i, dict)]
            next_url = first_id(page.get("next"))
    except FetchError as e:
        log.warning("backfill from %s stopped: %s", host, e.reason)
    return items[:MAX_BACKFILL_ITEMS]


async def _apply_items(fed: Federation, items: list[dict[str, Any]], host: str) -> int:
    """Apply items in the order given, each by its own actor on ``host``, giving way to
    requests between them; an item whose origin is out of reach is skipped."""
    applied = 0
    for item in items:
        sender = first_id(item.get("actor"))
        if host_of(first_id(item)) == host and host_of(sender) == host:
            try:
                applied += await apply(fed, item, sender, host)
            except FetchError as e:
                log.info("backfill from %s skipped %s: %s", host, first_id(item), e.reason)
        await asyncio.sleep(0)
    return applied
