"""The inbox end to end: real HTTP to real remote actors on loopback, real SQLite.

Our node is `inbox` mounted in a small Starlette app (driven by TestClient);
every other server is one uvicorn on 127.0.0.1 answering for the names
`*.test`, which the node's fetcher resolves to 127.0.0.1. Each refusal is
checked for its status and for an empty inbox_items table. Requests are
signed with draft-cavage, as this node sends them, or with RFC 9421
(tests/helpers.py, `cryptography` alone), as Mastodon 4.5 and Fedify do.
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from functools import cache, partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from federation import actors, admission, peers, store
from federation.acceptor import InboxAcceptor
from federation.actors import ActorError, key_for_signature
from federation.context import Federation
from federation.documents import Urls
from federation.fetch import Fetcher
from federation.inbox import MAX_BODY_BYTES, inbox
from federation.keys import generate_key, load_private_key, public_pem
from federation.signatures import digest_header, sign_headers
from node.config import Config
from tests.helpers import (
    content_digest,
    database,
    free_port,
    loopback_server,
    multikey,
    sign_rfc9421,
)

AP = "application/activity+json"
AS = "https://www.w3.org/ns/activitystreams"


@cache
def private_key(name: str) -> str:
    return generate_key()


@cache
def ed25519_key(name: str) -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


async def loopback_names(host: str, port: int) -> list[str]:
    """The fetcher's DNS: every `*.test` name is the loopback server."""
    if host.endswith(".test"):
        return ["127.0.0.1"]
    raise OSError(f"{host} is not a test name")


# --- the other servers ---------------------------------------------------------------


class Remote:
    """Every remote server at once: documents by URL (Host header and path), hits counted."""

    def __init__(self) -> None:
        self.port = free_port()
        self.documents: dict[str, tuple[int, bytes, dict[str, str]]] = {}
        self.hits: Counter[str] = Counter()
        self.app = Starlette(routes=[Route("/{path:path}", self._answer)])

    def url(self, host: str, path: str) -> str:
        return f"http://{host}:{self.port}{path}"

    def serve(self, document: dict[str, Any], url: str | None = None) -> None:
        self.documents[url or document["id"]] = (200, json.dumps(document).encode(),
                                                 {"content-type": AP})

    def fail(self, url: str, status: int, headers: dict[str, str] | None = None) -> None:
        self.documents[url] = (status, b"", headers or {})

    async def _answer(self, request: Request) -> Response:
        url = f"http://{request.headers['host']}{request.url.path}"
        self.hits[url] += 1
        status, body, headers = self.documents.get(url, (404, b"", {}))
        return Response(body, status_code=status, headers=headers)


@pytest.fixture(scope="module")
def remote() -> Iterator[Remote]:
    world = Remote()
    with loopback_server(world.app, world.port):
        yield world


def actor_document(url: str, key: str, **overrides: Any) -> dict[str, Any]:
    base = url.split("/users/")[0]
    document = {
        "@context": [AS, "https://w3id.org/security/v1"],
        "id": url,
        "type": "Person",
        "preferredUsername": url.rsplit("/", 1)[1],
        "inbox": f"{url}/inbox",
        "outbox": f"{url}/outbox",
        "endpoints": {"sharedInbox": f"{base}/inbox"},
        "publicKey": {"id": f"{url}#main-key", "owner": url, "publicKeyPem": public_pem(key)},
    }
    document.update(overrides)
    return document


def multikey_entry(actor: str, name: str, fragment: str = "#ed25519-key",
                   **overrides: Any) -> dict[str, Any]:
    """A FEP-521a assertionMethod entry for the Ed25519 key `ed25519_key(name)`."""
    return {"id": f"{actor}{fragment}", "type": "Multikey", "controller": actor,
            "publicKeyMultibase": multikey(ed25519_key(name).public_key()), **overrides}


# --- our node ------------------------------------------------------------------------


