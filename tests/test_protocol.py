"""ActivityPub as other servers see it, against the real app.

JSON-LD (every document served and every activity stored expands offline
against the bundled contexts), WebFinger / host-meta / NodeInfo, content
negotiation on the HTML URLs, a Mastodon-style follower running on loopback
that follows a group and receives its meetings, and the admin peers page.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
from pyld import jsonld
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from federation.addresses import url_host
from federation.documents import AS_PUBLIC
from federation.keys import generate_key, public_pem
from federation.signatures import (
    SignatureError,
    check,
    parse_signature_header,
    sign_headers,
    verify_request,
)
from node.app import create_app
from node.cli import initialise
from node.config import load_config
from node.db import Database
from node.domain import NodeSettings, RegistrationMode
from node.storage import groups
from node.storage.settings import save_settings
from tests import helpers
from tests.conftest import Browser
from tests.helpers import free_port, group_form, loopback_server, wait_for
from tests.jsonld import AS, GRASSROOTS, SEC, expand, offline_loader, undefined_terms

BASE = "http://testserver"
HOST = "testserver"
AP_TYPE = "application/activity+json"
AP = {"Accept": AP_TYPE}
LD = {"Accept": 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'}
HTML = {"Accept": "text/html,application/xhtml+xml"}
LDP_INBOX = "http://www.w3.org/ns/ldp#inbox"
MZ = "https://joinmobilizon.org/ns#"
XSD_DATETIME = "http://www.w3.org/2001/XMLSchema#dateTime"

SLUG = "tuesday-grief-circle"
SECRET_LINK = "https://meet.example.org/room-4471-secret"
FACILITATOR = ("Fay Facilitator", "fay.facilitator@example.org")
MEMBER = ("Rowan Quietly", "rowan.quietly@example.org")
FIRST = helpers.FIRST_MEETING


key = helpers.local_key


def meeting_form(**overrides: object) -> dict[str, object]:
    """A weekly hybrid meeting with an online link and capacity."""
    return helpers.meeting_form(**{"repeat": "weekly", "format": "hybrid",
                                   "online_url": SECRET_LINK, "capacity": "12", **overrides})


def create_group(b: Browser, **overrides: object) -> str:
    r = b.post("/groups/new", group_form(**overrides), page="/groups/new")
    assert r.status_code == 303, r.text
    return r.headers["location"].removeprefix("/groups/")


def schedule(b: Browser, slug: str, **overrides: object) -> int:
    r = b.post(f"/groups/{slug}/events/new", meeting_form(**overrides),
               page=f"/groups/{slug}/events/new")
    assert r.status_code == 303, r.text
    return int(r.headers["location"].removeprefix("/events/"))


def ap_get(b: Browser | TestClient, url: str, headers: dict[str, str] = AP) -> dict[str, Any]:
    r = b.get(url, headers=headers)
    assert r.status_code == 200, (url, r.status_code, r.text[:200])
    assert r.headers["content-type"].split(";")[0] == AP_TYPE, url
    return r.json()


def values(expanded: dict[str, Any], iri: str) -> list[Any]:
    """The @value or @id of each entry of one expanded property."""
    return [e.get("@value", e.get("@id")) for e in expanded.get(iri, [])]


@dataclass
class Listings:
    public: str
    private: str
    unlisted: str
    event: int
    private_event: int
    unlisted_event: int


@pytest.fixture
def listings(visitor, open_registration) -> Listings:
    """A facilitator's public, private and unlisted groups, each with a hybrid meeting;
    a member of the public group going to the next meeting."""
    fay = visitor()
    fay.register(*FACILITATOR)
    public = create_group(fay)
    private = create_group(fay, name="Hidden Circle", visibility="private")
    unlisted = create_group(fay, name="Quiet Corner", visibility="unlisted")
    event = schedule(fay, public)
    private_event = schedule(fay, private)
    unlisted_event = schedule(fay, unlisted)
    rowan = visitor()
    rowan.register(*MEMBER)
    assert rowan.post(f"/groups/{public}/join",
                      {"accept_agreements": "yes"}).status_code == 303
    r = rowan.post(f"/events/{event}/rsvp", {"on": key(FIRST), "answer": "yes"})
    assert r.status_code == 303, r.text
    assert "1 going" in rowan.get(f"/events/{event}").text
    return Listings(public, private, unlisted, event, private_event, unlisted_event)


# 1. JSON-LD ---------------------------------------------------------------------------


def test_offline_loader_serves_only_the_bundled_contexts():
    assert offline_loader("https://www.w3.org/ns/activitystreams")["document"]["@context"]
    assert offline_loader("https://w3id.org/security/v1")["document"]["@context"]
    with pytest.raises(jsonld.JsonLdError):
        expand({"@context": "https://joinmastodon.org/ns", "id": "https://x.example/1"})
    with pytest.raises(jsonld.JsonLdError):
        expand({"@context": ["https://www.w3.org/ns/activitystreams",
                             "https://w3id.org/security/v2"], "id": "https://x.example/1"})


def _served(b: Browser, listings: Listings) -> dict[str, dict[str, Any]]:
    """Every ActivityPub document the node serves about its public listings."""
    docs = {url: ap_get(b, url) for url in (
        "/actor", "/actor/outbox", "/actor/followers", "/actor/following",
        f"/groups/{listings.public}", f"/groups/{listings.public}/outbox",
        f"/groups/{listings.public}/followers", f"/events/{listings.event}")}
    for collection in ("/actor/outbox", f"/groups/{listings.public}/outbox"):
        first = docs[collection]["first"]
        assert first.startswith(BASE + collection)
        docs[first] = ap_get(b, first.removeprefix(BASE))
    return docs


def _stored_activities(run_db) -> list[dict[str, Any]]:
    rows = run_db(lambda db: db.fetchall("SELECT body FROM activities ORDER BY seq"))
    return [json.loads(row[0]) for row in rows]


def test_every_served_document_and_stored_activity_expands_offline(listings, visitor,
                                                                   run_db):
    fay = visitor()
    fay.login(FACILITATOR[1])
    # An Update (meeting edited) and a Delete (a public group made private) too.
    assert fay.post(f"/events/{listings.event}/edit", meeting_form(title="Evening circle, moved"),
                    page=f"/events/{listings.event}/edit").status_code == 303
    gone = create_group(fay, name="Short Lived Circle")
    wait_for(lambda: any(a["object"].get("id") == f"{BASE}/groups/{gone}"
                         for a in _stored_activities(run_db)), "the new group's Create")
    assert fay.post(f"/groups/{gone}/edit", group_form(name="Short Lived Circle",
                                                       visibility="private"),
                    page=f"/groups/{gone}/edit").status_code == 303
    wanted = {("Create", "Group"), ("Create", "Event"), ("Update", "Event"),
              ("Delete", "Tombstone")}
    activities = wait_for(
        lambda: (found := _stored_activities(run_db)) and wanted <= {
            (a["type"], a["object"].get("type")) for a in found} and found,
        "the publisher to store Create, Update and Delete activities")

    anyone = visitor()
    served = _served(anyone, listings)
    page = served[f"{BASE}/actor/outbox?page=1"]
    # The group made private took back everything it published: the rest is served.
    gone_actor = f"{BASE}/groups/{gone}"
    kept = {a["id"] for a in activities if a["actor"] != gone_actor}
    assert kept and {a["id"] for a in page["orderedItems"]} == kept

    for name, document in [*served.items(), *((a["id"], a) for a in activities)]:
        expanded = expand(document)
        assert len(expanded) == 1, name
        assert expanded[0]["@id"] == document["id"], name
        assert not undefined_terms(expanded), (name, undefined_terms(expanded))
    for activity in activities:
        (expanded,) = expand(activity)
        assert expanded["@type"] == [AS + activity["type"]]
        assert values(expanded, AS + "actor") == [activity["actor"]]
        assert values(expanded, AS + "to") == [AS_PUBLIC]
        (obj,) = expanded[AS + "object"]
        assert obj["@id"] == activity["object"]["id"]

    # Key terms land on the right IRIs.
    event = served[f"/events/{listings.event}"]
    (e,) = expand(event)
    assert e["@type"] == [AS + "Event"]
    assert e[AS + "startTime"] == [{"@type": XSD_DATETIME, "@value": event["startTime"]}]
    assert e[AS + "endTime"] == [{"@type": XSD_DATETIME, "@value": event["endTime"]}]
    assert e[GRASSROOTS + "recurrence"] == [{"@type": "@json", "@value": event["recurrence"]}]
    assert event["recurrence"]["rrule"].startswith("FREQ=WEEKLY")
    assert values(e, MZ + "timezone") == ["Europe/London"]
    assert values(e, MZ + "isOnline") == [False]
    assert values(e, AS + "attributedTo") == [f"{BASE}/groups/{listings.public}"]
    assert values(e, AS + "to") == [AS_PUBLIC]
    (place,) = e[AS + "location"]
    assert place["@type"] == [AS + "Place"]
    (address,) = place["http://schema.org#address"]
    assert values(address, "http://schema.org#streetAddress") == ["12 Kirkgate, Edinburgh"]

    group = served[f"/groups/{listings.public}"]
    (g,) = expand(group)
    assert g["@type"] == [AS + "Group"]
    assert values(g, LDP_INBOX) == [group["inbox"]]
    assert values(g, AS + "outbox") == [group["outbox"]]
    assert values(g, AS + "followers") == [group["followers"]]
    assert values(g, AS + "preferredUsername") == [listings.public]
    assert values(g, AS + "manuallyApprovesFollowers") == [False]
    assert values(g, "http://joinmastodon.org/ns#discoverable") == [True]
    (endpoints,) = g[AS + "endpoints"]
    assert values(endpoints, AS + "sharedInbox") == [f"{BASE}/inbox"]
    (public_key,) = g[SEC + "publicKey"]
    assert public_key["@id"] == f"{group['id']}#main-key"
    assert values(public_key, SEC + "owner") == [group["id"]]
    assert values(public_key, SEC + "publicKeyPem") == [group["publicKey"]["publicKeyPem"]]
    assert set(values(g, GRASSROOTS + "topics")) == {"grief", "bereavement"}

    (node,) = expand(served["/actor"])
    assert node["@type"] == [AS + "Application"]
    assert values(node, LDP_INBOX) == [f"{BASE}/actor/inbox"]

    (followers,) = expand(served[f"/groups/{listings.public}/followers"])
    assert values(followers, AS + "totalItems") == [0]
    (first,) = expand(page)
    assert first["@type"] == [AS + "OrderedCollectionPage"]
    (items,) = first[AS + "items"]
    assert [i["@id"] for i in items["@list"]] == [a["id"] for a in page["orderedItems"]]


# 2. WebFinger, host-meta, NodeInfo ---------------------------------------------------------


def webfinger(b: Browser, resource: str | None) -> httpx.Response:
    params = {} if resource is None else {"resource": resource}
    return b.get("/.well-known/webfinger", params=params)


def test_webfinger_finds_public_groups_and_the_node_actor(listings, visitor):
    anyone = visitor()
    for resource in (f"acct:{listings.public}@{HOST}", f"{BASE}/groups/{listings.public}"):
        r = webfinger(anyone, resource)
        assert r.status_code == 200
        assert r.headers["content-type"].split(";")[0] == "application/jrd+json"
        assert r.headers["access-control-allow-origin"] == "*"
        jrd = r.json()
        assert jrd["subject"] == f"acct:{listings.public}@{HOST}"
        (self_link,) = [link for link in jrd["links"] if link["rel"] == "self"]
        assert self_link["type"] == AP_TYPE
        actor = ap_get(anyone, self_link["href"].removeprefix(BASE))
        assert self_link["href"] == actor["id"] == f"{BASE}/groups/{listings.public}"
        assert actor["type"] == "Group"

    r = webfinger(anyone, f"acct:{HOST}@{HOST}")
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "*"
    (self_link,) = [link for link in r.json()["links"] if link["rel"] == "self"]
    node = ap_get(anyone, "/actor")
    assert self_link["href"] == node["id"] == f"{BASE}/actor"
    assert node["type"] == "Application" and node["preferredUsername"] == HOST


def test_webfinger_refuses_missing_unknown_and_hidden_resources(listings, visitor):
    anyone = visitor()
    assert webfinger(anyone, None).status_code == 400
    assert webfinger(anyone, "").status_code == 400
    for resource in (f"acct:no-such-group@{HOST}", f"acct:{listings.public}@other.example",
                     f"acct:{listings.private}@{HOST}", f"acct:{listings.unlisted}@{HOST}",
                     f"{BASE}/groups/{listings.private}", f"{BASE}/groups/{listings.unlisted}",
                     "acct:fay.facilitator@example.org", f"acct:admin@{HOST}"):
        r = webfinger(anyone, resource)
        assert r.status_code == 404, resource
        assert "Hidden Circle" not in r.text and "Quiet Corner" not in r.text


def test_host_meta_points_at_webfinger(client):
    r = client.get("/.well-known/host-meta")
    assert r.status_code == 200
    assert r.headers["content-type"].split(";")[0] == "application/xrd+xml"
    root = ET.fromstring(r.content)
    ns = "{http://docs.oasis-open.org/ns/xri/xrd-1.0}"
    assert root.tag == f"{ns}XRD"
    (lrdd,) = [link for link in root.iter(f"{ns}Link") if link.get("rel") == "lrdd"]
    template = lrdd.get("template")
    assert template == f"{BASE}/.well-known/webfinger?resource={{uri}}"
    r = client.get(template.replace("{uri}", f"acct:{HOST}@{HOST}").removeprefix(BASE))
    assert r.status_code == 200


def test_nodeinfo_21_has_every_required_field_and_no_identities(listings, visitor, run_db):
    anyone = visitor()
    r = anyone.get("/.well-known/nodeinfo")
    assert r.status_code == 200
    (link,) = r.json()["links"]
    assert link == {"rel": "http://nodeinfo.diaspora.software/ns/schema/2.1",
                    "href": f"{BASE}/nodeinfo/2.1"}
    r = anyone.get(link["href"].removeprefix(BASE))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    info = r.json()
    assert info["version"] == "2.1"
    assert re.fullmatch(r"[a-z0-9-]+", info["software"]["name"])
    assert isinstance(info["software"]["version"], str) and info["software"]["version"]
    assert info["protocols"] == ["activitypub"]
    assert isinstance(info["services"]["inbound"], list)
    assert isinstance(info["services"]["outbound"], list)
    assert info["openRegistrations"] is True
    assert isinstance(info["metadata"], dict)
    users = info["usage"]["users"]
    assert users and all(isinstance(n, int) and n >= 0 for n in users.values())
    active = run_db(lambda db: db.fetchval(
        "SELECT count(*) FROM accounts WHERE status = 'active'"))
    assert users["total"] == active == 3  # the admin, the facilitator, the member
    # Counts only: nobody's name or email is anywhere in it.
    names = run_db(lambda db: db.fetchall("SELECT display_name, email FROM accounts"))
    for name, email in names:
        assert f'"{name}"' not in r.text
        assert email is None or email not in r.text
    for secret in (*FACILITATOR, *MEMBER, "@example.org"):
        assert secret not in r.text

    run_db(lambda db: save_settings(db, NodeSettings(registration=RegistrationMode.APPROVAL)))
    assert anyone.get("/nodeinfo/2.1").json()["openRegistrations"] is False


# 3. Content negotiation -----------------------------------------------------------------


def test_group_url_serves_the_actor_to_activitypub_and_html_to_browsers(listings, visitor):
    anyone = visitor()
    for headers in (LD, AP, {"Accept": "application/json"}):  # plain JSON, as Mastodon answers
        r = anyone.get(f"/groups/{listings.public}", headers=headers)
        assert r.status_code == 200
        assert r.headers["content-type"].split(";")[0] == AP_TYPE
        assert "accept" in r.headers["vary"].lower()
        group = r.json()
        assert group["type"] == "Group"
        assert group["id"] == f"{BASE}/groups/{listings.public}"
        for name in ("inbox", "outbox", "followers"):
            assert url_host(group[name]) == HOST, name
            assert group[name].startswith(group["id"] + "/"), name
        assert url_host(group["endpoints"]["sharedInbox"]) == HOST
        assert group["publicKey"]["owner"] == group["id"]
        assert group["publicKey"]["id"] == group["id"] + "#main-key"
        assert group["publicKey"]["publicKeyPem"].startswith("-----BEGIN PUBLIC KEY-----")
        assert group["manuallyApprovesFollowers"] is False
        assert group["discoverable"] is True
        assert group["preferredUsername"] == listings.public
        assert group["name"] == "Tuesday Grief Circle"

    page = anyone.get(f"/groups/{listings.public}", headers=HTML)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<h1" in page.text and "Tuesday Grief Circle" in page.text
    assert anyone.get(f"/groups/{listings.public}").headers["content-type"].startswith(
        "text/html")
    # A browser that also takes JSON still gets the page.
    both = anyone.get(f"/groups/{listings.public}",
                      headers={"Accept": "text/html,application/json;q=0.9,*/*;q=0.8"})
    assert both.headers["content-type"].startswith("text/html")
    meeting = ap_get(anyone, f"/events/{listings.event}", {"Accept": "application/json"})
    assert meeting["type"] == "Event"


def test_private_and_unlisted_groups_and_their_meetings_are_404_to_activitypub(listings,
                                                                                visitor):
    anyone = visitor()
    fay = visitor()
    fay.login(FACILITATOR[1])
    for b in (anyone, fay):  # even a member's cookies do not make the AP document appear
        for headers in (AP, LD):
            for url in (f"/groups/{listings.private}", f"/groups/{listings.unlisted}",
                        f"/events/{listings.private_event}",
                        f"/events/{listings.unlisted_event}",
                        f"/groups/{listings.private}/outbox",
                        f"/groups/{listings.private}/followers", "/groups/no-such-group",
                        "/events/999999"):
                r = b.get(url, headers=headers)
                assert r.status_code == 404, url
                assert "Hidden Circle" not in r.text and "Quiet Corner" not in r.text
    # The unlisted group's page is still there for people with its link.
    assert anyone.get(f"/groups/{listings.unlisted}", headers=HTML).status_code == 200


@pytest.mark.parametrize("visibility", ["private", "unlisted"])
def test_a_group_taken_back_stops_serving_everything_it_published(listings, visitor, run_db,
                                                                 visibility):
    """Public, then private or unlisted: every URL served before answers 404 with nothing of
    the group in it, and the node's outbox no longer lists any of its activities."""
    fay = visitor()
    fay.login(FACILITATOR[1])
    slug, event = listings.public, listings.event
    actor = f"{BASE}/groups/{slug}"

    def published() -> list[dict[str, Any]]:
        return [a for a in _stored_activities(run_db) if a["actor"] == actor]

    wait_for(lambda: {a["object"].get("type") for a in published()} >= {"Group", "Event"},
             "the group and its meeting published")
    urls = [f"/groups/{slug}", f"/groups/{slug}/outbox", f"/groups/{slug}/outbox?page=1",
            f"/groups/{slug}/followers", f"/events/{event}", f"/events/{event}/note",
            *(a["id"].removeprefix(BASE) for a in published())]
    anyone = visitor()
    for url in urls:
        assert anyone.get(url, headers=AP).status_code == 200, url
    if visibility == "private":
        urls += [f"/groups/{slug}/events.ics", f"/events/{event}"]
        assert anyone.get(f"/groups/{slug}/events.ics").status_code == 200

    assert fay.post(f"/groups/{slug}/edit", group_form(visibility=visibility),
                    page=f"/groups/{slug}/edit").status_code == 303
    wait_for(lambda: any(a["type"] == "Delete" and a["object"]["id"] == actor
                         for a in published()), "the group's Delete")
    for url in urls:
        r = anyone.get(url, headers=AP if "." not in url.rsplit("/", 1)[-1] else HTML)
        assert r.status_code in (404, 410), (url, r.status_code)
        assert "Tuesday Grief Circle" not in r.text and slug not in r.text, url
    page = ap_get(anyone, "/actor/outbox?page=1")
    assert not any(a["actor"] == actor for a in page["orderedItems"])
    assert ap_get(anyone, "/actor/outbox")["totalItems"] == len(page["orderedItems"])


