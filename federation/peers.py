"""What an admin does with peers (follow, unfollow, approve, reject, block), and sees
of each: where it stands and what waits to be delivered to it.

Used by both ``grassroots peers ...`` and /admin/peers. Each action writes
its state and the activity to send in the database; the running node's
delivery worker sends it (a CLI run is picked up without a restart).
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

from federation import store
from federation.actors import ActorError, ActorUnreachable, fetch_actor
from federation.addresses import url_host
from federation.context import Federation
from federation.documents import activity
from federation.fetch import FetchError, validate_url
from federation.handlers import answer_follow
from federation.local import NODE, node_auth
from node.db import Database
from node.storage import remote


class PeerError(Exception):
    """A peer action that cannot be done; the message says why, in one line."""


class NotYet(PeerError):
    """What was waited for has not happened yet; it may still, so try again later."""


def peer_url(target: str, dev: bool) -> str:
    """A peer given as a URL or a bare domain, as the URL of its node actor."""
    target = target.strip()
    if "://" not in target:
        target = f"https://{target}"
    try:
        url = validate_url(target, allow_private=dev)
    except FetchError as e:
        raise PeerError(f"{target} is not a peer address: {e.reason}") from e
    return str(url.copy_with(path="/actor", query=None, fragment=None)) \
        if url.path in ("", "/") else str(url)


def domain(target: str) -> str:
    """A peer named by domain or URL, as the host key peers are stored under."""
    target = target.strip()
    try:
        return url_host(target if "://" in target else f"https://{target}")
    except ValueError as e:
        raise PeerError(f"{target!r} is not a domain name") from e


async def follow(fed: Federation, target: str, wait: float = 0.0) -> store.Peer:
    """Ask a peer to be followed. With ``wait``, for up to that many seconds in all, a
    peer that does not answer yet (still starting) is asked again, and the running
    node's delivery of the request is waited for (NotYet if it has not happened)."""
    url = peer_url(target, fed.dev)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        try:
            actor = await fetch_actor(fed.db, fed.fetcher, url, local_host=fed.urls.host,
                                      auth=await node_auth(fed))
            break
        except ActorUnreachable as e:
            if loop.time() >= deadline:
                raise PeerError(f"{url} could not be followed: {e.reason}") from e
            await asyncio.sleep(0.5)
        except (ActorError, FetchError) as e:
            raise PeerError(f"{url} could not be followed: {getattr(e, 'reason', e)}") from e
    if await store.is_blocked(fed.db, actor.host):
        raise PeerError(f"{actor.host} is blocked; unblock it first")
    await store.save_peer(fed.db, actor.host, actor.id, actor.delivery_inbox, actor.outbox)
    follow_activity = activity(fed.urls.new_activity(), "Follow", fed.urls.node_actor,
                               actor.id, to=[actor.id])
    await store.publish(fed.db, follow_activity, NODE, [actor.inbox])
    await store.set_following(fed.db, actor.host, "requested", follow_activity["id"])
    fed.wake_delivery.set()
    if wait:
        await _delivered(fed, actor.host, follow_activity["id"], deadline)
    return await store.get_peer(fed.db, actor.host)


async def _delivered(fed: Federation, host: str, activity_id: str, deadline: float) -> None:
    """Wait until ``host`` acknowledged the activity (the running node sends it)."""
    loop = asyncio.get_running_loop()
    while (found := await store.delivery_of(fed.db, activity_id)) is not None:
        state, attempts, error = found
        if state == "sent":
            return
        if state == "failed":
            raise PeerError(f"{host} refused the follow request: {error}")
        if loop.time() >= deadline:
            why = (f"last try: {error}" if attempts else "not tried yet: the running node"
                   " sends it; is it serving?")
            raise NotYet(f"The follow request has not reached {host} yet ({why}). It stays"
                         " queued until it is delivered; grassroots peers list shows when.")
        await asyncio.sleep(0.2)


async def _known(fed: Federation, target: str) -> store.Peer:
    peer = await store.get_peer(fed.db, domain(target))
    if peer is None:
        raise PeerError(f"{domain(target)} is not a known peer")
    return peer