class Node:
    """`inbox` at the three inbox paths, with a real database and fetcher in its lifespan."""

    def __init__(self, tmp_path: Path, public_url: str,
                 make_fetcher: Callable[[], Fetcher]) -> None:
        self.public_url = public_url
        config = Config(data_dir=tmp_path, public_url=public_url, secret_key="test")

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
            self.db = database(tmp_path / "node.db")
            await self.db.open()
            self.fetcher = make_fetcher()
            acceptor = InboxAcceptor(self.db)
            acceptor.start()
            try:
                self.fed = Federation(self.db, self.fetcher, Urls(public_url))
                yield {"db": self.db, "fetcher": self.fetcher, "config": config,
                       "federation": self.fed, "acceptor": acceptor}
            finally:
                await acceptor.stop()
                await self.fetcher.aclose()
                await self.db.close()

        app = Starlette(lifespan=lifespan, routes=[
            Route(path, inbox, methods=["POST"])
            for path in ("/inbox", "/actor/inbox", "/groups/{slug}/inbox")
        ])
        self.client = TestClient(app, base_url=public_url)

    def call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run an async storage or federation function in the app's event loop."""
        return self.client.portal.call(partial(function, *args, **kwargs))

    def stored(self) -> list[str]:
        rows = self.call(self.db.fetchall, "SELECT activity_id FROM inbox_items")
        return [row[0] for row in rows]

    def follows(self, actor_id: str) -> None:
        """Make the actor's host a peer this node follows (accepted)."""
        host = actor_id.split("/")[2]
        self.call(store.save_peer, self.db, host, actor_id, f"{actor_id}/inbox", None)
        self.call(store.set_following, self.db, host, "accepted")

    def signed(self, activity: dict[str, Any], key_id: str, key: str, path: str = "/inbox",
               date: datetime | None = None) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(activity).encode()
        headers = {"Content-Type": AP}
        if date is not None:
            headers["Date"] = format_datetime(date, usegmt=True)
        headers.update(sign_headers("POST", self.public_url + path, headers, body, key_id, key))
        return body, headers

    def signed_rfc9421(self, activity: dict[str, Any], key_id: str,
                       key: str | ed25519.Ed25519PrivateKey, path: str = "/inbox",
                       url: str | None = None, **options: Any) -> tuple[bytes, dict[str, str]]:
        """Signed per RFC 9421 for ``url`` (this node's ``path`` unless given)."""
        body = json.dumps(activity).encode()
        headers = {"content-type": AP}
        headers |= sign_rfc9421("POST", url or self.public_url + path, headers, body, key_id,
                                key, **options)
        return body, headers

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return self.client.post(path, content=body, headers=headers)

    def deliver(self, activity: dict[str, Any], key_id: str, key: str,
                path: str = "/inbox") -> httpx.Response:
        return self.post(path, *self.signed(activity, key_id, key, path))


@pytest.fixture
def node(tmp_path: Path, remote: Remote) -> Iterator[Node]:
    remote.documents.clear()
    remote.hits.clear()
    ours = Node(tmp_path, remote.url("ours.test", ""),
                lambda: Fetcher(allow_private=True, resolver=loopback_names))
    with ours.client:
        yield ours


@pytest.fixture
def alice(node: Node, remote: Remote) -> str:
    """An actor on a peer this node follows, served with the key `private_key('alice')`."""
    url = remote.url("peer.test", "/users/alice")
    remote.serve(actor_document(url, private_key("alice")))
    node.follows(url)
    return url


def create(actor: str, number: int = 1, **object_fields: Any) -> dict[str, Any]:
    """A Create of a meeting of the group ``circle`` on the actor's host, which may apply
    (a Person's own meeting never can, and is not kept: tests/test_ignoring.py)."""
    origin = actor.split("/users/")[0]
    return {
        "@context": AS,
        "id": f"{origin}/activities/{number}",
        "type": "Create",
        "actor": actor,
        "object": {"id": f"{origin}/events/{number}", "type": "Event", "name": "Tea and talk",
                   "attributedTo": f"{origin}/groups/circle", **object_fields},
    }


def follow(actor: str, target: str = "http://ours.test/actor") -> dict[str, Any]:
    """A Follow of this node's actor (the inbox does not look at a string object)."""
    origin = actor.split("/users/")[0]
    return {"@context": AS, "id": f"{origin}/follows/1", "type": "Follow", "actor": actor,
            "object": target}


def refused(response: httpx.Response, status: int, node: Node, reason: str = "") -> None:
    assert response.status_code == status, response.text
    assert reason in response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert "\n" not in response.text.strip()
    assert node.stored() == []


# --- accepted ------------------------------------------------------------------------


def test_signed_create_from_a_followed_peer_is_stored_once_with_202(node: Node, alice: str,
                                                                    remote: Remote) -> None:
    activity = create(alice)
    response = node.deliver(activity, f"{alice}#main-key", private_key("alice"))
    assert response.status_code == 202, response.text
    assert node.stored() == [activity["id"]]
    row = node.call(node.db.fetchone, "SELECT actor, host, type, body FROM inbox_items")
    assert (row[0], row[1], row[2]) == (alice, f"peer.test:{remote.port}", "Create")
    assert json.loads(row[3]) == activity


def test_the_same_activity_twice_is_202_both_times_and_stored_once(node: Node,
                                                                   alice: str) -> None:
    activity = create(alice)
    for _ in range(2):
        response = node.deliver(activity, f"{alice}#main-key", private_key("alice"))
        assert response.status_code == 202, response.text
    assert node.stored() == [activity["id"]]