def test_event_is_public_by_the_group_and_carries_no_member_data(listings, visitor, run_db):
    anyone = visitor()
    r = anyone.get(f"/events/{listings.event}", headers=LD)
    assert r.status_code == 200
    event = r.json()
    group_id = f"{BASE}/groups/{listings.public}"
    assert event["type"] == "Event"
    assert event["id"] == f"{BASE}/events/{listings.event}"
    assert AS_PUBLIC in event["to"]
    assert event["attributedTo"] == group_id
    assert event["name"] == "Evening circle"
    assert event["startTime"].startswith(key(FIRST))
    assert event["endTime"].startswith(key(FIRST + timedelta(minutes=90)))
    assert event["timezone"] == "Europe/London"
    assert event["location"]["type"] == "Place"
    assert event["location"]["address"]["streetAddress"] == "12 Kirkgate, Edinburgh"
    assert event["maximumAttendeeCapacity"] == 12
    assert event["remainingAttendeeCapacity"] == 11  # a count of the one going, never who
    assert event["participantCount"] == 1

    text = r.text
    assert "meet.example.org" not in text and "room-4471" not in text
    rows = run_db(lambda db: db.fetchall("SELECT display_name, email FROM accounts"))
    for name, email in rows:
        assert f'"{name}"' not in text
        assert email is None or email not in text
    for secret in (*FACILITATOR, *MEMBER):
        assert secret not in text
    # The HTML page, to someone who is not a member, does not show the link either.
    assert "meet.example.org" not in anyone.get(f"/events/{listings.event}").text


