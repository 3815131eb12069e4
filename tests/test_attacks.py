"""Attacks on real node processes: each is refused, nothing is stored, the node keeps serving.

The victim is `grassroots serve --dev --demo` on 127.0.0.1. The hostile peers
`evil` (127.0.0.5) and `other` (127.0.0.6) are uvicorn stubs with their own
RSA keys; the victim follows both and each answers with a signed Accept, so
both are admitted peers and their refusals come from the checks, not from the
allow-list. A second victim runs without --dev (public URL `https://bücher.test`)
for keyIds on private addresses and host names in other forms: those are
refused before any lookup or connection, which a listener on 127.0.0.1 proves.
Fetching (SSRF) cases run in-process with an injected resolver and transport
that refuse before any connection. Every case is counted; the module prints
how many were tried and refused.

A case is "refused" when the answer is the stated 4xx with a one-line
text/plain reason and the victim's inbox, listings, meetings and peers are
unchanged; "neutralised" when a well-formed activity is taken (202) but the
runner ignores it and nothing it names changes.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import idna
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from starlette.testclient import TestClient

from federation.context import Federation
from federation.documents import Urls
from federation.fetch import JRD_ACCEPT, Fetcher, FetchError
from federation.handlers import MAX_BACKFILL_PAGES, backfill
from federation.keys import generate_key, load_private_key, public_pem
from federation.signatures import digest_header
from node.app import ROUTES, create_app
from node.cli import initialise
from node.config import load_config
from node.db import Database
from tests.attacks import AP, AS, PUBLIC, TALLY, Stub, Victim, wait_for
from tests.helpers import free_port, loopback_server, serving
from tests.test_fetch import PUBLIC_V4, FakeDNS, Network

MALLORY = generate_key()  # a key nobody publishes


@dataclass
class World:
    victim: Victim
    evil: Stub
    other: Stub

    def deliver(self, stub: Stub, activity: dict[str, Any] | bytes, path: str = "/inbox",
                **signing: Any) -> httpx.Response:
        body, headers = stub.sign(activity, self.victim.url + path, **signing)
        return self.victim.post(path, body, headers)


def refused(victim: Victim, kind: str, name: str, status: int,
            send: Callable[[], httpx.Response], reason: str = "") -> httpx.Response:
    """Send one attack; it must get ``status`` with a one-line reason and change nothing."""
    with TALLY.trying(kind, name, outcome=str(status)):
        before = victim.snapshot()
        response = send()
        assert response.status_code == status, (name, response.status_code, response.text)
        assert reason in response.text, (name, response.text)
        assert response.headers["content-type"].startswith("text/plain"), name
        assert "\n" not in response.text.strip(), name
        assert victim.snapshot() == before, f"{name}: something was stored"
        assert victim.serving(), f"{name}: the node stopped serving"
    return response


def neutralised(victim: Victim, kind: str, name: str, activity_id: str,
                send: Callable[[], httpx.Response]) -> None:
    """Send one attack that is well-formed: taken once (202), ignored, nothing it names changes."""
    with TALLY.trying(kind, name, outcome="202 ignored"):
        _, listings = victim.snapshot()
        response = send()
        assert response.status_code == 202, (name, response.status_code, response.text)
        assert victim.settled(activity_id) == "ignored", name
        assert victim.snapshot()[1] == listings, f"{name}: a listing changed"
        assert victim.serving(), f"{name}: the node stopped serving"


def activity(stub: Stub, kind: str, obj: Any, actor: str | None = None) -> dict[str, Any]:
    return {"@context": AS, "id": stub.url(f"/activities/{uuid.uuid4()}"), "type": kind,
            "actor": actor or stub.actor, "object": obj, "to": [PUBLIC]}


def group(stub: Stub, slug: str, **fields: Any) -> dict[str, Any]:
    return {"id": stub.url(f"/groups/{slug}"), "type": "Group", "preferredUsername": slug,
            "name": slug.replace("-", " ").title(), "summary": "A peer group.",
            "to": [PUBLIC], **fields}


def note(stub: Stub) -> dict[str, Any]:
    return {"id": stub.url(f"/notes/{uuid.uuid4()}"), "type": "Note", "content": "hello"}


@pytest.fixture(scope="module", autouse=True)
def tally(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print("\n" + TALLY.summary())


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("attacks")
    evil, other = Stub("127.0.0.5", "evil"), Stub("127.0.0.6", "other")
    evil.endless_outbox = True
    port = free_port()
    data = tmp / "victim"
    initialise(data, f"http://127.0.0.1:{port}")
    with ExitStack() as stack:
        stack.enter_context(loopback_server(evil.app, evil.port, "127.0.0.5"))
        stack.enter_context(loopback_server(other.app, other.port, "127.0.0.6"))
        url, _ = stack.enter_context(serving(data, "--dev", "--demo", port=port))
        w = World(Victim(data, url), evil, other)
        for peer in (evil, other):
            w.victim.cli("peers", "follow", peer.base, "--dev")
        for peer in (evil, other):
            wait_for(lambda host=peer.host: w.victim.query(
                "SELECT following FROM peers WHERE host = ?", (host,)) == [("accepted",)],
                f"{peer.host} to accept the victim's follow")
        wait_for(lambda: evil.hits[f"/outbox?page={MAX_BACKFILL_PAGES}"], "evil's backfill")
        listed = activity(other, "Create", group(other, "other-circle"))
        assert w.deliver(other, listed).status_code == 202
        assert w.victim.settled(listed["id"]) == "applied"
        yield w


def local_group(victim: Victim, visibility: str) -> str:
    return victim.query("SELECT slug FROM groups WHERE origin IS NULL AND visibility = ?"
                        " ORDER BY id LIMIT 1", (visibility,))[0][0]


# --- signatures ---------------------------------------------------------------------------


def cavage(key: str, key_id: str, names: list[str], values: dict[str, str], *,
           algorithm: str = "rsa-sha256", mac_secret: bytes | None = None,
           extra: str = "") -> str:
    """A Signature header over ``names`` built by hand: RSA with ``key``, or an HMAC."""
    message = "\n".join(f"{name}: {values[name]}" for name in names).encode()
    if mac_secret is None:
        raw = load_private_key(key).sign(message, padding.PKCS1v15(), hashes.SHA256())
    else:
        raw = hmac.new(mac_secret, message, hashlib.sha256).digest()
    return (f'keyId="{key_id}",algorithm="{algorithm}",headers="{" ".join(names)}",'
            f'signature="{base64.b64encode(raw).decode()}"{extra}')


def by_hand(w: World, names: list[str], *, drop: tuple[str, ...] = (),
            created: datetime | None = None, expires: datetime | None = None,
            **signing: Any) -> httpx.Response:
    """A Create from evil signed over ``names`` (and (created)/(expires) when given)."""
    body = json.dumps(activity(w.evil, "Create", note(w.evil))).encode()
    headers = {"Content-Type": AP, "Host": w.victim.host,
               "Date": datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT"),
               "Digest": digest_header(body)}
    values = {"(request-target)": "post /inbox", **{k.lower(): v for k, v in headers.items()}}
    extra = ""
    if created is not None:
        values["(created)"] = str(int(created.timestamp()))
        extra += f",created={values['(created)']}"
    if expires is not None:
        values["(expires)"] = str(int(expires.timestamp()))
        extra += f",expires={values['(expires)']}"
    headers["Signature"] = cavage(w.evil.key, w.evil.key_id, names, values, extra=extra,
                                  **signing)
    for name in drop:
        headers.pop(name)
    return w.victim.post("/inbox", body, headers)


POST_NAMES = ["(request-target)", "host", "date", "digest", "content-type"]
PEM_SECRET = "public"  # marker: the HMAC secret is evil's published PEM


def _tampered(w: World, change: str) -> httpx.Response:
    create = activity(w.evil, "Create", note(w.evil))
    url = w.victim.url
    if change == "method":
        body, headers = w.evil.sign(create, f"{url}/inbox", method="PUT")
        return w.victim.post("/inbox", body, headers)
    if change == "path":
        body, headers = w.evil.sign(create, f"{url}/actor/inbox")
        return w.victim.post("/inbox", body, headers)
    if change == "query":
        body, headers = w.evil.sign(create, f"{url}/inbox?page=1")
        return w.victim.post("/inbox?page=2", body, headers)
    if change == "host":
        body, headers = w.evil.sign(create, f"{url}/inbox")
        return w.victim.post("/inbox", body, headers | {"Host": "127.0.0.9:80"})
    body, headers = w.evil.sign(create, f"{url}/inbox")
    tampered = body.replace(b"hello", b"pay me")
    if change == "body, digest recomputed":
        headers["Digest"] = digest_header(tampered)
    return w.victim.post("/inbox", tampered, headers)


@pytest.mark.parametrize("change,reason", [
    ("method", "signature does not match"),
    ("path", "signature does not match"),
    ("query", "signature does not match"),
    ("host", "signature does not match"),
    ("body", "Digest does not match"),
    ("body, digest recomputed", "signature does not match"),
])
def test_a_tampered_signed_request_is_401(world: World, change: str, reason: str) -> None:
    refused(world.victim, "signature", f"tampered {change}", 401,
            lambda: _tampered(world, change), reason)


@pytest.mark.parametrize("name,date,reason", [
    ("Date unparsable", "yesterday, around noon", "not an HTTP date"),
    ("Date 2 h old", datetime.now(UTC) - timedelta(hours=2), "too old"),
    ("Date 2 h ahead", datetime.now(UTC) + timedelta(hours=2), "ahead"),
    ("replay of a request signed 66 min ago (past the 5 min + 1 h window)",
     datetime.now(UTC) - timedelta(minutes=66), "too old"),
])
def test_a_signature_dated_outside_the_window_is_401(world: World, name: str, date: Any,
                                                     reason: str) -> None:
    create = activity(world.evil, "Create", note(world.evil))
    refused(world.victim, "signature", name, 401,
            lambda: world.deliver(world.evil, create, date=date), reason)


def test_a_forged_signature_and_unsigned_request_are_401(world: World) -> None:
    create = activity(world.evil, "Create", note(world.evil))
    refused(world.victim, "signature", "forged (signed with another key)", 401,
            lambda: world.deliver(world.evil, create, key=MALLORY), "signature does not match")
    refused(world.victim, "signature", "unsigned", 401,
            lambda: world.victim.post("/inbox", json.dumps(create).encode(),
                                      {"Content-Type": AP}), "not signed")
    refused(world.victim, "signature", "Signature header garbage", 401,
            lambda: world.victim.post("/inbox", json.dumps(create).encode(),
                                      {"Content-Type": AP, "Signature": 'keyId="x",,,'}))


def test_digest_missing_from_the_signed_headers_or_the_request_is_401(world: World) -> None:
    victim = world.victim
    refused(victim, "signature", "Digest not among the signed headers", 401,
            lambda: by_hand(world, ["(request-target)", "host", "date"]), "digest is not signed")
    refused(victim, "signature", "Digest header absent", 401,
            lambda: by_hand(world, POST_NAMES, drop=("Digest",)), "Digest")
    refused(victim, "signature", "(request-target) not signed", 401,
            lambda: by_hand(world, ["host", "date", "digest"]), "(request-target) is not signed")
    refused(victim, "signature", "replay past a signed (expires)", 401,
            lambda: by_hand(world, ["(request-target)", "(created)", "(expires)", "digest"],
                            algorithm="hs2019",
                            created=datetime.now(UTC) - timedelta(minutes=90),
                            expires=datetime.now(UTC) - timedelta(minutes=61)), "too old")
    refused(victim, "signature", "algorithm rsa-sha512", 401,
            lambda: by_hand(world, POST_NAMES, algorithm="rsa-sha512"), "unsupported")


@pytest.mark.parametrize("algorithm", ["hmac-sha256", "hs2019"])
def test_an_hmac_keyed_with_the_published_pem_is_401(world: World, algorithm: str) -> None:
    secret = public_pem(world.evil.key).encode()
    refused(world.victim, "signature", f"{algorithm} HMAC keyed with the public PEM", 401,
            lambda: by_hand(world, POST_NAMES, algorithm=algorithm, mac_secret=secret))


def test_the_same_activity_twice_is_taken_once_and_applied_once(world: World) -> None:
    victim, evil = world.victim, world.evil
    create = activity(evil, "Create", group(evil, "once-circle", name="Once Circle"))
    body, headers = evil.sign(create, victim.url + "/inbox")
    with TALLY.trying("signature", "the same activity id twice (and with new content)",
                      outcome="202 applied once"):
        assert victim.post("/inbox", body, headers).status_code == 202
        assert victim.settled(create["id"]) == "applied"
        before = victim.snapshot()
        assert victim.post("/inbox", body, headers).status_code == 202  # a replay in the window
        changed = create | {"object": group(evil, "once-circle", name="Changed Circle")}
        assert world.deliver(evil, changed).status_code == 202  # the same id, new content
        time.sleep(1.5)  # two runner polls
        assert victim.snapshot() == before
        assert victim.query("SELECT name FROM groups WHERE ap_id = ?",
                            (evil.url("/groups/once-circle"),)) == [("Once Circle",)]
        assert victim.serving()


# --- keys and their owners -----------------------------------------------------------------


def test_keys_not_owned_by_the_actor_are_refused(world: World) -> None:
    victim, evil, other = world.victim, world.evil, world.other

    def follow_as(actor_stub: Stub, key_id: str, key: str) -> Callable[[], httpx.Response]:
        follow = activity(actor_stub, "Follow", victim.url + "/actor")
        return lambda: world.deliver(evil, follow, key_id=key_id, key=key)

    evil.serve({"id": evil.url("/keys/evil"), "type": "CryptographicKey",
                "owner": other.actor, "publicKeyPem": public_pem(evil.key)})
    refused(victim, "keys", "attacker's key document naming the victim actor as owner", 401,
            follow_as(other, evil.url("/keys/evil"), evil.key), "does not list")
    evil.serve({"id": evil.url("/keys/2"), "type": "CryptographicKey", "owner": evil.actor,
                "publicKeyPem": public_pem(evil.key)}, url=evil.url("/keys/1"))
    refused(victim, "keys", "key document whose id is not the keyId", 401,
            follow_as(evil, evil.url("/keys/1"), evil.key), "is not")
    refused(victim, "keys", "activity actor other than the key's owner", 403,
            follow_as(other, evil.key_id, evil.key), "owner is not the activity's actor")


def test_documents_claiming_another_url_or_our_own_actor_are_refused(world: World) -> None:
    victim, evil = world.victim, world.evil

    def follow_with_key(path: str) -> Callable[[], httpx.Response]:
        actor = evil.url(path)
        follow = activity(evil, "Follow", victim.url + "/actor", actor=actor)
        return lambda: world.deliver(evil, follow, key_id=f"{actor}#main-key")

    evil.serve(evil.actor_document(victim.url + "/actor", "impostor"), url=evil.url("/fake"))
    refused(victim, "origin", "key document claiming to be the victim's node actor", 401,
            follow_with_key("/fake"), "is not")
    evil.redirect(evil.url("/to-victim"), victim.url + "/actor")
    refused(victim, "origin", "key URL redirecting to the victim's own actor", 401,
            follow_with_key("/to-victim"), "this node's host")
    evil.serve(evil.actor_document(evil.url("/html"), "html"), content_type="text/html")
    refused(victim, "origin", "actor served as text/html", 401, follow_with_key("/html"),
            "content type")
    evil.redirect(evil.url("/moved"), evil.url("/moved-here"))
    evil.serve(evil.actor_document(evil.url("/moved"), "moved"), url=evil.url("/moved-here"))
    refused(victim, "origin", "document whose id is the URL before a redirect", 401,
            follow_with_key("/moved"), "is not")
    impostor = activity(evil, "Follow", victim.url + "/actor", actor=victim.url + "/actor")
    refused(victim, "origin", "activity whose actor is the victim's node actor", 403,
            lambda: world.deliver(evil, impostor), "this node's host")


@pytest.mark.parametrize("field", ["inbox", "outbox", "endpoints.sharedInbox", "publicKey.id"])
def test_an_actor_with_an_endpoint_or_key_on_another_host_is_401(world: World,
                                                                 field: str) -> None:
    victim, evil, other = world.victim, world.evil, world.other
    actor = evil.url(f"/split-{field}")
    document = evil.actor_document(actor, "split")
    elsewhere = other.url("/split")
    if field == "endpoints.sharedInbox":
        document["endpoints"]["sharedInbox"] = elsewhere
    elif field == "publicKey.id":
        document["publicKey"]["id"] = f"{elsewhere}#main-key"
    else:
        document[field] = elsewhere
    evil.serve(document)
    follow = activity(evil, "Follow", victim.url + "/actor", actor=actor)
    refused(victim, "origin", f"actor whose {field} is on another host", 401,
            lambda: world.deliver(evil, follow, key_id=f"{actor}#main-key"),
            "not on the actor's host")


# --- the allow-list ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stranger(world: World) -> Iterator[Stub]:
    """A peer the victim does not follow, whose Follow is pending: not approved."""
    stub = Stub("127.0.0.7", "stranger")
    with loopback_server(stub.app, stub.port, "127.0.0.7"):
        follow = activity(stub, "Follow", world.victim.url + "/actor")
        assert world.deliver(stub, follow).status_code == 202
        wait_for(lambda: world.victim.query("SELECT follower FROM peers WHERE host = ?",
                                            (stub.host,)) == [("pending",)], "a pending follow")
        yield stub


def test_a_peer_that_is_not_followed_or_approved_is_403(world: World) -> None:
    unknown = Stub("127.0.0.8", "unknown")  # never served: the refusal comes before any fetch
    refused(world.victim, "allow-list", "Create from a host that is no peer", 403,
            lambda: world.deliver(unknown, activity(unknown, "Create", note(unknown))),
            "not a followed or approved peer")


def test_a_peer_whose_follow_is_only_pending_is_403(world: World, stranger: Stub) -> None:
    refused(world.victim, "allow-list", "Create from a peer whose Follow is pending", 403,
            lambda: world.deliver(stranger, activity(stranger, "Create", note(stranger))),
            "not a followed or approved peer")


# --- origin ---------------------------------------------------------------------------------


def test_objects_on_another_host_are_refused_or_ignored(world: World) -> None:
    victim, evil, other = world.victim, world.evil, world.other
    theirs = other.url("/groups/other-circle")
    foreign_id = activity(evil, "Create", note(evil)) | {"id": other.url("/activities/x")}
    refused(victim, "origin", "activity id on another host", 403,
            lambda: world.deliver(evil, foreign_id), "activity id is not on the actor's host")
    refused(victim, "origin", "embedded object claiming another origin", 403,
            lambda: world.deliver(evil, activity(evil, "Create", note(other))),
            "embedded object is not on the actor's host")
    hijack = activity(evil, "Update", group(other, "other-circle", name="Hijacked"))
    refused(victim, "origin", "Update of another node's group (embedded)", 403,
            lambda: world.deliver(evil, hijack), "embedded object is not on the actor's host")
    by_id = activity(evil, "Update", theirs)
    neutralised(victim, "origin", "Update of another node's group (by id)", by_id["id"],
                lambda: world.deliver(evil, by_id))
    delete = activity(evil, "Delete", theirs)
    neutralised(victim, "origin", "Delete of another node's group", delete["id"],
                lambda: world.deliver(evil, delete))
    assert victim.query("SELECT name FROM groups WHERE ap_id = ?", (theirs,)) == \
        [("Other Circle",)]


def test_a_remote_actor_cannot_delete_or_claim_a_local_group(world: World) -> None:
    victim, evil = world.victim, world.evil
    slug = local_group(victim, "public")
    ours = f"{victim.url}/groups/{slug}"
    delete = activity(evil, "Delete", ours)
    neutralised(victim, "origin", "Delete of a local group by a remote actor", delete["id"],
                lambda: world.deliver(evil, delete))
    refused(victim, "origin", "Delete of a local group (embedded Tombstone)", 403,
            lambda: world.deliver(evil, activity(evil, "Delete",
                                                 {"id": ours, "type": "Tombstone"})))
    claim = activity(evil, "Create", {"id": ours, "type": "Group", "preferredUsername": slug,
                                      "name": "Now ours"})
    refused(victim, "origin", "Create of a document claiming one of our groups", 403,
            lambda: world.deliver(evil, claim), "embedded object is not on the actor's host")
    assert victim.client.get(f"{victim.url}/groups/{slug}").status_code == 200


@pytest.mark.parametrize("visibility", ["private", "unlisted"])
def test_a_non_owner_cannot_widen_who_sees_a_local_group(world: World, visibility: str) -> None:
    victim, evil = world.victim, world.evil
    slug = local_group(victim, visibility)
    ours = f"{victim.url}/groups/{slug}"
    announce = activity(evil, "Announce", ours)
    neutralised(victim, "origin", f"Announce of a local {visibility} group", announce["id"],
                lambda: world.deliver(evil, announce))
    widened = activity(evil, "Announce", {"id": ours, "type": "Group",
                                          "preferredUsername": slug, "to": [PUBLIC]})
    neutralised(victim, "origin", f"Announce making a local {visibility} group public",
                widened["id"], lambda: world.deliver(evil, widened))
    update = activity(evil, "Update", {"id": ours, "type": "Group", "to": [PUBLIC]})
    refused(victim, "origin", f"Update making a local {visibility} group public", 403,
            lambda: world.deliver(evil, update))
    assert victim.query("SELECT visibility FROM groups WHERE slug = ?", (slug,)) == \
        [(visibility,)]
    assert victim.client.get(ours, headers={"Accept": AP}).status_code == 404


# --- keyIds on private addresses, host names in other forms (a victim without --dev) --------


class Listener:
    """A TCP listener on 127.0.0.1 that counts connections: it must see none."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.socket.settimeout(0.2)
        self.port = self.socket.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.socket.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.socket.close()