def test_group_and_node_actor_inboxes_verify_against_their_own_path(node: Node,
                                                                    alice: str) -> None:
    for number, path in enumerate(("/actor/inbox", "/groups/tea-circle/inbox"), start=1):
        response = node.deliver(create(alice, number), f"{alice}#main-key", private_key("alice"),
                                path=path)
        assert response.status_code == 202, response.text
    assert len(node.stored()) == 2


def test_a_bare_key_document_whose_owner_lists_it_is_accepted(node: Node,
                                                              remote: Remote) -> None:
    actor = remote.url("peer.test", "/users/bob")
    key_id = remote.url("peer.test", "/keys/bob")
    document = actor_document(actor, private_key("bob"))
    document["publicKey"]["id"] = key_id
    remote.serve(document)
    remote.serve({"id": key_id, "type": "CryptographicKey", "owner": actor,
                  "publicKeyPem": public_pem(private_key("bob"))})
    node.follows(actor)
    assert node.deliver(create(actor), key_id, private_key("bob")).status_code == 202
    assert len(node.stored()) == 1


def test_a_rotated_key_is_refetched_once_and_then_verifies(node: Node, alice: str,
                                                           remote: Remote,
                                                           monkeypatch) -> None:
    monkeypatch.setattr(actors, "REFRESH_INTERVAL", timedelta(0))
    assert node.deliver(create(alice, 1), f"{alice}#main-key",
                        private_key("alice")).status_code == 202
    remote.serve(actor_document(alice, private_key("alice-rotated")))
    response = node.deliver(create(alice, 2), f"{alice}#main-key", private_key("alice-rotated"))
    assert response.status_code == 202, response.text
    assert remote.hits[alice] == 2
    assert len(node.stored()) == 2


def test_a_peer_blocked_here_is_refused_at_once_though_it_was_just_admitted(
        node: Node, alice: str) -> None:
    key = f"{alice}#main-key"
    assert node.deliver(create(alice, 1), key, private_key("alice")).status_code == 202
    node.call(peers.block, node.fed, "peer.test")
    response = node.deliver(create(alice, 2), key, private_key("alice"))
    assert (response.status_code, response.text) == (403, "domain is blocked")


def test_an_unfollow_written_by_another_process_counts_within_a_second(
        node: Node, alice: str) -> None:
    key = f"{alice}#main-key"
    assert node.deliver(create(alice, 1), key, private_key("alice")).status_code == 202
    host = alice.split("/")[2]
    node.call(store.set_following, node.db, host, "none")  # as `grassroots peers unfollow` does
    time.sleep(admission.TTL + 0.1)
    response = node.deliver(create(alice, 2), key, private_key("alice"))
    assert (response.status_code, response.text) == (403, "not a followed or approved peer")


def test_follow_from_an_unknown_peer_is_accepted_but_its_create_is_403(node: Node,
                                                                       remote: Remote) -> None:
    stranger = remote.url("stranger.test", "/users/sam")
    remote.serve(actor_document(stranger, private_key("sam")))
    refused(node.deliver(create(stranger), f"{stranger}#main-key", private_key("sam")), 403, node,
            "not a followed or approved peer")
    assert remote.hits[stranger] == 0  # refused before any fetch
    response = node.deliver(follow(stranger), f"{stranger}#main-key", private_key("sam"))
    assert response.status_code == 202, response.text
    assert node.stored() == [follow(stranger)["id"]]


def test_undo_from_an_actor_known_by_its_follow_is_accepted(node: Node,
                                                            remote: Remote) -> None:
    stranger = remote.url("stranger.test", "/users/sam")
    remote.serve(actor_document(stranger, private_key("sam")))
    key_id = f"{stranger}#main-key"
    assert node.deliver(follow(stranger), key_id, private_key("sam")).status_code == 202
    undo = {"@context": AS, "id": remote.url("stranger.test", "/undo/1"), "type": "Undo",
            "actor": stranger, "object": follow(stranger)}
    assert node.deliver(undo, key_id, private_key("sam")).status_code == 202
    assert node.stored() == [follow(stranger)["id"], undo["id"]]
    refused_create = node.deliver(create(stranger), key_id, private_key("sam"))
    assert refused_create.status_code == 403


# --- signatures ----------------------------------------------------------------------


def test_request_without_a_signature_is_401(node: Node, alice: str) -> None:
    body = json.dumps(create(alice)).encode()
    refused(node.post("/inbox", body, {"Content-Type": AP}), 401, node, "not signed")


def test_forged_signature_is_401_and_the_key_is_not_refetched_again(node: Node, alice: str,
                                                                     remote: Remote) -> None:
    response = node.deliver(create(alice), f"{alice}#main-key", private_key("mallory"))
    refused(response, 401, node, "signature does not match")
    assert remote.hits[alice] == 1  # fetched once; the refetch for rotation is rate-limited


def test_tampered_body_is_401(node: Node, alice: str) -> None:
    body, headers = node.signed(create(alice), f"{alice}#main-key", private_key("alice"))
    tampered = body.replace(b"Tea and talk", b"Pay me here")
    refused(node.post("/inbox", tampered, headers), 401, node, "Digest does not match")