# 4. A Mastodon-style follower on loopback -------------------------------------------------


@cache
def mastodon_key() -> str:
    return generate_key()


@dataclass
class Delivered:
    path: str
    content_type: str
    key_id: str | None
    algorithm: str | None
    signed: tuple[str, ...]
    verified: bool
    reason: str | None
    body: dict[str, Any]
    raw: bytes


@dataclass
class Mastodon:
    """A Person actor with a key, and inboxes that record and verify what they receive."""

    port: int
    keys: dict[str, str] = field(default_factory=dict)  # keyId -> public PEM we trust
    received: list[Delivered] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def actor(self) -> str:
        return f"{self.base}/users/alice"

    def document(self) -> dict[str, Any]:
        return {
            "@context": ["https://www.w3.org/ns/activitystreams",
                         "https://w3id.org/security/v1"],
            "id": self.actor, "type": "Person", "preferredUsername": "alice",
            "name": "Alice", "inbox": f"{self.actor}/inbox", "outbox": f"{self.actor}/outbox",
            "followers": f"{self.actor}/followers",
            "endpoints": {"sharedInbox": f"{self.base}/inbox"},
            "publicKey": {"id": f"{self.actor}#main-key", "owner": self.actor,
                          "publicKeyPem": public_pem(mastodon_key())},
        }

    def app(self) -> Starlette:
        async def actor(request: Request) -> Response:
            return JSONResponse(self.document(), media_type=AP_TYPE)

        async def inbox(request: Request) -> Response:
            body = await request.body()
            raw_path = (request.scope.get("raw_path") or request.url.path.encode()).decode()
            key_id, algorithm, signed, verified, reason = None, None, (), False, None
            try:
                params = parse_signature_header(request.headers["signature"])
                key_id, algorithm, signed = params.key_id, params.algorithm, params.headers
                pem = self.keys.get(key_id)
                if pem is None:
                    raise SignatureError(f"unknown key {key_id}")
                check(verify_request(request.method, raw_path, request.url.query or None,
                                     request.headers, body, pem))
                verified = True
            except (KeyError, SignatureError) as error:
                reason = str(error)
            with self.lock:
                self.received.append(Delivered(
                    request.url.path, request.headers.get("content-type", ""), key_id,
                    algorithm, signed, verified, reason, json.loads(body), body))
            return Response(status_code=202 if verified else 401)

        return Starlette(routes=[
            Route("/users/alice", actor),
            Route("/users/alice/inbox", inbox, methods=["POST"]),
            Route("/inbox", inbox, methods=["POST"]),
        ])

    def find(self, test: Callable[[dict[str, Any]], bool]) -> Delivered | None:
        with self.lock:
            return next((d for d in self.received if test(d.body)), None)