# bücher.test, never resolved: each case is refused before any lookup
PRODUCTION_URL = "https://xn--bcher-kva.test"


@pytest.fixture(scope="module")
def loner() -> Stub:
    """A peer that is only a key to sign with: never served, so every fetch of it must fail."""
    return Stub("127.0.0.1", "loner")


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Victim, Listener]]:
    data = tmp_path_factory.mktemp("production") / "node"
    initialise(data, PRODUCTION_URL)
    listener = Listener()
    try:
        with serving(data) as (url, _):
            victim = Victim(data, url)
            victim.cli("peers", "block", "böse.test")
            yield victim, listener
    finally:
        listener.close()
    assert listener.connections == 0


PRIVATE_KEY_HOSTS = [
    "127.0.0.1:{port}", "127.1.2.3:{port}", "localhost:{port}", "[::1]:{port}",
    "[::ffff:127.0.0.1]:{port}", "[::ffff:7f00:1]:{port}", "0.0.0.0:{port}", "[::]:{port}",
    "[::ffff:0.0.0.0]:{port}", "10.0.0.1", "172.16.0.1", "172.31.255.254", "192.168.1.1",
    "169.254.169.254", "[::ffff:a9fe:a9fe]", "100.64.0.1", "198.18.0.1", "[fc00::1]",
    "[fd12:3456::1]", "[fe80::1]", "[64:ff9b::7f00:1]", "[2002:7f00:1::1]",
    "[2001:0:4136:e378:8000:63bf:3fff:fdd2]",
]