def test_tampered_body_with_a_matching_digest_is_401(node: Node, alice: str) -> None:
    body, headers = node.signed(create(alice), f"{alice}#main-key", private_key("alice"))
    tampered = body.replace(b"Tea and talk", b"Pay me here")
    refused(node.post("/inbox", tampered, headers | {"Digest": digest_header(tampered)}), 401,
            node, "signature does not match")


def test_tampered_path_is_401(node: Node, alice: str) -> None:
    body, headers = node.signed(create(alice), f"{alice}#main-key", private_key("alice"),
                                path="/groups/tea/inbox")
    refused(node.post("/groups/other/inbox", body, headers), 401, node, "signature does not match")


def test_tampered_query_is_401(node: Node, alice: str) -> None:
    body, headers = node.signed(create(alice), f"{alice}#main-key", private_key("alice"),
                                path="/inbox?page=1")
    refused(node.post("/inbox?page=2", body, headers), 401, node, "signature does not match")


def test_tampered_host_is_401(node: Node, alice: str) -> None:
    body, headers = node.signed(create(alice), f"{alice}#main-key", private_key("alice"))
    refused(node.post("/inbox", body, headers | {"Host": "elsewhere.test"}), 401, node,
            "signature does not match")


def test_date_two_hours_old_is_401(node: Node, alice: str) -> None:
    body, headers = node.signed(create(alice), f"{alice}#main-key", private_key("alice"),
                                date=datetime.now(UTC) - timedelta(hours=2))
    refused(node.post("/inbox", body, headers), 401, node, "too old")


@pytest.mark.parametrize("algorithm", ["hmac-sha256", "hs2019"])
def test_hmac_keyed_with_the_public_pem_is_401(node: Node, alice: str, algorithm: str) -> None:
    body, headers = node.signed(create(alice), f"{alice}#main-key", private_key("alice"))
    names = ["(request-target)", "host", "date", "digest", "content-type"]
    values = {"(request-target)": "post /inbox", "host": headers["Host"],
              "date": headers["Date"], "digest": headers["Digest"], "content-type": AP}
    message = "\n".join(f"{name}: {values[name]}" for name in names).encode()
    secret = public_pem(private_key("alice")).encode()
    mac = base64.b64encode(hmac.new(secret, message, hashlib.sha256).digest()).decode()
    headers["Signature"] = (f'keyId="{alice}#main-key",algorithm="{algorithm}",'
                            f'headers="{" ".join(names)}",signature="{mac}"')
    refused(node.post("/inbox", body, headers), 401, node)


# --- keys and their owners -----------------------------------------------------------


def test_attackers_key_naming_the_victim_as_owner_is_401(node: Node, alice: str,
                                                         remote: Remote) -> None:
    key_id = remote.url("evil.test", "/keys/1")
    remote.serve({"id": key_id, "type": "CryptographicKey", "owner": alice,
                  "publicKeyPem": public_pem(private_key("mallory"))})
    response = node.deliver(create(alice), key_id, private_key("mallory"))
    refused(response, 401, node)
    assert "does not list" in response.text


def test_key_document_whose_id_is_not_the_key_id_is_401(node: Node, alice: str,
                                                        remote: Remote) -> None:
    key_id = remote.url("peer.test", "/keys/1")
    remote.serve({"id": remote.url("peer.test", "/keys/2"), "type": "CryptographicKey",
                  "owner": alice, "publicKeyPem": public_pem(private_key("alice"))}, url=key_id)
    refused(node.deliver(create(alice), key_id, private_key("alice")), 401, node,
            "is not http://peer.test")


def test_activity_actor_other_than_the_key_owner_is_403(node: Node, alice: str,
                                                        remote: Remote) -> None:
    mallory = remote.url("evil.test", "/users/mallory")
    remote.serve(actor_document(mallory, private_key("mallory")))
    response = node.deliver(create(alice), f"{mallory}#main-key", private_key("mallory"))
    refused(response, 403, node, "owner is not the activity's actor")


@pytest.mark.parametrize("field", ["inbox", "outbox", "sharedInbox", "publicKey.id"])
def test_actor_with_an_endpoint_or_key_on_another_host_is_401(node: Node, remote: Remote,
                                                             field: str) -> None:
    actor = remote.url("peer.test", "/users/carol")
    elsewhere = remote.url("other.test", "/carol")
    document = actor_document(actor, private_key("carol"))
    if field == "sharedInbox":
        document["endpoints"]["sharedInbox"] = elsewhere
    elif field == "publicKey.id":
        document["publicKey"]["id"] = f"{elsewhere}#main-key"
    else:
        document[field] = elsewhere
    remote.serve(document)
    node.follows(actor)
    refused(node.deliver(create(actor), f"{actor}#main-key", private_key("carol")), 401, node,
            "not on the actor's host")
    assert node.call(store.get_actor, node.db, actor) is None


