"""Attacks on a real node process: each is refused, nothing is stored, the node keeps serving.

The victim is `grassroots serve --dev --demo` on 127.0.0.1. The hostile peers
`evil` (127.0.0.5) and `other` (127.0.0.6) are uvicorn stubs with their own
RSA keys; the victim follows both and each answers with a signed Accept, so
both are admitted peers and their refusals come from the checks, not from the
allow-list. A case is "refused" when the answer is the stated 4xx with a
one-line text/plain reason and the victim's inbox, listings, meetings and
peers are unchanged; "neutralised" when a well-formed activity is taken (202)
but the runner ignores it and nothing it names changes.

The rest of the suite: tests/test_attacks_production.py (a node without
--dev), tests/test_attacks_fetching.py (SSRF, in-process), and
tests/test_attacks_web.py (CSRF on every form). Every case of the four is
counted, and the session ends by printing how many were tried and refused.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from federation.handlers import MAX_BACKFILL_PAGES
from federation.keys import generate_key, load_private_key, public_pem
from federation.signatures import digest_header
from node.cli import initialise
from tests.attacks import (
    AP,
    AS,
    PUBLIC,
    TALLY,
    Stub,
    Victim,
    activity,
    group,
    neutralised,
    note,
    refused,
    report_tally,
    wait_for,
)
from tests.helpers import free_port, loopback_server, serving

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


@pytest.fixture(scope="module", autouse=True)
def tally(request: pytest.FixtureRequest) -> None:
    report_tally(request.config)


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
    for kind in ("Delete", "Update", "Create"):
        refused(victim, "origin", f"{kind} of a local group by id, by a remote actor", 403,
                lambda kind=kind: world.deliver(evil, activity(evil, kind, ours)),
                "the object lives on this node")
    meeting = victim.url + "/events/" + str(victim.query(
        "SELECT e.id FROM events e JOIN groups g ON g.id = e.group_id WHERE g.slug = ?",
        (slug,))[0][0])
    refused(victim, "origin", "Delete of a local meeting by id, by a remote actor", 403,
            lambda: world.deliver(evil, activity(evil, "Delete", meeting)),
            "the object lives on this node")
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


# --- who speaks for an object ---------------------------------------------------------------


@dataclass
class GroupActor:
    """A Group actor on a peer, with its own key: the owner of its meetings."""

    stub: Stub
    slug: str
    key: str

    @property
    def id(self) -> str:
        return self.stub.url(f"/groups/{self.slug}")

    def meeting(self, number: int, **fields: Any) -> dict[str, Any]:
        return {"id": self.stub.url(f"/events/{self.slug}-{number}"), "type": "Event",
                "name": f"Meeting {number}", "startTime": "2031-05-06T18:00:00Z",
                "endTime": "2031-05-06T19:30:00Z", "timezone": "UTC",
                "attributedTo": self.id, "to": [PUBLIC], **fields}

    def send(self, w: World, kind: str, obj: Any) -> dict[str, Any]:
        act = activity(self.stub, kind, obj, actor=self.id)
        response = w.deliver(self.stub, act, key_id=f"{self.id}#main-key", key=self.key)
        assert response.status_code == 202, response.text
        return act


def group_actor(stub: Stub, slug: str) -> GroupActor:
    actor = GroupActor(stub, slug, generate_key())
    stub.serve(stub.actor_document(actor.id, slug, actor.key, type="Group", to=[PUBLIC]))
    return actor


def stored_meeting(victim: Victim, ap_id: str) -> list[tuple]:
    return victim.query("SELECT e.title, g.ap_id FROM events e JOIN groups g"
                        " ON g.id = e.group_id WHERE e.ap_id = ?", (ap_id,))


def test_only_the_owning_group_changes_or_deletes_its_meeting(world: World) -> None:
    """A second actor on the same peer host can neither rename nor delete another group's
    meeting, by sending the object as its own or as the owner's; the owner can."""
    victim, other = world.victim, world.other
    owner, rival = group_actor(other, "owner-circle"), group_actor(other, "rival-circle")
    meeting = owner.meeting(1)
    other.serve({"@context": AS, **meeting})
    created = owner.send(world, "Create", meeting)
    assert victim.settled(created["id"]) == "applied"
    assert stored_meeting(victim, meeting["id"]) == [("Meeting 1", owner.id)]

    with TALLY.trying("authority", "Update of another group's meeting, claimed as the owner's",
                      "Update of another group's meeting, claimed as its own",
                      "Delete of another group's meeting",
                      "Delete of another group", outcome="202 neutralised"):
        as_owner = rival.send(world, "Update", meeting | {"name": "Renamed by a rival"})
        victim.settled(as_owner["id"])  # refetched from its origin: what the owner says
        as_its_own = rival.send(world, "Update", meeting | {"name": "Renamed by a rival",
                                                            "attributedTo": rival.id})
        assert victim.settled(as_its_own["id"]) == "ignored"
        delete = rival.send(world, "Delete", meeting["id"])
        assert victim.settled(delete["id"]) == "ignored"
        delete_group = rival.send(world, "Delete", owner.id)
        assert victim.settled(delete_group["id"]) == "ignored"
        assert stored_meeting(victim, meeting["id"]) == [("Meeting 1", owner.id)]

    renamed = owner.send(world, "Update", meeting | {"name": "Renamed by its group"})
    assert victim.settled(renamed["id"]) == "applied"
    assert stored_meeting(victim, meeting["id"]) == [("Renamed by its group", owner.id)]
    deleted = owner.send(world, "Delete", meeting["id"])
    assert victim.settled(deleted["id"]) == "applied"
    assert stored_meeting(victim, meeting["id"]) == []


