"""Benchmark: what an ignored activity costs the node, before the negative cache knows why
and after.

Peers are loopback hosts (127.0.x.y) served by ``peer_stub``, each a followed and
approved peer (as in ``bench.inbox``) with two actors: a Person, and a Group whose
document can never be a listing (its preferredUsername is not a plain name). Their
keys are fetched first (one Create{Note} each, answered 202 and not kept), so the
phases measure ignoring alone, as the node's CPU time (all threads) from the first
request of a phase until everything it stored has been applied:

- cold: each Group's first Create of its own meeting. Stored, then applied: the
  group is fetched, found unusable, remembered, and the activity ignored.
- warm: ``REPEATS`` more from each Group. The inbox knows the group is unusable:
  202, nothing stored, no fetch.
- person: ``REPEATS`` from each Person of a meeting attributed to itself (the
  issue's case: a Person can never be a meeting's group; its key's document said
  what it is), answered the same way.
- accepted, the reference: ``REPEATS`` meetings from each peer's usable Group,
  stored and applied; the node's CPU while they are sent, as ``bench.inbox``
  counts it (applying them mostly waits until the sending is over).
"""
from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import (
    cpu_seconds,
    free_port,
    load,
    node_process,
    query,
    scratch,
    sign_all,
    wait_until,
)
from bench.inbox import Peer, _peers, admitted_node, peer_stub
from federation.documents import AS_PUBLIC, CONTEXT
from federation.keys import public_pem

CONCURRENCY = 32
REPEATS = 10


def actor_document(peer: Peer, name: str, kind: str, username: str) -> dict[str, Any]:
    actor = f"http://{peer.host}/users/{name}"
    return {"@context": CONTEXT, "id": actor, "type": kind, "preferredUsername": username,
            "inbox": f"{actor}/inbox", "outbox": f"{actor}/outbox",
            "endpoints": {"sharedInbox": f"http://{peer.host}/inbox"},
            "publicKey": {"id": f"{actor}#main-key", "owner": actor,
                          "publicKeyPem": public_pem(peer.private_pem)}}


def _activity(actor: str, kind: str, obj: dict[str, Any]) -> bytes:
    origin = actor.split("/users/")[0]
    return json.dumps({"@context": CONTEXT, "id": f"{origin}/activities/{uuid.uuid4()}",
                       "type": kind, "actor": actor, "object": obj,
                       "to": [AS_PUBLIC]}).encode()


def _meeting(actor: str) -> dict[str, Any]:
    origin = actor.split("/users/")[0]
    return {"id": f"{origin}/events/{uuid.uuid4()}", "type": "Event", "name": "Tea and talk",
            "startTime": "2031-05-06T18:00:00Z", "timezone": "UTC", "attributedTo": actor,
            "to": [AS_PUBLIC]}


def _note(actor: str) -> dict[str, Any]:
    origin = actor.split("/users/")[0]
    return {"id": f"{origin}/notes/{uuid.uuid4()}", "type": "Note", "content": "hello",
            "attributedTo": actor}


def _signed(peers: list[Peer], name: str, make: Any, repeats: int, port: int) -> list[bytes]:
    """``repeats`` rounds of one activity from actor ``name`` of every peer, signed."""
    jobs = []
    for _ in range(repeats):
        for peer in peers:
            actor = f"http://{peer.host}/users/{name}"
            jobs.append((port, "/inbox", _activity(actor, "Create", make(actor)),
                         f"{actor}#main-key", peer.private_pem))
    return sign_all(jobs)


def _serving_actors(tmp: Path, peers: list[Peer]):
    documents = {}
    for p in peers:
        documents[f"{p.host}/users/alice"] = json.dumps(actor_document(p, "alice", "Person",
                                                                       "alice"))
        documents[f"{p.host}/users/odd"] = json.dumps(actor_document(p, "odd", "Group",
                                                                     "odd one"))
        documents[f"{p.host}/users/circle"] = json.dumps(actor_document(p, "circle", "Group",
                                                                        "circle"))
    return peer_stub(tmp, peers, documents, "/users/odd")