@pytest.mark.parametrize("change", [
    {"type": "Note"},
    {"type": ["Person"]},
    {"preferredUsername": None},
    {"preferredUsername": "x" * 300},
    {"publicKey": None},
    {"publicKey": {"owner": "http://peer.test/users/other"}},
    {"publicKey": {"publicKeyPem": "-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----"}},
    {"inbox": None},
    {"inbox": "ftp://peer.test/inbox"},
])
def test_malformed_actor_document_is_401(node: Node, remote: Remote,
                                         change: dict[str, Any]) -> None:
    actor = remote.url("peer.test", "/users/frank")
    document = actor_document(actor, private_key("frank"))
    for name, value in change.items():
        if isinstance(value, dict):
            document[name] = document[name] | value
        else:
            document[name] = value
    remote.serve(document)
    node.follows(actor)
    refused(node.deliver(create(actor), f"{actor}#main-key", private_key("frank")), 401, node,
            "key: ")
    assert node.call(store.get_actor, node.db, actor) is None


def test_actor_on_our_own_host_is_403_and_never_fetched(node: Node, remote: Remote) -> None:
    impostor = f"{node.public_url}/users/admin"
    remote.serve(actor_document(impostor, private_key("mallory")))
    refused(node.deliver(follow(impostor), f"{impostor}#main-key", private_key("mallory")), 403,
            node, "this node's host")
    assert remote.hits[impostor] == 0


def test_key_redirecting_to_our_own_host_is_refused(node: Node, remote: Remote) -> None:
    impostor = f"{node.public_url}/users/admin"
    remote.serve(actor_document(impostor, private_key("mallory")))
    key_id = remote.url("evil.test", "/users/admin")
    remote.fail(key_id, 302, {"location": impostor})
    with pytest.raises(ActorError, match="this node's host"):
        node.call(key_for_signature, node.db, node.fetcher, key_id,
                  local_host=f"ours.test:{remote.port}")
    assert node.call(store.get_actor, node.db, impostor) is None


def test_failing_key_url_is_not_fetched_twice_in_a_row(node: Node, remote: Remote) -> None:
    actor = remote.url("flaky.test", "/users/dan")
    remote.fail(actor, 500)
    for _ in range(2):
        refused(node.deliver(follow(actor), f"{actor}#main-key", private_key("dan")), 401, node)
    assert remote.hits[actor] == 1


def test_delete_from_a_deleted_actor_is_202_dropped_and_fetched_once(node: Node, alice: str,
                                                                      remote: Remote) -> None:
    departed = remote.url("peer.test", "/users/erin")
    remote.fail(departed, 410)
    delete = {"@context": AS, "id": f"{departed}#delete", "type": "Delete", "actor": departed,
              "object": departed}
    for _ in range(2):
        response = node.deliver(delete, f"{departed}#main-key", private_key("erin"))
        assert response.status_code == 202, response.text
    assert node.stored() == []
    assert remote.hits[departed] == 1


# --- origin --------------------------------------------------------------------------


def test_activity_id_on_another_host_is_403(node: Node, alice: str, remote: Remote) -> None:
    activity = create(alice) | {"id": remote.url("other.test", "/activities/1")}
    refused(node.deliver(activity, f"{alice}#main-key", private_key("alice")), 403, node,
            "activity id is not on the actor's host")


def test_embedded_object_claiming_another_host_is_403(node: Node, alice: str,
                                                      remote: Remote) -> None:
    activity = create(alice, id=remote.url("other.test", "/events/1"))
    refused(node.deliver(activity, f"{alice}#main-key", private_key("alice")), 403, node,
            "embedded object is not on the actor's host")


def test_embedded_object_on_our_own_host_is_403(node: Node, alice: str) -> None:
    activity = create(alice, id=f"{node.public_url}/events/1")
    refused(node.deliver(activity, f"{alice}#main-key", private_key("alice")), 403, node,
            "embedded object is not on the actor's host")


def test_announce_of_a_remote_object_is_accepted(node: Node, alice: str,
                                                 remote: Remote) -> None:
    announce = {"@context": AS, "id": remote.url("peer.test", "/announces/1"),
                "type": "Announce", "actor": alice,
                "object": {"id": remote.url("other.test", "/events/9"), "type": "Event"}}
    response = node.deliver(announce, f"{alice}#main-key", private_key("alice"))
    assert response.status_code == 202, response.text


# --- policy --------------------------------------------------------------------------


def test_blocked_domain_is_403_on_every_port_and_never_fetched(node: Node, alice: str,
                                                               remote: Remote) -> None:
    node.call(store.block_domain, node.db, "peer.test")  # alice is on peer.test:<port>
    refused(node.deliver(create(alice), f"{alice}#main-key", private_key("alice")), 403, node,
            "blocked")
    assert remote.hits[alice] == 0