@pytest.mark.parametrize("host", PRIVATE_KEY_HOSTS)
def test_a_key_id_on_a_private_address_is_401_without_a_connection(production, loner,
                                                                   host) -> None:
    victim, listener = production
    actor = f"https://{host.format(port=listener.port)}/actor"
    follow = {"@context": AS, "id": f"{actor}/follows/1", "type": "Follow", "actor": actor,
              "object": f"{PRODUCTION_URL}/actor"}
    body, headers = loner.sign(follow, victim.url + "/inbox", key_id=f"{actor}#main-key")
    refused(victim, "keys", f"keyId on {host.format(port='port')}", 401,
            lambda: victim.post("/inbox", body, headers), "not public")
    assert listener.connections == 0


@pytest.mark.parametrize("key_id,reason", [
    ("file:///etc/passwd", "scheme"), ("data:application/activity+json,{}", "scheme"),
    ("gopher://127.0.0.1:70/_", "scheme"), ("ftp://127.0.0.1/key", "scheme"),
    ("http://127.0.0.1/actor#main-key", "scheme"),
    ("https://user:pw@127.0.0.1/actor#main-key", "credentials"),
])
def test_a_key_id_with_another_scheme_is_401(production, loner, key_id: str,
                                             reason: str) -> None:
    victim, _ = production
    actor = "https://127.0.0.1/actor"
    follow = {"@context": AS, "id": f"{actor}/follows/2", "type": "Follow", "actor": actor,
              "object": f"{PRODUCTION_URL}/actor"}
    body, headers = loner.sign(follow, victim.url + "/inbox", key_id=key_id)
    refused(victim, "keys", f"keyId {key_id.split(':')[0]}: ({reason})", 401,
            lambda: victim.post("/inbox", body, headers), reason)


