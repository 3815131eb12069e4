"""What the inbox can already tell will never apply, so it stores nothing and queues no work.

A verified activity goes on to be stored and applied by its handler
(federation.handlers) unless it is sure to be ignored there: a Create or
Update of an object that is never listed (a Note, a Person), a meeting
attributed to its sender when the sender is no Group (a Person's event; its
key's document already said what it is), or an object or group whose fetch
lately failed for good or gave a document of no use (federation.negative_cache).
The inbox answers these 202 as well, as any sender expects of an accepted
activity, and nothing of them is kept. Outages are not decided here: those
activities are stored, and retried once the origin answers again.
"""
from __future__ import annotations

from typing import Any

from federation.handlers import owner_of
from federation.negative_cache import Kind, NegativeCache
from federation.objects import first_id
from federation.store import RemoteActor

# Tuples, not sets: a peer's "type" may be a list or an object, which do not hash.
LISTED_TYPES = ("Group", "Event")
_REFERENCE_TYPES = (None, "Link")  # only the object's id counts: the handler fetches it
_WRAPPING_TYPES = ("Create", "Update", "Delete")  # an Announce's, unwrapped


def never_applies(activity: dict[str, Any], signer: RemoteActor,
                  cache: NegativeCache) -> str | None:
    """Why ``activity``, verified as ``signer``'s, will be ignored whatever happens; else None."""
    kind = activity["type"]
    obj = activity.get("object")
    if kind in ("Create", "Update"):
        return _upsert_never_applies(obj, signer, cache)
    if kind == "Announce":
        target = obj.get("object") if isinstance(obj, dict) and \
            obj.get("type") in _WRAPPING_TYPES else obj
        return _failed_for_good(first_id(target), cache)
    return None


def _upsert_never_applies(obj: Any, signer: RemoteActor, cache: NegativeCache) -> str | None:
    if not isinstance(obj, dict) or obj.get("type") in _REFERENCE_TYPES:
        return _failed_for_good(first_id(obj), cache)
    kind = obj.get("type")
    if kind not in LISTED_TYPES:
        return f"{str(kind)[:50]!r} objects are not listed"
    if owner_of(obj) != signer.id:  # not the owner's word: the handler fetches the object
        return _failed_for_good(first_id(obj), cache)
    if kind == "Event" and signer.type != "Group":
        return f"a meeting's group must be a Group, and its sender is a {signer.type}"
    failure = cache.failure(signer.id) if kind == "Event" else None
    return failure.reason if failure is not None and failure.kind is Kind.UNUSABLE else None


def _failed_for_good(url: str | None, cache: NegativeCache) -> str | None:
    failure = cache.failure(url) if url is not None else None
    return failure.reason if failure is not None and not failure.transient else None