def test_keyid_on_a_private_address_is_401_without_any_connection(tmp_path: Path) -> None:
    class Unreachable(httpx.AsyncBaseTransport):
        def __init__(self) -> None:
            self.requests: list[httpx.Request] = []

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            raise AssertionError(f"the node connected to {request.url}")

    async def private_names(host: str, port: int) -> list[str]:
        return ["10.1.2.3"]

    transport = Unreachable()
    production = Node(tmp_path, "https://ours.example",
                      lambda: Fetcher(resolver=private_names, transport=transport))
    senders = ["https://127.0.0.1/users/x", "https://[::1]/users/x", "https://10.0.0.1/users/x",
               "https://intranet.example/users/x", "http://peer.example/users/x"]
    with production.client:
        for actor in senders:
            response = production.deliver(follow(actor), f"{actor}#main-key", private_key("x"))
            refused(response, 401, production, "not public" if "http:" not in actor else "scheme")
    assert transport.requests == []


# --- bodies --------------------------------------------------------------------------


def test_body_over_one_megabyte_is_413(node: Node, alice: str) -> None:
    body = b'{"a": "' + b"x" * MAX_BODY_BYTES + b'"}'
    refused(node.post("/inbox", body, {"Content-Type": AP}), 413, node)


def test_body_over_one_megabyte_without_a_length_is_413(node: Node, alice: str) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b" " * 65536

    response = node.client.post("/inbox", content=chunks(), headers={"Content-Type": AP})
    refused(response, 413, node)


def test_a_body_arriving_a_byte_at_a_time_is_read_whole(node: Node, alice: str) -> None:
    activity = create(alice)
    body, headers = node.signed(activity, f"{alice}#main-key", private_key("alice"))

    def bytewise() -> Iterator[bytes]:
        for i in range(len(body)):
            yield body[i:i + 1]

    response = node.client.post("/inbox", content=bytewise(), headers=headers)
    assert response.status_code == 202, response.text
    assert node.stored() == [activity["id"]]


@pytest.mark.parametrize("content_type", ["application/json", "text/html",
                                          "application/x-www-form-urlencoded", ""])
def test_wrong_content_type_is_415(node: Node, alice: str, content_type: str) -> None:
    body, headers = node.signed(create(alice), f"{alice}#main-key", private_key("alice"))
    refused(node.post("/inbox", body, headers | {"Content-Type": content_type}), 415, node)


def test_ld_json_with_the_activitystreams_profile_is_accepted(node: Node, alice: str) -> None:
    body = json.dumps(create(alice)).encode()
    headers = {"Content-Type": f'application/ld+json; profile="{AS}"'}
    headers.update(sign_headers("POST", f"{node.public_url}/inbox", headers, body,
                                f"{alice}#main-key", private_key("alice")))
    assert node.post("/inbox", body, headers).status_code == 202


@pytest.mark.parametrize("body", [
    b'{"a": ' * 10_000 + b"1" + b"}" * 10_000,
    b'{"id": "\xff"}',
    b"{not json",
    b"[]",
    b'{"id": "https://peer.test/1", "type": "Create"}',
    b'{"id": "https://peer.test/1", "type": "Create", "actor": "mailto:a@b"}',
])
def test_malformed_activity_is_400(node: Node, body: bytes) -> None:
    refused(node.post("/inbox", body, {"Content-Type": AP}), 400, node)


# --- RFC 9421 and the signed host ----------------------------------------------------


@pytest.fixture
def carol(node: Node, remote: Remote) -> str:
    """An actor on a followed peer with an RSA key and an Ed25519 Multikey (FEP-521a)."""
    url = remote.url("peer.test", "/users/carol")
    remote.serve(actor_document(url, private_key("carol"),
                                assertionMethod=[multikey_entry(url, "carol")]))
    node.follows(url)
    return url


def test_rfc9421_rsa_signed_create_from_a_followed_peer_is_stored(node: Node, alice: str,
                                                                  remote: Remote) -> None:
    activity = create(alice)
    response = node.post("/inbox", *node.signed_rfc9421(activity, f"{alice}#main-key",
                                                        private_key("alice")))
    assert response.status_code == 202, response.text
    row = node.call(node.db.fetchone, "SELECT activity_id, actor, host, body FROM inbox_items")
    assert tuple(row[:3]) == (activity["id"], alice, f"peer.test:{remote.port}")
    assert json.loads(row[3]) == activity