OUR_HOST_FORMS = ["https://BÜCHER.TEST/actor", "https://bücher.test./actor",
                  "https://XN--BCHER-KVA.test/actor", "https://xn--bcher-kva.TEST.:443/actor"]
BLOCKED_FORMS = ["https://BÖSE.test/users/x", "https://böse.test./users/x",
                 f"https://{idna.encode('böse.test', uts46=True).decode().upper()}/users/x",
                 "https://böse.test:8443/users/x"]


@pytest.mark.parametrize("actor,status,reason", [
    *[(a, 403, "this node's host") for a in OUR_HOST_FORMS],
    *[(a, 403, "blocked") for a in BLOCKED_FORMS],
    # decomposed "ü" (u + U+0308): httpx will not parse it, so it never names any host
    ("https://bu\u0308cher.test/actor", 400, "not an http(s) URL"),
])
def test_host_names_differing_by_case_dot_or_idn_form_are_the_same_host(
        production, loner, actor: str, status: int, reason: str) -> None:
    victim, _ = production
    follow = {"@context": AS, "id": f"{actor}/follows/3", "type": "Follow", "actor": actor,
              "object": f"{PRODUCTION_URL}/actor"}
    body, headers = loner.sign(follow, victim.url + "/inbox",
                               key_id="https://127.0.0.1/actor#main-key")  # never reached
    refused(victim, "origin", f"host in another form: {actor}", status,
            lambda: victim.post("/inbox", body, headers), reason)


