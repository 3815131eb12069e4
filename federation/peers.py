"""What an admin does with peers: follow, unfollow, approve, reject, block.

Used by both ``grassroots peers ...`` and /admin/peers. Each action writes
its state and the activity to send in the database; the running node's
delivery worker sends it (a CLI run is picked up without a restart).
"""
from __future__ import annotations

import asyncio

from federation import store
from federation.actors import ActorError, fetch_actor
from federation.addresses import url_host
from federation.context import Federation
from federation.documents import activity
from federation.fetch import FetchError, validate_url
from federation.handlers import answer_follow
from federation.local import NODE, node_auth
from node.storage import remote


class PeerError(Exception):
    """A peer action that cannot be done; the message says why, in one line."""


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


async def follow(fed: Federation, target: str) -> store.Peer:
    url = peer_url(target, fed.dev)
    try:
        actor = await fetch_actor(fed.db, fed.fetcher, url, local_host=fed.urls.host,
                                  auth=await node_auth(fed))
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
    return await store.get_peer(fed.db, actor.host)


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
            if peer is None:
                raise PeerError(f"{domain(target)} is not a known peer")
            raise PeerError(f"{peer.host} has not asked to follow this node")
        await asyncio.sleep(0.2)


async def approve(fed: Federation, target: str, wait: float = 0.0) -> None:
    peer = await _asking(fed, target, wait)
    if peer.follower not in ("pending", "rejected"):
        raise PeerError(f"{peer.host} has not asked to follow this node")
    await answer_follow(fed, peer.host, "Accept", peer.their_follow_id)
    await store.set_follower(fed.db, peer.host, "approved")


async def reject(fed: Federation, target: str, wait: float = 0.0) -> None:
    peer = await _asking(fed, target, wait)
    await answer_follow(fed, peer.host, "Reject", peer.their_follow_id)
    await store.set_follower(fed.db, peer.host, "rejected")
    fed.admission.forget_all()


async def block(fed: Federation, target: str) -> int:
    """Refuse everything from a domain and purge its listings; how many went."""
    name = domain(target)
    await store.block_domain(fed.db, name)
    fed.admission.forget_all()
    return await remote.remove_listings_of(fed.db, name)


async def unblock(fed: Federation, target: str) -> None:
    if not await store.unblock_domain(fed.db, domain(target)):
        raise PeerError(f"{domain(target)} is not blocked")