def test_rfc9421_ed25519_signed_create_from_a_multikey_actor_is_stored(node: Node, carol: str,
                                                                      remote: Remote) -> None:
    activity = create(carol)
    body, headers = node.signed_rfc9421(activity, f"{carol}#ed25519-key", ed25519_key("carol"))
    assert 'alg="ed25519"' in headers["signature-input"]
    response = node.post("/inbox", body, headers)
    assert response.status_code == 202, response.text
    assert node.stored() == [activity["id"]]
    keys = node.call(node.db.fetchall, "SELECT key_id, actor_id FROM remote_actor_keys")
    assert [tuple(k) for k in keys] == [(f"{carol}#ed25519-key", carol)]
    # the key cache in the database answers the next one without a fetch
    time.sleep(admission.TTL + 0.1)
    response = node.post("/inbox", *node.signed_rfc9421(create(carol, 2), f"{carol}#ed25519-key",
                                                        ed25519_key("carol"), alg=None))
    assert response.status_code == 202, response.text
    assert remote.hits[carol] == 1


def test_the_same_actor_may_sign_with_cavage_and_rsa_and_ed25519_rfc9421(node: Node,
                                                                         carol: str) -> None:
    assert node.deliver(create(carol, 1), f"{carol}#main-key",
                        private_key("carol")).status_code == 202
    assert node.post("/inbox", *node.signed_rfc9421(create(carol, 2), f"{carol}#main-key",
                                                    private_key("carol"))).status_code == 202
    assert node.post("/inbox", *node.signed_rfc9421(create(carol, 3), f"{carol}#ed25519-key",
                                                    ed25519_key("carol"))).status_code == 202
    assert len(node.stored()) == 3


def test_a_bare_multikey_document_whose_controller_lists_it_is_accepted(node: Node,
                                                                       remote: Remote) -> None:
    actor = remote.url("peer.test", "/users/dora")
    key_id = remote.url("peer.test", "/keys/dora-ed25519")
    entry = multikey_entry(actor, "dora") | {"id": key_id}
    remote.serve(actor_document(actor, private_key("dora"), assertionMethod=[entry]))
    remote.serve({"@context": "https://w3id.org/security/multikey/v1", **entry})
    node.follows(actor)
    response = node.post("/inbox", *node.signed_rfc9421(create(actor), key_id, ed25519_key("dora")))
    assert response.status_code == 202, response.text


@pytest.mark.parametrize("entry", [
    {"controller": "http://peer.test/users/other"},
    {"type": "Ed25519VerificationKey2020"},
    {"publicKeyMultibase": "zNotAKey"},
    {"id": "http://elsewhere.test/keys/1"},
])
def test_a_multikey_not_controlled_by_the_actor_or_unusable_is_401(node: Node, remote: Remote,
                                                                  entry: dict[str, Any]) -> None:
    actor = remote.url("peer.test", "/users/erik")
    listed = multikey_entry(actor, "erik") | entry
    remote.serve(actor_document(actor, private_key("erik"), assertionMethod=[listed]))
    node.follows(actor)
    response = node.post("/inbox", *node.signed_rfc9421(create(actor), f"{actor}#ed25519-key",
                                                        ed25519_key("erik")))
    refused(response, 401, node, "as its key")
    assert node.call(node.db.fetchall, "SELECT * FROM remote_actor_keys") == []


def test_rfc9421_activity_actor_other_than_the_multikey_controller_is_403(
        node: Node, alice: str, carol: str) -> None:
    response = node.post("/inbox", *node.signed_rfc9421(create(alice), f"{carol}#ed25519-key",
                                                        ed25519_key("carol")))
    refused(response, 403, node, "owner is not the activity's actor")


def test_a_cavage_signature_naming_a_multikey_is_401(node: Node, carol: str) -> None:
    refused(node.deliver(create(carol), f"{carol}#ed25519-key", private_key("carol")), 401, node,
            "unusable public key")


def test_rfc9421_signature_by_another_key_is_401(node: Node, carol: str) -> None:
    response = node.post("/inbox", *node.signed_rfc9421(create(carol), f"{carol}#ed25519-key",
                                                        ed25519_key("mallory")))
    refused(response, 401, node, "signature does not match")


def test_rfc9421_tampered_body_is_401(node: Node, carol: str) -> None:
    body, headers = node.signed_rfc9421(create(carol), f"{carol}#ed25519-key",
                                        ed25519_key("carol"))
    tampered = body.replace(b"Tea and talk", b"Pay me here")
    refused(node.post("/inbox", tampered, headers), 401, node, "Content-Digest does not match")
    refused(node.post("/inbox", tampered, headers | {"content-digest": content_digest(tampered)}),
            401, node, "signature does not match")


def test_rfc9421_without_content_digest_covered_is_401(node: Node, carol: str) -> None:
    body, headers = node.signed_rfc9421(create(carol), f"{carol}#ed25519-key",
                                        ed25519_key("carol"),
                                        components=("@method", "@target-uri", "date"))
    refused(node.post("/inbox", body, headers), 401, node, "content-digest is not covered")