def test_a_node_at_an_idn_host_answers_a_key_it_cannot_fetch_with_401(tmp_path: Path,
                                                                     loner: Stub) -> None:
    initialise(tmp_path / "n", "https://bücher.test")
    actor = "https://localhost:1/actor"  # resolved from /etc/hosts to loopback: refused
    follow = {"@context": AS, "id": f"{actor}/follows/1", "type": "Follow", "actor": actor,
              "object": "https://bücher.test/actor"}
    body, headers = loner.sign(follow, "http://testserver/inbox", key_id=f"{actor}#main-key")
    app = create_app(load_config(tmp_path / "n"))
    with TALLY.trying("keys", "keyId on loopback, sent to a node at an IDN host", outcome="401"),\
            TestClient(app, raise_server_exceptions=False) as client:
        assert client.post("/inbox", content=body, headers=headers).status_code == 401


# --- bodies ---------------------------------------------------------------------------------


def test_bodies_over_the_cap_too_deep_or_not_utf8_are_refused(world: World) -> None:
    victim = world.victim
    huge = b'{"a": "' + b"x" * 1_000_001 + b'"}'
    refused(victim, "bodies", "body over 1 MB (declared)", 413,
            lambda: victim.post("/inbox", huge, {"Content-Type": AP}))

    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b" " * 65536

    refused(victim, "bodies", "body over 1 MB (chunked, no length)", 413,
            lambda: victim.post("/inbox", chunks(), {"Content-Type": AP}))
    deep = b'{"a": ' * 10_000 + b"1" + b"}" * 10_000
    refused(victim, "bodies", "JSON nested 10,000 deep", 400,
            lambda: world.deliver(world.evil, deep), "nested")
    refused(victim, "bodies", "arrays nested 10,000 deep", 400,
            lambda: world.deliver(world.evil, b"[" * 10_000 + b"]" * 10_000), "nested")
    refused(victim, "bodies", "non-UTF-8 body", 400,
            lambda: world.deliver(world.evil, b'{"id": "caf\xe9"}'), "UTF-8")
    refused(victim, "bodies", "NaN in JSON", 400,
            lambda: world.deliver(world.evil, b'{"id": NaN}'), "JSON")


