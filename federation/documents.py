"""ActivityStreams documents this node serves and sends.

Pure functions from domain values to plain JSON-ready dicts, in the shapes
Mastodon and Mobilizon read: an ``Application`` node actor, ``Group`` actors
and ``Event`` objects. What Mobilizon has no term for travels in the
``grassroots:`` extension (see FEDERATION.md). Nothing here ever takes a
member, a membership, an RSVP list, an email or an online link as input.
"""
from __future__ import annotations

import html
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from federation.addresses import url_host
from node.domain import (
    Event,
    Format,
    Group,
    JoinPolicy,
    NodeSettings,
    Occurrence,
    OccurrenceChange,
)
from node.text import render_markdown

AS_PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
AS_CONTEXT = "https://www.w3.org/ns/activitystreams"
SECURITY_CONTEXT = "https://w3id.org/security/v1"
GRASSROOTS_NS = "urn:x-grassroots:ns#"
MOBILIZON_NS = "https://joinmobilizon.org/ns#"

EXTENSION_CONTEXT: dict[str, Any] = {
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "schema": "http://schema.org#",
    "mz": MOBILIZON_NS,
    "ical": "http://www.w3.org/2002/12/cal/ical#",
    "grassroots": GRASSROOTS_NS,
    "manuallyApprovesFollowers": "as:manuallyApprovesFollowers",
    "sensitive": "as:sensitive",
    "Hashtag": "as:Hashtag",
    "discoverable": "http://joinmastodon.org/ns#discoverable",
    "PostalAddress": "schema:PostalAddress",
    "address": {"@id": "schema:address", "@type": "@id"},
    "streetAddress": "schema:streetAddress",
    "addressLocality": "schema:addressLocality",
    "inLanguage": "schema:inLanguage",
    "timezone": {"@id": "mz:timezone", "@type": "xsd:string"},
    "isOnline": {"@id": "mz:isOnline", "@type": "xsd:boolean"},
    "joinMode": {"@id": "mz:joinMode", "@type": "mz:joinModeType"},
    "maximumAttendeeCapacity": "schema:maximumAttendeeCapacity",
    "remainingAttendeeCapacity": "schema:remainingAttendeeCapacity",
    "participantCount": {"@id": "mz:participantCount", "@type": "xsd:integer"},
    "recurrence": {"@id": "grassroots:recurrence", "@type": "@json"},
    "topics": {"@id": "grassroots:topics", "@container": "@set"},
    "audiences": {"@id": "grassroots:audiences", "@container": "@set"},
    "accessibility": {"@id": "grassroots:accessibility", "@container": "@set"},
    "cost": "grassroots:cost",
    "format": "grassroots:format",
    "area": "grassroots:area",
    "joinPolicy": "grassroots:joinPolicy",
    "agreements": "grassroots:agreements",
    "contact": "grassroots:contact",
    "languages": {"@id": "grassroots:languages", "@container": "@set"},
}
CONTEXT: list[Any] = [AS_CONTEXT, SECURITY_CONTEXT, EXTENSION_CONTEXT]

# Mobilizon's joinMode for each of our join policies.
JOIN_MODES = {JoinPolicy.OPEN: "free", JoinPolicy.APPROVAL: "restricted",
              JoinPolicy.INVITE: "invite"}


@dataclass(frozen=True, slots=True)
class Urls:
    """Every public URL of this node, from its base URL."""

    base: str
    # The canonical host (with a non-default port), as peers compare it.
    host: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "host", url_host(self.base))

    @property
    def node_actor(self) -> str:
        return f"{self.base}/actor"

    @property
    def shared_inbox(self) -> str:
        return f"{self.base}/inbox"

    def actor(self, owner: str, slug: str | None = None) -> str:
        return self.node_actor if owner == "node" else self.group(slug or "")

    def group(self, slug: str) -> str:
        return f"{self.base}/groups/{slug}"

    def event(self, event_id: int) -> str:
        return f"{self.base}/events/{event_id}"

    def new_activity(self) -> str:
        return f"{self.base}/activities/{uuid.uuid4()}"


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def key_document(actor_id: str, public_pem: str) -> dict[str, Any]:
    return {"id": f"{actor_id}#main-key", "owner": actor_id, "publicKeyPem": public_pem}