@pytest.fixture
def mastodon() -> Iterator[Mastodon]:
    remote = Mastodon(free_port())
    with loopback_server(remote.app(), remote.port):
        yield remote


@pytest.fixture
def dev_node(tmp_path: Path) -> Iterator[tuple[TestClient, Browser, Path]]:
    """The app as `grassroots serve --dev` runs it (private peers allowed), its admin."""
    data = tmp_path / "dev-node"
    link = initialise(data, BASE)
    with TestClient(create_app(load_config(data), dev=True), base_url=BASE) as client:
        admin = Browser(client)
        path = link.removeprefix(BASE)
        assert admin.post(path, page=path).status_code == 303
        yield client, admin, data


def signed_post(client: TestClient, path: str, activity: dict[str, Any]) -> httpx.Response:
    body = json.dumps(activity).encode()
    headers = {"Content-Type": AP_TYPE}
    headers.update(sign_headers("POST", BASE + path, headers, body,
                                f"{activity['actor']}#main-key", mastodon_key()))
    return client.post(path, content=body, headers=headers)


def test_mastodon_follower_gets_accepted_then_meetings_then_undoes(dev_node, mastodon):
    client, admin, data = dev_node
    slug = create_group(admin)
    group = ap_get(client, f"/groups/{slug}")
    mastodon.keys[group["publicKey"]["id"]] = group["publicKey"]["publicKeyPem"]

    follow = {"@context": "https://www.w3.org/ns/activitystreams",
              "id": f"{mastodon.base}/7a1c0b2e-follow", "type": "Follow",
              "actor": mastodon.actor, "object": group["id"]}
    # Mastodon sends a Follow (and its Undo) to the followed actor's own inbox.
    inbox = group["inbox"].removeprefix(BASE)
    assert inbox == f"/groups/{slug}/inbox"
    assert signed_post(client, inbox, follow).status_code == 202

    accept = wait_for(lambda: mastodon.find(lambda a: a["type"] == "Accept"),
                      "the group's Accept")
    assert accept.verified, accept.reason
    assert accept.key_id == f"{group['id']}#main-key"
    assert accept.path == "/users/alice/inbox"
    assert accept.body["actor"] == group["id"]
    obj = accept.body["object"]
    assert obj["id"] == follow["id"] and obj["type"] == "Follow"
    assert obj["actor"] == mastodon.actor and obj["object"] == group["id"]
    assert url_host(accept.body["id"]) == HOST

    followers = ap_get(client, f"/groups/{slug}/followers")
    assert followers["type"] == "OrderedCollection" and followers["totalItems"] == 1
    assert not {"items", "orderedItems", "first"} & followers.keys()
    assert mastodon.actor not in json.dumps(followers)

    started = time.monotonic()
    event_id = schedule(admin, slug)
    note_id = f"{BASE}/events/{event_id}/note"

    def notes(kind: str) -> list[Delivered]:
        with mastodon.lock:
            return [d for d in mastodon.received if d.body["type"] == kind
                    and d.body["object"].get("id") == note_id]

    create = wait_for(lambda: notes("Create"), "the meeting's Note", timeout=5)[0]
    print(f"\nmeeting scheduled -> its Note received in {time.monotonic() - started:.2f} s")
    assert create.verified, create.reason
    assert create.key_id == f"{group['id']}#main-key"
    assert create.body["actor"] == group["id"] == create.body["object"]["attributedTo"]
    assert AS_PUBLIC in create.body["to"] and AS_PUBLIC in create.body["object"]["to"]
    assert create.path == "/inbox"  # the follower's shared inbox
    assert f"{BASE}/events/{event_id}" in create.body["object"]["content"]
    assert b"meet.example.org" not in create.raw
    # Fetching the Note's id gives that Note, not the Event.
    served = ap_get(client, f"/events/{event_id}/note")
    assert served["type"] == "Note" and served["id"] == note_id
    assert served["content"] == create.body["object"]["content"]

    # Moved: the same post is updated with the new time, its `updated` moving on.
    assert admin.post(f"/events/{event_id}/edit", meeting_form(starts_at="2031-03-04T20:30"),
                      page=f"/events/{event_id}/edit").status_code == 303
    update = wait_for(lambda: [u for u in notes("Update") if "2031" in u.body["object"]["content"]],
                      "the Note's Update", timeout=5)[0]
    assert update.verified and update.body["actor"] == group["id"]
    assert "Tue 4 Mar 2031, 20:30 (Europe/London)" in update.body["object"]["content"]
    assert "Cancelled" not in update.body["object"]["content"]
    assert update.body["object"]["updated"] >= create.body["object"]["updated"]
    assert update.body["object"]["published"] == create.body["object"]["published"]

    # Cancelled: updated again, saying so.
    assert admin.post(f"/events/{event_id}/cancel", {"action": "cancel", "confirmed": "yes"},
                      page=f"/events/{event_id}").status_code == 303
    cancelled = wait_for(lambda: [u for u in notes("Update")
                                  if "Cancelled" in u.body["object"]["content"]],
                         "the cancellation", timeout=5)[0]
    assert "Tue 4 Mar 2031, 20:30" in cancelled.body["object"]["content"]

    # Each meeting is one post: the follower was sent no Event and no Announce of it.
    with mastodon.lock:
        posts = [d.body for d in mastodon.received if d.body["type"] in ("Create", "Announce")
                 and d.body["object"].get("type") != "Group"]
    assert [p["object"]["type"] for p in posts] == ["Note"], posts

    undo = {"@context": "https://www.w3.org/ns/activitystreams",
            "id": f"{mastodon.base}/7a1c0b2e-follow/undo", "type": "Undo",
            "actor": mastodon.actor, "object": {k: v for k, v in follow.items()
                                                if k != "@context"}}
    assert signed_post(client, inbox, undo).status_code == 202
    wait_for(lambda: ap_get(client, f"/groups/{slug}/followers")["totalItems"] == 0,
             "the follower to be gone")

    # What was sent, as received and as stored, expands offline with no undefined term.
    with mastodon.lock:
        bodies = [d.body for d in mastodon.received]
    stored = [json.loads(r[0]) for r in helpers.run_on(
        data, lambda db: db.fetchall("SELECT body FROM activities"))]
    assert {a["type"] for a in stored} >= {"Accept", "Create", "Update"}
    for document in (*bodies, *stored):
        (expanded,) = expand(document)
        assert expanded["@id"] == document["id"]
        assert not undefined_terms(expanded), undefined_terms(expanded)
    for delivered in mastodon.received:
        # Signed as Mastodon checks it (draft-cavage-12, rsa-sha256, body digest).
        assert delivered.verified, delivered.reason
        assert delivered.algorithm == "rsa-sha256"
        assert {"(request-target)", "host", "date", "digest"} <= set(delivered.signed)
        assert delivered.content_type.split(";")[0] == AP_TYPE