@pytest.mark.parametrize("content_type", ["application/json", "text/html", "text/plain",
                                          "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", ""])
def test_wrong_content_types_are_415(world: World, content_type: str) -> None:
    create = activity(world.evil, "Create", note(world.evil))
    refused(world.victim, "bodies", f"content type {content_type or '(none)'}", 415,
            lambda: world.deliver(world.evil, create, content_type=content_type))


RAW_MARKUP = {
    "<script> element": '<script>alert("x")</script>',
    "event handler attribute": '<b onmouseover="alert(1)">hover</b><img src=x onerror=alert(1)>',
    "javascript: link": '<a href="javascript:alert(document.cookie)">click</a>',
    "data: link": '<a href="data:text/html,&lt;script&gt;alert(3)&lt;/script&gt;">x</a>',
    "CSS <style> element": "<style>body { display: none }</style>",
    "CSS style attribute": '<p style="position:fixed;top:0;left:0">overlay</p>',
    "iframe": '<iframe src="https://evil.example/"></iframe>',
    "svg onload": "<svg onload=alert(1)><circle/></svg>",
    "form asking for a password": '<form action="https://evil.example/"><input name="pw">'
                                  "</form>",
}
# Each lone "<br" and "<" makes a careless tag regex try every split of what follows.
BACKTRACKING = ("<br" + " " * 40_000 + "x") + ("<" * 20_000) + ("<!--" * 2_000)
MARKUP = re.compile(r"<\s*[a-z!/]|javascript:|onerror|onload|onmouseover|style\s*=", re.IGNORECASE)


def test_hostile_html_in_a_listing_is_stored_as_text_and_rendered_escaped(world: World) -> None:
    victim, evil = world.victim, world.evil
    hostile = "".join(RAW_MARKUP.values())
    create = activity(evil, "Create", group(
        evil, "hostile-circle", name=f"Hostile {RAW_MARKUP['<script> element']} Circle",
        summary=hostile, content=hostile + BACKTRACKING, agreements=hostile,
        area="<marquee>Leith</marquee>", topics=["<script>", "grief"]))
    vectors = [f"remote listing with {name}" for name in RAW_MARKUP]
    with TALLY.trying("bodies", *vectors, "remote listing with text built to make a tag regex "
                      "backtrack", outcome="202 neutralised"):
        started = time.monotonic()
        assert world.deliver(evil, create).status_code == 202
        assert victim.settled(create["id"]) == "applied"
        assert time.monotonic() - started < 10, "the sanitizer took too long"
        [row] = victim.query("SELECT name, summary, description, agreements, area FROM groups"
                             " WHERE ap_id = ?", (evil.url("/groups/hostile-circle"),))
        for text in row:
            assert not MARKUP.search(text), text[:300]
        assert row[0] == "Hostile  Circle" and row[4] == "Leith"
        page = victim.client.get(f"{victim.url}/groups", params={"q": "hostile"}).text
        assert "Hostile  Circle" in page
        assert not re.search(r"<script|javascript:|onerror|onload|onmouseover|<iframe|<style"
                             r"|<svg", page, re.IGNORECASE)
        assert victim.serving()


def test_entity_encoded_markup_is_rendered_escaped(world: World) -> None:
    victim, evil = world.victim, world.evil
    encoded = "&lt;script&gt;alert(2)&lt;/script&gt; &lt;a href=javascript:alert(3)&gt;"
    create = activity(evil, "Create", group(evil, "encoded-circle", name="Encoded Circle",
                                            summary=encoded))
    with TALLY.trying("bodies", "remote listing with entity-encoded markup (rendered)",
                      outcome="202 neutralised"):
        assert world.deliver(evil, create).status_code == 202
        assert victim.settled(create["id"]) == "applied"
        page = victim.client.get(f"{victim.url}/groups", params={"q": "encoded"}).text
        assert "Encoded Circle" in page
        assert "alert(2)" not in page  # the decoded script was cleaned away with its content
        assert not re.search(r"<script|<a href=javascript|&lt;script", page, re.IGNORECASE)


def test_entity_encoded_markup_is_not_stored_as_markup(world: World) -> None:
    with TALLY.trying("bodies", "remote listing with entity-encoded markup (stored)",
                      outcome="stored as text"):
        [(summary,)] = world.victim.query("SELECT summary FROM groups WHERE ap_id = ?",
                                          (world.evil.url("/groups/encoded-circle"),))
        assert not MARKUP.search(summary), summary


def test_a_listing_link_is_never_javascript_or_on_another_host(world: World) -> None:
    victim, evil = world.victim, world.evil
    with TALLY.trying("origin", "listing link to javascript:", "listing link to another host",
                      outcome="202 neutralised"):
        for slug, link in (("js-link", "javascript:alert(document.cookie)"),
                           ("phish-link", "https://phish.example/login")):
            create = activity(evil, "Create", group(evil, slug, name=f"Link {slug}", url=link))
            assert world.deliver(evil, create).status_code == 202
            victim.settled(create["id"])
        page = victim.client.get(f"{victim.url}/groups", params={"q": "link"}).text
        assert "javascript:" not in page and "phish.example" not in page