def node_actor(urls: Urls, settings: NodeSettings, public_pem: str) -> dict[str, Any]:
    actor = urls.node_actor
    return {
        "@context": CONTEXT,
        "id": actor,
        "type": "Application",
        "preferredUsername": urls.host,
        "name": settings.name,
        "summary": str(render_markdown(settings.description)),
        "url": urls.base + "/",
        "inbox": f"{actor}/inbox",
        "outbox": f"{actor}/outbox",
        "followers": f"{actor}/followers",
        "following": f"{actor}/following",
        "endpoints": {"sharedInbox": urls.shared_inbox},
        "manuallyApprovesFollowers": True,
        "discoverable": False,
        "publicKey": key_document(actor, public_pem),
    }


def group_actor(urls: Urls, group: Group, public_pem: str) -> dict[str, Any]:
    """A public group as a ``Group`` actor that Mastodon can follow."""
    actor = urls.group(group.slug)
    document: dict[str, Any] = {
        "@context": CONTEXT,
        "id": actor,
        "type": "Group",
        "preferredUsername": group.slug,
        "name": group.name,
        "summary": f"<p>{html.escape(group.summary)}</p>",
        "content": str(render_markdown(group.description)),
        "source": markdown_source(group.description),
        "url": actor,
        "inbox": f"{actor}/inbox",
        "outbox": f"{actor}/outbox",
        "followers": f"{actor}/followers",
        "endpoints": {"sharedInbox": urls.shared_inbox},
        "attributedTo": urls.node_actor,
        "manuallyApprovesFollowers": False,
        "discoverable": True,
        "published": group.created_at,
        "updated": group.updated_at,
        "publicKey": key_document(actor, public_pem),
        "tag": [hashtag(urls, t) for t in group.topics],
        "topics": list(group.topics),
        "languages": list(group.languages),
        "audiences": list(group.audiences),
        "accessibility": list(group.accessibility),
        "cost": group.cost.value,
        "format": group.format.value,
        "area": group.area,
        "joinPolicy": group.join_policy.value,
        "agreements": group.agreements,
        "contact": group.contact,
    }
    if group.area or group.address:
        document["location"] = place(group.area, group.address, group.area)
    return document


def markdown_source(text: str) -> dict[str, str]:
    """The Markdown a text was written in (ActivityPub's ``source``), beside its HTML."""
    return {"content": text, "mediaType": "text/markdown"}


def hashtag(urls: Urls, topic: str) -> dict[str, str]:
    return {"type": "Hashtag", "name": f"#{topic.replace('-', '_')}",
            "href": f"{urls.base}/groups?topic={topic}"}


def place(name: str, street: str, locality: str) -> dict[str, Any]:
    """A ``Place`` as Mobilizon reads it; with no name of its own, it is named by its street."""
    return {
        "type": "Place",
        "name": name or street,
        "address": {"type": "PostalAddress", "streetAddress": street,
                    "addressLocality": locality},
    }