def test_a_deleted_group_still_signs_its_delete_to_its_mastodon_follower(dev_node, mastodon):
    """Its followers' rows go with the group; its Delete still reaches everyone who was sent
    anything of it, signed with the key the follower knows."""
    client, admin, data = dev_node
    slug = create_group(admin)
    group = ap_get(client, f"/groups/{slug}")
    mastodon.keys[group["publicKey"]["id"]] = group["publicKey"]["publicKeyPem"]
    follow = {"@context": "https://www.w3.org/ns/activitystreams",
              "id": f"{mastodon.base}/5d1e-follow", "type": "Follow",
              "actor": mastodon.actor, "object": group["id"]}
    assert signed_post(client, f"/groups/{slug}/inbox", follow).status_code == 202
    wait_for(lambda: mastodon.find(lambda a: a["type"] == "Accept"), "the group's Accept")
    event_id = schedule(admin, slug)
    wait_for(lambda: mastodon.find(lambda a: a["type"] == "Create"
                                   and a["object"].get("type") == "Note"), "the meeting's Note")

    async def delete(db: Database) -> None:
        await groups.delete_group(db, await db.fetchval(
            "SELECT id FROM groups WHERE slug = ?", (slug,)))
    helpers.run_on(data / "grassroots.db", delete)

    gone = wait_for(lambda: mastodon.find(lambda a: a["type"] == "Delete"
                                          and a["object"].get("id") == group["id"]),
                    "the group's Delete at its follower")
    assert gone.verified, gone.reason
    assert gone.key_id == group["publicKey"]["id"] and gone.body["actor"] == group["id"]
    for url in (f"/groups/{slug}", f"/events/{event_id}", f"/events/{event_id}/note"):
        assert client.get(url, headers=AP).status_code == 404, url