# --- fetching (SSRF): in-process, injected resolver and transport ---------------------------


def _with_federation(tmp: Path, fetcher: Fetcher, work: Callable[[Federation], Any]) -> Any:
    initialise(tmp, "https://ours.example")
    return asyncio.run(_federating(tmp, fetcher, work))


async def _federating(tmp: Path, fetcher: Fetcher, work: Callable[[Federation], Any]) -> Any:
    db = Database(tmp / "grassroots.db")
    await db.open()
    try:
        async with fetcher:
            return await work(Federation(db, fetcher, Urls("https://ours.example")))
    finally:
        await db.close()


def _page(network: Network, path: str, next_url: str | None, items: int = 0) -> None:
    body: dict[str, Any] = {"id": f"https://peer.example{path}", "type": "OrderedCollectionPage",
                            "orderedItems": [{"id": f"https://peer.example{path}/{i}",
                                              "type": "Like"} for i in range(items)]}
    if next_url is not None:
        body["next"] = next_url
    network.page("peer.example", path, body=body)


NEXT_URLS = {
    "next on a private address": "https://10.0.0.1/outbox/2",
    "next on the metadata address": "https://169.254.169.254/latest/meta-data/",
    "next on loopback v6": "https://[::1]/outbox/2",
    "next on a mapped v4 address": "https://[::ffff:127.0.0.1]/outbox/2",
    "next hiding a private address behind userinfo": "https://peer.example@10.0.0.1/x",
    "next on a name resolving privately": "https://internal.example/outbox/2",
    "next on another host": "https://elsewhere.example/outbox/2",
    "next as a data: URL": "data:application/activity+json,{}",
    "next as a file: URL": "file:///etc/passwd",
    "next over plain http": "http://peer.example/outbox/2",
    "next on the peer's name, rebound to loopback": "https://peer.example/outbox/2",
}


@pytest.mark.parametrize("name", NEXT_URLS)
def test_an_outbox_next_link_never_reaches_a_private_address(tmp_path: Path, name: str) -> None:
    network, dns = Network(), FakeDNS()
    rebinding = "rebound" in name
    dns.add("peer.example", [PUBLIC_V4], *([[PUBLIC_V4], ["127.0.0.1"]] if rebinding else []))
    dns.add("internal.example", ["10.9.8.7"])
    dns.add("elsewhere.example", [PUBLIC_V4])
    network.page("peer.example", "/outbox", body={"id": "https://peer.example/outbox",
                                                  "type": "OrderedCollection",
                                                  "first": "https://peer.example/outbox/1"})
    _page(network, "/outbox/1", NEXT_URLS[name])
    _page(network, "/outbox/2", None)
    fetcher = Fetcher(resolver=dns, transport=network)
    with TALLY.trying("fetching", f"outbox {name}", outcome="not fetched"):
        applied = _with_federation(tmp_path / "node", fetcher, lambda fed: backfill(
            fed, "https://peer.example/outbox", "peer.example"))
        assert applied == 0
        assert network.connected == [PUBLIC_V4, PUBLIC_V4]  # the outbox and its first page


def test_an_outbox_that_pages_forever_stops_at_the_page_cap(tmp_path: Path) -> None:
    network, dns = Network(), FakeDNS()
    dns.add("peer.example", [PUBLIC_V4])
    network.page("peer.example", "/outbox", body={"id": "https://peer.example/outbox",
                                                  "type": "OrderedCollection",
                                                  "first": "https://peer.example/outbox/1"})
    for n in range(1, 100):
        _page(network, f"/outbox/{n}", f"https://peer.example/outbox/{n + 1}")
    fetcher = Fetcher(resolver=dns, transport=network)
    with TALLY.trying("fetching", "an outbox that pages forever (in-process)",
                      outcome=f"stopped after {MAX_BACKFILL_PAGES} pages"):
        _with_federation(tmp_path / "node", fetcher, lambda fed: backfill(
            fed, "https://peer.example/outbox", "peer.example"))
        assert len(network.requests) == 1 + MAX_BACKFILL_PAGES


def test_an_endless_outbox_of_a_real_peer_stopped_at_the_page_cap(world: World) -> None:
    """The victim's backfill from evil (during setup) read the cap and not one page more."""
    with TALLY.trying("fetching", "an outbox that pages forever (real node)",
                      outcome=f"stopped after {MAX_BACKFILL_PAGES} pages"):
        pages = [p for p in world.evil.hits if p.startswith("/outbox")]
        assert len(pages) == 1 + MAX_BACKFILL_PAGES, pages
        assert world.evil.hits[f"/outbox?page={MAX_BACKFILL_PAGES + 1}"] == 0


DISCOVERED = {
    "NodeInfo link to the metadata address": "https://169.254.169.254/nodeinfo/2.1",
    "NodeInfo link to a name resolving privately": "https://internal.example/nodeinfo/2.1",
    "NodeInfo link over plain http": "http://peer.example/nodeinfo/2.1",
    "NodeInfo link to a mapped address": "https://[::ffff:a9fe:a9fe]/nodeinfo",
    "NodeInfo link to a disguised loopback (decimal)": "https://2130706433/nodeinfo",
    "NodeInfo link to a disguised loopback (hex)": "https://0x7f000001/nodeinfo",
    "NodeInfo link to a disguised loopback (octal)": "https://0177.0.0.1/nodeinfo",
    "NodeInfo link to a disguised loopback (short)": "https://127.1/nodeinfo",
    "NodeInfo link to an IPv6 zone": "https://[fe80::1%25eth0]/nodeinfo",
    "NodeInfo link to NAT64 loopback": "https://[64:ff9b::7f00:1]/nodeinfo",
    "NodeInfo link as a data: URL": "data:application/json,{}",
    "WebFinger self link to a ULA address": "https://[fd00::1]/users/x",
    "WebFinger self link to 6to4 loopback": "https://[2002:7f00:1::1]/users/x",
    "WebFinger self link to Teredo": "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/u",
    "WebFinger self link to CGNAT": "https://100.64.0.1/users/x",
    "WebFinger self link to a benchmarking address": "https://198.18.0.1/users/x",
}