def recurrence(event: Event, changes: list[OccurrenceChange],
               themes: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """The series as RFC 5545 pieces, local to its zone; with ``themes`` (occurrence key,
    theme), those of a group that made its meetings' themes public."""
    document: dict[str, Any] = {
        "dtstart": event.starts_at.strftime("%Y-%m-%dT%H:%M"),
        "timezone": event.timezone,
        "durationMinutes": event.duration_minutes,
        "rrule": event.rrule,
        "cancelled": [c.original_start.strftime("%Y-%m-%dT%H:%M")
                      for c in changes if c.cancelled],
        "moved": [
            {"original": c.original_start.strftime("%Y-%m-%dT%H:%M"),
             "start": c.starts_at.strftime("%Y-%m-%dT%H:%M"),
             "durationMinutes": c.duration_minutes}  # null: the series' own
            for c in changes if not c.cancelled and c.starts_at is not None
        ],
    }
    if themes is not None:
        document["themes"] = [{"original": key, "name": name} for key, name in themes]
    return document


def event_object(
    urls: Urls,
    group: Group,
    event: Event,
    changes: list[OccurrenceChange],
    next_occurrence: Occurrence | None,
    going: int,
    themes: list[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """A meeting as the ``Event`` Mobilizon lists: public, by the group.

    ``startTime`` is the next occurrence (or the first, once all are past);
    the whole series travels in ``recurrence``. Only the aggregate count of
    people going is included, never who. ``themes`` are given only when the group made
    them public.
    """
    group_id = urls.group(group.slug)
    start = next_occurrence.start if next_occurrence else event.starts_at.replace(tzinfo=event.tz)
    end = next_occurrence.end if next_occurrence else None
    document: dict[str, Any] = {
        "@context": CONTEXT,
        "id": urls.event(event.id),
        "type": "Event",
        "name": event.title,
        "content": str(render_markdown(event.description)),
        "mediaType": "text/html",
        "source": markdown_source(event.description),
        "startTime": iso(start),
        "timezone": event.timezone,
        "isOnline": event.format is Format.ONLINE,
        "format": event.format.value,
        "joinMode": JOIN_MODES[group.join_policy],
        "inLanguage": group.languages[0] if group.languages else "en",
        "languages": list(group.languages),
        "attributedTo": group_id,
        "to": [AS_PUBLIC],
        "cc": [f"{group_id}/followers"],
        "url": urls.event(event.id),
        "published": event.created_at,
        "updated": event.updated_at,
        "tag": [hashtag(urls, t) for t in group.topics],
        "topics": list(group.topics),
        "accessibility": list(group.accessibility),
        "audiences": list(group.audiences),
        "cost": group.cost.value,
        "participantCount": going,
        "recurrence": recurrence(event, changes, themes),
        "ical:status": "CANCELLED" if event.cancelled else "CONFIRMED",
    }
    if end is not None:
        document["endTime"] = iso(end)
    if event.place or event.address:
        document["location"] = place(event.place, event.address, group.area)
    if event.capacity is not None:
        document["maximumAttendeeCapacity"] = event.capacity
        document["remainingAttendeeCapacity"] = max(0, event.capacity - going)
    return document


def note_id(event_id: str) -> str:
    """The meeting's Note has a URL of its own, so fetching its id returns the Note."""
    return f"{event_id}/note"


def meeting_note(event: dict[str, Any]) -> dict[str, Any]:
    """The one post a microblog follower sees of a meeting, in the form Mastodon shows.

    It is created, updated (new time, cancellation) and deleted with the meeting;
    ``updated`` moves on with every change, as Mastodon requires to apply an edit.
    """
    start = datetime.fromisoformat(event["startTime"])
    when = f"{start:%a} {start.day} {start:%b %Y, %H:%M} ({event['timezone']})"
    heading = "Cancelled" if event.get("ical:status") == "CANCELLED" else "Meeting"
    content = (f'<p>{heading}: <a href="{html.escape(event["url"])}">'
               f'{html.escape(event["name"])}</a><br>{html.escape(when)}</p>')
    return {
        "id": note_id(event["id"]),
        "type": "Note",
        "attributedTo": event["attributedTo"],
        "content": content,
        "url": event["url"],
        "to": event["to"],
        "cc": event["cc"],
        "published": event["published"],
        "updated": event["updated"],
        "tag": event["tag"],
    }


def activity(
    activity_id: str,
    kind: str,
    actor: str,
    obj: Any,
    *,
    to: list[str] | None = None,
    cc: list[str] | None = None,
    published: str | None = None,
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "@context": CONTEXT,
        "id": activity_id,
        "type": kind,
        "actor": actor,
        "object": _embedded(obj),
    }
    if to is not None:
        document["to"] = to
    if cc is not None:
        document["cc"] = cc
    if published is not None:
        document["published"] = published
    return document


def _embedded(obj: Any) -> Any:
    """An object inside an activity carries no @context of its own."""
    if isinstance(obj, dict):
        return {k: v for k, v in obj.items() if k != "@context"}
    return obj


def ordered_collection(collection_id: str, total: int, first: str | None) -> dict[str, Any]:
    document: dict[str, Any] = {"@context": CONTEXT, "id": collection_id,
                                "type": "OrderedCollection", "totalItems": total}
    if first:
        document["first"] = first
    return document


def collection_page(page_id: str, part_of: str, items: list[Any],
                    next_page: str | None) -> dict[str, Any]:
    document: dict[str, Any] = {"@context": CONTEXT, "id": page_id,
                                "type": "OrderedCollectionPage", "partOf": part_of,
                                "orderedItems": items}
    if next_page:
        document["next"] = next_page
    return document