def test_an_announce_never_widens_or_rewrites_what_is_stored(world: World) -> None:
    """An Announce only points at an object: what is stored is what its origin serves."""
    victim, other = world.victim, world.other
    owner, rival = group_actor(other, "quiet-circle"), group_actor(other, "loud-circle")
    hidden = owner.meeting(2, to=[f"{owner.id}/followers"])
    other.serve({"@context": AS, **hidden})
    listed = owner.meeting(3)
    other.serve({"@context": AS, **listed})
    with TALLY.trying("authority", "Announce addressing a followers-only meeting to everyone",
                      "Announce of a Create with rewritten content", outcome="202 neutralised"):
        widened = rival.send(world, "Announce", hidden | {"to": [PUBLIC]})
        assert victim.settled(widened["id"]) == "ignored"
        wrapped = rival.send(world, "Announce", activity(other, "Create", listed | {
            "name": "Rewritten", "to": [PUBLIC]}, actor=owner.id))
        assert victim.settled(wrapped["id"]) == "applied"
        assert stored_meeting(victim, hidden["id"]) == []
        assert stored_meeting(victim, listed["id"]) == [("Meeting 3", owner.id)]
    # The owner's own Update narrowing the audience takes the meeting off the listing.
    narrowed = owner.send(world, "Update", listed | {"to": [f"{owner.id}/followers"]})
    victim.settled(narrowed["id"])
    assert stored_meeting(victim, listed["id"]) == []


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


# --- an outbox that pages forever -------------------------------------------------------


def test_an_endless_outbox_of_a_real_peer_stopped_at_the_page_cap(world: World) -> None:
    """The victim's backfill from evil (during setup) read the cap and not one page more."""
    with TALLY.trying("fetching", "an outbox that pages forever (real node)",
                      outcome=f"stopped after {MAX_BACKFILL_PAGES} pages"):
        pages = [p for p in world.evil.hits if p.startswith("/outbox")]
        assert len(pages) == 1 + MAX_BACKFILL_PAGES, pages
        assert world.evil.hits[f"/outbox?page={MAX_BACKFILL_PAGES + 1}"] == 0


# --- a flood from one peer ------------------------------------------------------------------


def test_a_flood_from_one_peer_is_429_while_another_peer_is_served(world: World) -> None:
    victim, evil, other = world.victim, world.evil, world.other
    flood = [evil.sign(activity(evil, "Like", note(evil)), victim.url + "/inbox")
             for _ in range(600)]
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

    name = "a flood of 600 requests from one peer while another sends 5"
    with TALLY.trying("web", name, outcome="429 + Retry-After"):
        flooded, served = asyncio.run(go())
        statuses = [r.status_code for r in flooded]
        assert set(statuses) <= {202, 429}, set(statuses)
        assert statuses.count(429) >= 200, statuses.count(429)  # 600 against a burst of 200
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