@pytest.mark.parametrize("name", DISCOVERED)
def test_links_in_a_peers_discovery_documents_are_not_followed_to_private_places(
        name: str) -> None:
    network, dns = Network(), FakeDNS()
    dns.add("peer.example", [PUBLIC_V4])
    dns.add("internal.example", ["10.1.1.1"])
    link = DISCOVERED[name]
    network.page("peer.example", "/.well-known/nodeinfo",
                 body={"links": [{"rel": "http://nodeinfo.diaspora.software/ns/schema/2.1",
                                  "href": link}]},
                 headers={"content-type": "application/json"})

    async def go() -> None:
        async with Fetcher(resolver=dns, transport=network) as fetcher:
            found = await fetcher.get_json("https://peer.example/.well-known/nodeinfo",
                                           accept=JRD_ACCEPT, require_id=False)
            with pytest.raises(FetchError):
                await fetcher.get_json(found.document["links"][0]["href"], require_id=False)

    with TALLY.trying("fetching", name, outcome="not fetched"):
        asyncio.run(go())
        assert network.connected == [PUBLIC_V4]
        assert dns.lookups in (["peer.example"], ["peer.example", "internal.example"])


# --- web: CSRF on every form ----------------------------------------------------------------


def _post_routes() -> list[str]:
    paths = []
    for route in ROUTES:
        methods = getattr(route, "methods", None) or set()
        if "POST" in methods and not route.path.endswith("inbox"):
            paths.append(re.sub(r"\{(\w+)(:int)?\}", lambda m: "1" if m.group(2) else "x",
                                route.path))
    return paths


def test_every_form_post_without_the_csrf_token_is_403(visitor, admin) -> None:
    paths = _post_routes()
    assert len(paths) >= 15, paths
    for path in paths:
        for who, browser in (("anonymous", visitor()), ("admin", admin)):
            browser.get("/login")  # a session that has a token of its own
            for label, form in (("no token", {"x": "1"}),
                                ("a wrong token", {"x": "1", "csrf_token": "forged"})):
                with TALLY.trying("web", f"POST {path} as {who} with {label}", outcome="403"):
                    response = browser.request("POST", path, data=form)
                    assert response.status_code == 403, (path, who, label,
                                                          response.status_code)
                    assert response.headers["content-type"].startswith("text/plain")
    assert admin.get("/admin/settings").status_code == 200  # the session still works


def test_a_huge_email_on_the_register_form_is_refused_at_once(visitor, open_registration) -> None:
    browser = visitor()
    with TALLY.trying("web", "a 30 KB email built to make the email regex backtrack",
                      outcome="400"):
        started = time.perf_counter()
        response = browser.post("/register", {"display_name": "x",
                                              "email": "a@" + "." * 30_000 + "@",
                                              "password": "correct horse battery"},
                                page="/register")
        assert response.status_code == 400
        assert time.perf_counter() - started < 1


# --- a flood from one peer ------------------------------------------------------------------


def test_a_flood_from_one_peer_is_429_while_another_peer_is_served(world: World) -> None:
    victim, evil, other = world.victim, world.evil, world.other
    flood = [evil.sign(activity(evil, "Like", note(evil)), victim.url + "/inbox")
             for _ in range(300)]
    calm = [other.sign(activity(other, "Like", note(other)), victim.url + "/inbox")
            for _ in range(5)]

    async def go() -> tuple[list[httpx.Response], list[tuple[httpx.Response, float]]]:
        slots = asyncio.Semaphore(24)
        async with httpx.AsyncClient(timeout=30) as client:
            async def send(body: bytes, headers: dict[str, str]) -> httpx.Response:
                async with slots:
                    return await client.post(victim.url + "/inbox", content=body,
                                             headers=headers)

            async def meanwhile() -> list[tuple[httpx.Response, float]]:
                answers = []
                for body, headers in calm:
                    await asyncio.sleep(0.1)
                    started = time.monotonic()
                    answers.append((await client.post(victim.url + "/inbox", content=body,
                                                      headers=headers),
                                    time.monotonic() - started))
                return answers

            flooded, served = await asyncio.gather(
                asyncio.gather(*(send(body, headers) for body, headers in flood)), meanwhile())
            return list(flooded), served

    name = "a flood of 300 requests from one peer while another sends 5"
    with TALLY.trying("web", name, outcome="429 + Retry-After"):
        flooded, served = asyncio.run(go())
        statuses = [r.status_code for r in flooded]
        assert set(statuses) <= {202, 429}, set(statuses)
        assert statuses.count(429) >= 100, statuses.count(429)
        for response in flooded:
            if response.status_code == 429:
                assert response.headers["retry-after"].isdigit()
                assert int(response.headers["retry-after"]) >= 1
        taken = {json.loads(body)["id"] for (body, _), r in zip(flood, flooded)
                 if r.status_code == 202}
        stored = {row[0] for row in victim.query(
            "SELECT activity_id FROM inbox_items WHERE type = 'Like' AND host = ?",
            (evil.host,))}
        assert stored == taken  # nothing of a 429 was kept
        assert [r.status_code for r, _ in served] == [202] * 5
        assert max(seconds for _, seconds in served) < 3
        assert victim.serving()
        time.sleep(max(int(r.headers.get("retry-after", "0")) for r in flooded) + 0.5)
        assert world.deliver(evil, activity(evil, "Like", note(evil))).status_code == 202