async def unfollow(fed: Federation, target: str) -> int:
    """Stop following; the peer's listings leave the directory. How many went."""
    peer = await _known(fed, target)
    if peer.following in ("requested", "accepted") and peer.follow_id:
        undo = activity(fed.urls.new_activity(), "Undo", fed.urls.node_actor,
                        {"id": peer.follow_id, "type": "Follow",
                         "actor": fed.urls.node_actor, "object": peer.actor_id},
                        to=[peer.actor_id])
        await store.publish(fed.db, undo, NODE, [peer.inbox])
        fed.wake_delivery.set()
    await store.set_following(fed.db, peer.host, "none")
    fed.admission.forget_all()
    return await remote.remove_listings_of(fed.db, peer.host)


async def _asking(fed: Federation, target: str, wait: float) -> store.Peer:
    """The peer that asked to follow this node, waiting up to ``wait`` seconds for a
    request still on its way (a follow made a moment ago on the other node)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        peer = await store.get_peer(fed.db, domain(target))
        if peer is not None and peer.follower != "none" and peer.their_follow_id:
            return peer
        if loop.time() >= deadline:
            waited = f" (waited {wait:g} s)" if wait else ""
            raise NotYet(f"No follow request from {domain(target)} has arrived{waited}. If"
                         " its admin has just asked, wait a minute and try again.")
        await asyncio.sleep(0.2)


async def approve(fed: Federation, target: str, wait: float = 0.0) -> None:
    """Let a peer that asked follow this node (answered again if it was approved)."""
    peer = await _asking(fed, target, wait)
    await answer_follow(fed, peer.host, "Accept", peer.their_follow_id)
    await store.set_follower(fed.db, peer.host, "approved")


async def reject(fed: Federation, target: str, wait: float = 0.0) -> None:
    peer = await _asking(fed, target, wait)
    await answer_follow(fed, peer.host, "Reject", peer.their_follow_id)
    await store.set_follower(fed.db, peer.host, "rejected")
    fed.admission.forget_all()


async def block(fed: Federation, target: str, reason: str = "") -> int:
    """Refuse everything from a domain and purge its listings; how many went.

    ``reason`` is public (see /about/federation); blocking again replaces it.
    """
    name = domain(target)
    await store.block_domain(fed.db, name, reason)
    fed.admission.forget_all()
    return await remote.remove_listings_of(fed.db, name)


async def unblock(fed: Federation, target: str) -> None:
    if not await store.unblock_domain(fed.db, domain(target)):
        raise PeerError(f"{domain(target)} is not blocked")


# What federation is doing, host by host (/admin/peers, grassroots peers list) -------

@dataclass(frozen=True, slots=True)
class Deliveries:
    """A host's deliveries not sent, over all its inboxes."""

    queued: int = 0   # waiting: held for a failing peer, or not yet tried
    failed: int = 0   # given up: refused, or failing for too long
    failing_since: str | None = None
    next_retry: str | None = None
    inboxes: tuple[str, ...] = ()

    def plus(self, queue: store.Queue) -> Deliveries:
        return Deliveries(self.queued + queue.queued, self.failed + queue.failed,
                          _earliest(self.failing_since, queue.failing_since),
                          _earliest(self.next_retry, queue.next_retry),
                          (*self.inboxes, queue.inbox))


def _earliest(a: str | None, b: str | None) -> str | None:
    return min(a, b) if a and b else a or b


@dataclass(frozen=True, slots=True)
class HostStatus:
    """A peer, or another server this node delivers to (one following a group)."""

    host: str
    peer: store.Peer | None
    blocked: bool
    deliveries: Deliveries


async def overview(db: Database, stale_before: str = "") -> list[HostStatus]:
    """Every peer, then every other host with deliveries waiting or failed."""
    waiting: dict[str, Deliveries] = {}
    for queue in await store.delivery_queues(db):
        try:
            host = url_host(queue.inbox)
        except ValueError:
            host = queue.inbox
        waiting[host] = waiting.get(host, Deliveries()).plus(queue)
    found = [HostStatus(p.host, p, p.blocked, waiting.pop(p.host, Deliveries()))
             for p in await store.list_peers(db, stale_before)]
    if waiting:
        blocked = {b.domain for b in await store.blocked_domains(db)}
        found += [HostStatus(host, None, host in blocked, deliveries)
                  for host, deliveries in sorted(waiting.items())]
    return found


async def host_status(db: Database, host: str, stale_before: str = "") -> HostStatus:
    """The host's figures; nothing waiting for a host this node does not deliver to."""
    found = next((h for h in await overview(db, stale_before) if h.host == host), None)
    return found or HostStatus(host, None, await store.is_blocked(db, host), Deliveries())