def _count(db_path: Path) -> int:
    return query(db_path, "SELECT count(*) FROM inbox_items")[0][0]


def _phase(node_pid: int, port: int, db_path: Path, requests: list[bytes]) -> dict[str, Any]:
    """Send, wait until nothing stored is left to apply; node CPU ms per request."""
    stored_before = _count(db_path)
    cpu, started = cpu_seconds(node_pid), time.monotonic()
    result = load(port, CONCURRENCY, requests)
    sending = cpu_seconds(node_pid) - cpu
    wait_until(lambda: not query(db_path, "SELECT 1 FROM inbox_items"
                                          " WHERE state = 'received' LIMIT 1"),
               "the stored activities to be applied", 300)
    spent = cpu_seconds(node_pid) - cpu
    if result["statuses"] != {"202": len(requests)}:
        raise RuntimeError(f"not all answered 202: {result['statuses']}")
    return {"ms_per_activity": spent * 1000 / len(requests),
            "sending_ms_per_activity": sending * 1000 / len(requests), "sent": len(requests),
            "stored": _count(db_path) - stored_before,
            "seconds": time.monotonic() - started}


def run(quick: bool = False) -> dict[str, Any]:
    n_peers = 10 if quick else 200
    with scratch("ignored") as tmp:
        node_port = free_port()
        peers = _peers(n_peers, 2 if quick else 16, free_port())
        data, db_path = admitted_node(tmp, node_port, peers)
        with _serving_actors(tmp, peers), node_process(data, node_port) as node:
            for name in ("alice", "odd", "circle"):  # their keys fetched; the Notes not kept
                _phase(node.pid, node_port, db_path, _signed(peers, name, _note, 1, node_port))
            cold = _phase(node.pid, node_port, db_path,
                          _signed(peers, "odd", _meeting, 1, node_port))
            warm = _phase(node.pid, node_port, db_path,
                          _signed(peers, "odd", _meeting, REPEATS, node_port))
            person = _phase(node.pid, node_port, db_path,
                            _signed(peers, "alice", _meeting, REPEATS, node_port))
            accepted = _phase(node.pid, node_port, db_path,
                              _signed(peers, "circle", _meeting, REPEATS, node_port))
        states = dict(query(db_path, "SELECT state, count(*) FROM inbox_items GROUP BY state"))
    if cold["stored"] != n_peers or states != {"ignored": n_peers, "applied": accepted["sent"]} \
            or warm["stored"] or person["stored"]:
        raise RuntimeError(f"expected {n_peers} ignored and nothing else kept: {states},"
                           f" warm {warm['stored']}, person {person['stored']}")
    return {
        "peers": n_peers,
        "cold_ms": cold["ms_per_activity"],
        "warm_ms": warm["ms_per_activity"],
        "person_ms": person["ms_per_activity"],
        "accepted_ms": accepted["sending_ms_per_activity"],
        "cold_over_warm": cold["ms_per_activity"] / max(warm["ms_per_activity"], 1e-3),
        "warm_over_accepted": warm["ms_per_activity"]
        / max(accepted["sending_ms_per_activity"], 1e-3),
        "sent": cold["sent"] + warm["sent"] + person["sent"] + accepted["sent"],
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def describe(result: dict[str, Any]) -> str:
    return (f"ignored: node CPU per ignored Create{{Event}} from {result['peers']} peers:"
            f" {result['cold_ms']:.2f} ms before the negative cache knows its group (stored,"
            f" applied, one fetch), {result['warm_ms']:.2f} ms after (202 at the inbox,"
            f" nothing stored, no fetch): {result['cold_over_warm']:.1f}x; a Person's own"
            f" meeting {result['person_ms']:.2f} ms; accepting a usable one"
            f" {result['accepted_ms']:.2f} ms (ignored ÷ accepted"
            f" {result['warm_over_accepted']:.2f})")


if __name__ == "__main__":
    import sys

    figures = run(quick="--quick" in sys.argv)
    print(describe(figures))
    print(json.dumps(figures, indent=1))
