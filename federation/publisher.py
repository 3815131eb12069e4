"""Turning changes of local listings into activities for followers.

The node records each change of a local group or meeting in
``listing_changes`` (in the same transaction). Here each change becomes,
from the object's current state: a Create (first time public), an Update
(already published) or a Delete (gone, or no longer public), stored with
one delivery per follower inbox in one write. Peer nodes get the Group and
Event; a group's own followers (Mastodon and other microblogs) get the group
and one Note per meeting, created, updated and deleted with it. A Delete goes
to every inbox that was ever sent the object, followers or not.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from federation import store
from federation.context import Federation
from federation.documents import (
    AS_PUBLIC,
    activity,
    event_object,
    group_actor,
    meeting_note,
    note_id,
)
from federation.local import group_owner, is_federated
from node.domain import Event, Group, RsvpStatus
from node.storage.events import changes_of, get_event, occurrences_of, rsvp_counts
from node.storage.groups import get_group_by_id
from node.storage.themes import public_themes

Send = tuple[dict[str, Any], list[str]]


async def publish_pending(fed: Federation, limit: int = 100) -> int:
    """Settle up to ``limit`` recorded changes; how many were settled."""
    changes = await store.take_changes(fed.db, limit)
    for seq, kind, local_id in changes:
        if kind == "group":
            sends, owner, published = await _group_change(fed, local_id)
        else:
            sends, owner, published = await _event_change(fed, local_id)
        await store.settle_change(fed.db, seq, kind, local_id, sends, owner, published)
    if changes:
        fed.wake_delivery.set()
    return len(changes)


async def _followers(fed: Federation, group_id: int) -> tuple[list[str], list[str]]:
    """(peer node inboxes, inboxes of the group's own followers)."""
    return (await store.follower_inboxes(fed.db),
            await store.group_follower_inboxes(fed.db, group_id))


def _addressed(fed: Federation, kind: str, actor: str, obj: Any) -> dict[str, Any]:
    return activity(fed.urls.new_activity(), kind, actor, obj, to=[AS_PUBLIC],
                    cc=[f"{actor}/followers"], published=datetime.now(UTC).isoformat(
                        timespec="seconds"))


def _meeting_sends(fed: Federation, actor: str, act: dict[str, Any], peers: list[str],
                   group_followers: list[str]) -> list[Send]:
    """The Event activity for peer nodes; the same change of its Note for the group's
    followers, so a microblog shows each meeting once, with its current time."""
    obj = act["object"]
    note = {"id": note_id(obj["id"]), "type": "Tombstone"} if act["type"] == "Delete" \
        else meeting_note(obj)
    sends: list[Send] = [(act, peers)]
    if group_followers:
        sends.append((_addressed(fed, act["type"], actor, note), group_followers))
    return sends


async def _group_change(fed: Federation, group_id: int):
    group = await get_group_by_id(fed.db, group_id)
    published = await store.publication(fed.db, "group", group_id)
    owner = f"group:{group_id}"
    peers, group_followers = await _followers(fed, group_id)
    if is_federated(group):
        key = await store.key_for(fed.db, owner)
        document = group_actor(fed.urls, group, key.public_pem)
        kind = "Update" if published else "Create"
        act = _addressed(fed, kind, document["id"], document)
        return [(act, peers + group_followers)], owner, (document["id"], owner)
    if published:
        ap_id = published[0]
        act = _addressed(fed, "Delete", ap_id, {"id": ap_id, "type": "Tombstone"})
        everyone = peers + group_followers + await store.audience_of(fed.db, owner)
        return [(act, everyone)], owner, None
    return [], owner, None


async def event_document(fed: Federation, event: Event, group: Group) -> dict[str, Any]:
    """The meeting as served and sent: its next occurrence and the whole series."""
    now = datetime.now(UTC)
    upcoming = await occurrences_of(fed.db, event, now, now + timedelta(days=400))
    going = 0
    if upcoming:
        going = (await rsvp_counts(fed.db, event.id, upcoming[0].key))[RsvpStatus.GOING]
    return event_object(fed.urls, group, event, await changes_of(fed.db, event.id),
                        upcoming[0] if upcoming else None, going,
                        await public_themes(fed.db, event.id, now))


async def _event_change(fed: Federation, event_id: int):
    event = await get_event(fed.db, event_id)
    published = await store.publication(fed.db, "event", event_id)
    owner = published[1] if published else "node"
    # A deleted meeting is found through the group that published it.
    group_id = event.group_id if event else (
        int(owner.removeprefix("group:")) if owner.startswith("group:") else None)
    group = await get_group_by_id(fed.db, group_id) if group_id else None
    if event is not None and is_federated(group):
        owner = group_owner(group)
        document = await event_document(fed, event, group)
        actor = fed.urls.group(group.slug)
        act = _addressed(fed, "Update" if published else "Create", actor, document)
        peers, group_followers = await _followers(fed, group.id)
        return (_meeting_sends(fed, actor, act, peers, group_followers), owner,
                (document["id"], owner))
    if published and group is not None and group.is_local:
        actor = fed.urls.group(group.slug)
        act = _addressed(fed, "Delete", actor, {"id": published[0], "type": "Tombstone"})
        peers, group_followers = await _followers(fed, group.id)
        return _meeting_sends(fed, actor, act, peers, group_followers), owner, None
    return [], owner, None