# 5. /admin/peers --------------------------------------------------------------------------


@dataclass
class Counter:
    hits: int = 0


@pytest.fixture
def bystander() -> Iterator[tuple[str, Counter]]:
    """A loopback server counting every request: a peer address the node must not reach."""
    counter = Counter()
    port = free_port()

    async def answer(request: Request) -> Response:
        counter.hits += 1
        return Response("nothing here", status_code=404)

    app = Starlette(routes=[Route("/{path:path}", answer, methods=["GET", "POST"])])
    with loopback_server(app, port):
        yield f"127.0.0.1:{port}", counter


def peers_form(b: Browser, target: str) -> httpx.Response:
    return b.post("/admin/peers", {"action": "follow", "target": target}, page="/admin/peers")


def test_peers_page_is_for_admins_only(admin, visitor, open_registration):
    r = visitor().get("/admin/peers", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/admin/peers"
    member = visitor()
    member.register(*MEMBER)
    assert member.get("/admin/peers").status_code == 403
    r = member.post("/admin/peers", {"action": "follow", "target": "other.example"},
                    page="/groups")
    assert r.status_code == 403
    page = admin.get("/admin/peers")
    assert page.status_code == 200
    assert 'name="target"' in page.text and 'value="follow"' in page.text


def test_follow_form_with_a_bad_address_shows_the_error_beside_the_field(admin, run_db):
    for target in ("not a peer address!", "ftp://other.example", "https://user:pw@other.example"):
        r = peers_form(admin, target)
        assert r.status_code == 400, target
        error = re.search(r'<p class="error" id="e-target">([^<]+)</p>', r.text)
        assert error and "not a peer address" in error.group(1), r.text
        assert re.search(r'<input id="f-target" name="target"[^>]*aria-invalid="true"', r.text)
    assert run_db(lambda db: db.fetchval("SELECT count(*) FROM peers")) == 0


def test_private_peer_addresses_are_refused_without_dev_and_never_contacted(
        admin, run_db, data_dir, bystander):
    where, counter = bystander
    port = where.split(":")[1]
    refusals = {f"http://{where}": "scheme &#39;http&#39; not allowed",
                f"https://{where}": "address 127.0.0.1 is not public",
                f"https://localhost:{port}": "localhost resolves to 127.0.0.1, which is not public"}
    for target, reason in refusals.items():
        r = peers_form(admin, target)
        assert r.status_code == 400, target
        error = re.search(r'<p class="error" id="e-target">([^<]+)</p>', r.text)
        assert error and reason in error.group(1), (target, error and error.group(1))
    for target, reason in ((f"http://{where}", "scheme 'http' not allowed"),
                           (f"https://{where}", "address 127.0.0.1 is not public")):
        result = subprocess.run(
            [sys.executable, "-m", "node.cli", "peers", "follow", target, "--data",
             str(data_dir)], check=False, capture_output=True, text=True, timeout=60)
        assert result.returncode == 1, result
        assert reason in result.stderr + result.stdout
    assert counter.hits == 0
    assert run_db(lambda db: db.fetchval("SELECT count(*) FROM peers")) == 0
    assert run_db(lambda db: db.fetchval("SELECT count(*) FROM deliveries")) == 0

    # The same address with --dev is reached: the counter above does count.
    result = subprocess.run(
        [sys.executable, "-m", "node.cli", "peers", "follow", f"http://{where}", "--dev",
         "--data", str(data_dir)], check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "HTTP 404" in result.stderr + result.stdout
    assert counter.hits >= 1
