"""This node's own actors: the node actor and one Group actor per public group."""
from __future__ import annotations

from federation import store
from federation.context import Federation
from federation.signatures import SignedAuth
from node.domain import Group, Visibility
from node.storage.groups import get_group, get_group_by_id

NODE = "node"


def group_owner(group: Group) -> str:
    return f"group:{group.id}"


def is_federated(group: Group | None) -> bool:
    """Only this node's public groups, unsuspended and not held for review, are actors
    and leave the node."""
    return (group is not None and group.is_local and group.visibility is Visibility.PUBLIC
            and not group.suspended and not group.held)


async def actor_url(fed: Federation, owner: str) -> str | None:
    if owner == NODE:
        return fed.urls.node_actor
    group = await get_group_by_id(fed.db, int(owner.removeprefix("group:")))
    if group is not None:
        return fed.urls.group(group.slug)
    return await store.actor_of(fed.db, owner)  # a deleted group still signs its Delete


async def key_id_for(fed: Federation, owner: str) -> str:
    url = await actor_url(fed, owner)
    if url is None:
        raise LookupError(f"{owner} no longer exists")
    return f"{url}#main-key"


async def federated_group(fed: Federation, slug: str) -> Group | None:
    group = await get_group(fed.db, slug)
    return group if is_federated(group) else None


async def node_auth(fed: Federation) -> SignedAuth:
    """Signs this node's GETs, for peers that require signed fetches."""
    if fed.node_signer is None:
        key = await store.key_for(fed.db, NODE)
        fed.node_signer = SignedAuth(f"{fed.urls.node_actor}#main-key", key.private_pem)
    return fed.node_signer
