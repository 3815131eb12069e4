"""Reports between nodes as ActivityPub ``Flag``s, the shape Mastodon sends.

A Flag we send names the remote object and carries the reason and comment;
its actor is this node, never the member who reported. A Flag we receive
becomes a report when it names one of our own groups or meetings.
"""
from __future__ import annotations

import json
from typing import Any

import httpx

from federation import store
from federation.addresses import url_host
from federation.context import Federation
from federation.documents import activity
from federation.local import NODE
from federation.objects import first_id, plain_text
from node.domain import Event, Group, ReportReason, label
from node.storage.events import get_event
from node.storage.groups import get_group, get_group_by_id
from node.storage.moderation import record_flag

MAX_CONTENT = 2000
MAX_FLAGGED = 20  # object ids looked at in one Flag


class FlagError(Exception):
    """A report that cannot be forwarded; the message says why, in one line."""


def flag_content(reason: ReportReason, comment: str) -> str:
    """The reason as people read it, then the comment: what the peer's admins see."""
    return f"{label(reason)}: {comment}" if comment else label(reason)


def reason_of(content: str) -> ReportReason:
    """Our own Flags start with the reason's label; anything else is "other"."""
    for reason in ReportReason:
        if content.startswith(label(reason)):
            return reason
    return ReportReason.OTHER


async def send_flag(fed: Federation, object_id: str, content: str) -> str:
    """Queue a Flag of ``object_id`` to its origin node's inbox; the Flag's id."""
    origin = url_host(object_id)
    peer = await store.get_peer(fed.db, origin)
    if peer is None or await store.is_blocked(fed.db, origin):
        raise FlagError(f"{origin} is not a peer this node can send to")
    flag = activity(fed.urls.new_activity(), "Flag", fed.urls.node_actor, [object_id],
                    to=[peer.actor_id])
    flag["content"] = content[:MAX_CONTENT]
    await store.publish(fed.db, flag, NODE, [peer.inbox], object_id)
    fed.wake_delivery.set()
    return flag["id"]


async def _local_object(fed: Federation, object_id: str) -> tuple[Group, Event | None] | None:
    """Our group or meeting at this URL, if it is one."""
    try:
        if url_host(object_id) != fed.urls.host:
            return None
    except ValueError:
        return None
    parts = httpx.URL(object_id).path.strip("/").split("/")
    if len(parts) != 2:
        return None
    if parts[0] == "groups":
        group = await get_group(fed.db, parts[1])
        return (group, None) if group is not None and group.is_local else None
    if parts[0] == "events" and parts[1].isdigit() and len(parts[1]) < 19:  # an SQLite integer
        event = await get_event(fed.db, int(parts[1]))
        group = await get_group_by_id(fed.db, event.group_id) if event else None
        return (group, event) if group is not None and group.is_local else None
    return None


async def receive_flag(fed: Federation, act: dict[str, Any], host: str) -> bool:
    """Record a peer's Flag about our listing (a meeting rather than its group, if
    both are named); False when it names nothing of ours."""
    named = act.get("object")
    ids = [first_id(item) for item in (named if isinstance(named, list) else [named])]
    found = [hit for object_id in ids[:MAX_FLAGGED] if isinstance(object_id, str)
             if (hit := await _local_object(fed, object_id)) is not None]
    if not found:
        return False
    group, event = max(found, key=lambda hit: hit[1] is not None)
    content = plain_text(act.get("content"), MAX_CONTENT)
    await record_flag(fed.db, flag_id=act["id"], peer_host=host, body=json.dumps(act),
                      group_id=group.id, event_id=event.id if event else None,
                      target_name=event.title if event else group.name,
                      reason=reason_of(content), comment=content)
    return True