def test_rfc9421_rotated_multikey_is_refetched_once_and_then_verifies(
        node: Node, carol: str, remote: Remote, monkeypatch) -> None:
    monkeypatch.setattr(actors, "REFRESH_INTERVAL", timedelta(0))
    key_id = f"{carol}#ed25519-key"
    assert node.post("/inbox", *node.signed_rfc9421(create(carol, 1), key_id,
                                                    ed25519_key("carol"))).status_code == 202
    remote.serve(actor_document(carol, private_key("carol"),
                                assertionMethod=[multikey_entry(carol, "carol-rotated")]))
    time.sleep(admission.TTL + 0.1)
    response = node.post("/inbox", *node.signed_rfc9421(create(carol, 2), key_id,
                                                        ed25519_key("carol-rotated")))
    assert response.status_code == 202, response.text
    assert remote.hits[carol] == 2


@pytest.mark.parametrize("signature_input", [
    'sig1=("@method" "@target-uri"',
    'sig1=("@method" "@target-uri");keyid="http://peer.test/users/carol#ed25519-key"',
    "x" * 10_000,
    "sig1=()" + ", s=()" * 20,
])
def test_rfc9421_malformed_signature_input_is_401_before_any_fetch(
        node: Node, carol: str, remote: Remote, signature_input: str) -> None:
    body, headers = node.signed_rfc9421(create(carol), f"{carol}#ed25519-key",
                                        ed25519_key("carol"))
    response = node.post("/inbox", body, headers | {"signature-input": signature_input})
    refused(response, 401, node)
    assert remote.hits[carol] == 0


def test_cavage_signed_for_another_host_is_401_and_nothing_is_stored(node: Node, alice: str,
                                                                    remote: Remote) -> None:
    body = json.dumps(create(alice)).encode()
    elsewhere = remote.url("elsewhere.test", "/inbox")
    headers = {"Content-Type": AP}
    headers.update(sign_headers("POST", elsewhere, headers, body, f"{alice}#main-key",
                                private_key("alice")))
    assert headers["Host"] == f"elsewhere.test:{remote.port}"
    refused(node.post("/inbox", body, headers), 401, node, "signature is for another host")


def test_cavage_signed_for_our_host_on_another_port_is_401(node: Node, alice: str,
                                                          remote: Remote) -> None:
    body = json.dumps(create(alice)).encode()
    headers = {"Content-Type": AP}
    headers.update(sign_headers("POST", f"http://ours.test:{remote.port + 1}/inbox", headers,
                                body, f"{alice}#main-key", private_key("alice")))
    refused(node.post("/inbox", body, headers), 401, node, "signature is for another host")


def test_cavage_host_in_another_case_is_our_host(node: Node, alice: str, remote: Remote) -> None:
    body = json.dumps(create(alice)).encode()
    headers = {"Content-Type": AP, "Host": f"OURS.Test:{remote.port}"}
    headers.update(sign_headers("POST", f"{node.public_url}/inbox", headers, body,
                                f"{alice}#main-key", private_key("alice")))
    assert node.post("/inbox", body, headers).status_code == 202


def test_cavage_post_that_does_not_sign_host_is_401(node: Node, alice: str) -> None:
    body = json.dumps(create(alice)).encode()
    names = ["(request-target)", "date", "digest"]
    values = {"(request-target)": "post /inbox",
              "date": format_datetime(datetime.now(UTC), usegmt=True),
              "digest": digest_header(body)}
    message = "\n".join(f"{name}: {values[name]}" for name in names).encode()
    raw = load_private_key(private_key("alice")).sign(message, padding.PKCS1v15(),
                                                      hashes.SHA256())
    headers = {"Content-Type": AP, "Date": values["date"], "Digest": values["digest"],
               "Signature": f'keyId="{alice}#main-key",algorithm="rsa-sha256",'
                            f'headers="{" ".join(names)}",'
                            f'signature="{base64.b64encode(raw).decode()}"'}
    refused(node.post("/inbox", body, headers), 401, node, "host is not signed")


@pytest.mark.parametrize("key", ["rsa", "ed25519"])
def test_rfc9421_signed_for_another_host_is_401_and_nothing_is_stored(node: Node, carol: str,
                                                                     remote: Remote,
                                                                     key: str) -> None:
    key_id, signer = ((f"{carol}#main-key", private_key("carol")) if key == "rsa"
                      else (f"{carol}#ed25519-key", ed25519_key("carol")))
    body, headers = node.signed_rfc9421(create(carol), key_id, signer,
                                        url=remote.url("elsewhere.test", "/inbox"))
    refused(node.post("/inbox", body, headers), 401, node, "signature is for another host")
    # the same request with our Host put in no longer matches its signed target URI
    refused(node.post("/inbox", body, headers | {"host": f"ours.test:{remote.port}"}), 401, node,
            "signature does not match")
