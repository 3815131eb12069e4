"""Benchmark 1: signed Create{Event} activities into a real node's shared inbox.

Peers are loopback hosts (127.0.x.y) served by ``peer_stub``; each is a
followed and approved peer of the node (rows written through
``federation.store`` before the node starts) whose Group actor sends
meetings, as a Grassroots peer does. Every request is signed beforehand,
moments before its round (the Date window), and the rounds go out from the
load generator's own process at concurrency 32. The baseline, in the same
run, is the same generator against a hello-world Starlette route on the
node's uvicorn settings (``bench.hello``); beside it, the same signed
requests go to ``bench.floor``, which only parses and verifies them, to show
how much of the gap any verifying inbox pays. Afterwards every accepted
activity must be applied: the meetings it carried are in the directory.
"""
from __future__ import annotations

import asyncio
import json
import random
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import corpus
from bench.common import (
    HOST,
    cpu_seconds,
    free_port,
    generate_keys,
    get_status,
    load,
    median,
    memory_mb,
    node_process,
    profiled,
    query,
    scratch,
    sign_all,
    spawn,
    stop,
    wait_until,
    wait_until_serving,
)
from federation import store
from federation.documents import AS_PUBLIC, CONTEXT
from federation.keys import public_pem
from node.cli import initialise
from node.config import load_config
from node.db import SqliteDatabase

CONCURRENCY = 32
HELLO = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
try:  # the node's per-peer limit decides how many peers a round needs
    from federation.ratelimit import BURST
except ImportError:
    BURST = float("inf")


@dataclass(frozen=True, slots=True)
class Peer:
    ip: str
    port: int
    private_pem: str

    @property
    def host(self) -> str:
        return f"{self.ip}:{self.port}"

    @property
    def group(self) -> str:
        return f"http://{self.host}/groups/circle"


def _peers(count: int, keys: int, port: int) -> list[Peer]:
    """``count`` peers on their own loopback addresses, sharing ``keys`` key pairs."""
    pems = generate_keys(keys)
    return [Peer(f"127.0.{1 + i // 250}.{1 + i % 250}", port, pems[i % keys])
            for i in range(count)]


def group_document(peer: Peer, rng: random.Random) -> dict[str, Any]:
    """The peer's Group actor, as a Grassroots node serves it (it signs, and owns the meetings)."""
    draft = corpus.group(rng, 0).draft
    actor = peer.group
    return {
        "@context": CONTEXT, "id": actor, "type": "Group", "preferredUsername": "circle",
        "name": draft.name, "summary": f"<p>{draft.summary}</p><p>{draft.description}</p>",
        "url": actor, "inbox": f"{actor}/inbox", "outbox": f"{actor}/outbox",
        "followers": f"{actor}/followers",
        "endpoints": {"sharedInbox": f"http://{peer.host}/inbox"},
        "publicKey": {"id": f"{actor}#main-key", "owner": actor,
                      "publicKeyPem": public_pem(peer.private_pem)},
        "topics": list(draft.topics), "languages": list(draft.languages),
        "accessibility": list(draft.accessibility), "cost": draft.cost.value,
        "format": draft.format.value, "area": draft.area, "joinPolicy": draft.join_policy.value,
    }


def create_event(peer: Peer, rng: random.Random, today: datetime) -> bytes:
    """A Create{Event} as a Grassroots peer sends it, with the whole series in ``recurrence``."""
    listing = corpus.group(rng, 1)
    draft = corpus.meeting(rng, listing, today)
    event_id = f"http://{peer.host}/events/{uuid.uuid4()}"
    event = {
        "id": event_id, "type": "Event", "name": draft.title,
        "content": f"<p>{draft.description}</p>", "mediaType": "text/html",
        "startTime": draft.starts_at.isoformat() + "Z", "timezone": draft.timezone,
        "isOnline": draft.format.value == "online", "format": draft.format.value,
        "attributedTo": peer.group, "to": [AS_PUBLIC], "cc": [f"{peer.group}/followers"],
        "url": event_id, "topics": list(listing.draft.topics),
        "languages": list(listing.draft.languages),
        "recurrence": {"dtstart": draft.starts_at.strftime("%Y-%m-%dT%H:%M"),
                       "timezone": draft.timezone, "durationMinutes": draft.duration_minutes,
                       "rrule": draft.rrule, "cancelled": [], "moved": []},
        "ical:status": "CONFIRMED",
    }
    if draft.place:
        event["location"] = {"type": "Place", "name": draft.place,
                             "address": {"type": "PostalAddress",
                                         "streetAddress": draft.address}}
    activity = {"@context": CONTEXT, "id": f"http://{peer.host}/activities/{uuid.uuid4()}",
                "type": "Create", "actor": peer.group, "object": event, "to": [AS_PUBLIC],
                "cc": [f"{peer.group}/followers"], "published": today.isoformat() + "Z"}
    return json.dumps(activity).encode()


def signed_round(peers: list[Peer], count: int, node_port: int, rng: random.Random) -> list[bytes]:
    """``count`` signed POSTs to /inbox, peers taking turns (no peer bursts past its limit)."""
    today = datetime.now().replace(microsecond=0)
    jobs = []
    for i in range(count):
        peer = peers[i % len(peers)]
        jobs.append((node_port, "/inbox", create_event(peer, rng, today),
                     f"{peer.group}#main-key", peer.private_pem))
    return sign_all(jobs)


async def _admit(db_path: Path, peers: list[Peer]) -> None:
    """Make every peer one this node follows and that follows it, as after both admins agreed."""
    db = SqliteDatabase(db_path)
    await db.open()
    try:
        for peer in peers:
            await store.save_peer(db, peer.host, f"http://{peer.host}/actor",
                                  f"http://{peer.host}/inbox", f"http://{peer.host}/actor/outbox")
            await store.set_following(db, peer.host, "accepted")
            await store.set_follower(db, peer.host, "approved")
    finally:
        await db.close()


def admitted_node(tmp: Path, node_port: int, peers: list[Peer]) -> tuple[Path, Path]:
    """A node's data directory (and its database) that follows and is followed by every
    peer."""
    data = tmp / "node"
    initialise(data, f"http://{HOST}:{node_port}")
    db_path = load_config(data).db_path
    asyncio.run(_admit(db_path, peers))
    return data, db_path


def _states(db_path: Path) -> dict[str, int]:
    return dict(query(db_path, "SELECT state, count(*) FROM inbox_items GROUP BY state"))


def _drained(db_path: Path) -> bool:
    return not query(db_path, "SELECT 1 FROM inbox_items WHERE state = 'received' LIMIT 1")


@contextmanager
def peer_stub(tmp: Path, peers: list[Peer], documents: dict[str, str],
              probe: str) -> Iterator[None]:
    """``documents`` (by host and path) served on the peers' loopback addresses, until the
    block ends; ready once the last peer answers ``probe``."""
    spec = tmp / "peers.json"
    spec.write_text(json.dumps({"addresses": [[p.ip, p.port] for p in peers],
                                "documents": documents}))
    stub = spawn(["-m", "bench.peer_stub", str(spec)], log=tmp / "stub.log")
    try:
        tail = peers[-1]
        wait_until(lambda: get_status(tail.port, probe, tail.ip) == 200, "the peer stub", 30)
        yield
    finally:
        stop(stub)


def _serving_peers(tmp: Path, peers: list[Peer], rng: random.Random):
    """The peers' Group actors on their loopback addresses, until the block ends."""
    return peer_stub(tmp, peers, {f"{p.host}/groups/circle": json.dumps(group_document(p, rng))
                                  for p in peers}, "/groups/circle")


@contextmanager
def _serving(tmp: Path, module: str, *args: str) -> Iterator[int]:
    """A reference server (``bench.hello`` or ``bench.floor``) on a free port; its port."""
    port = free_port()
    server = spawn(["-m", module, str(port), *args], log=tmp / f"{module}.log")
    try:
        wait_until_serving(port, server)
        yield port
    finally:
        stop(server)


def _key_file(tmp: Path, peers: list[Peer]) -> str:
    path = tmp / "keys.json"
    path.write_text(json.dumps({f"{p.group}#main-key": public_pem(p.private_pem) for p in peers}))
    return str(path)


def _sent_and_applied(node: subprocess.Popen, port: int, db_path: Path,
                      requests: list[bytes], profile: Path | None, name: str) -> dict[str, Any]:
    """Send one round, then wait until the node has applied everything it accepted."""
    started, cpu = time.monotonic(), cpu_seconds(node.pid)
    with profiled(node.pid, profile and profile / f"{name}-accept.txt"):
        result = load(port, CONCURRENCY, requests)
    result["node_cpu_s"] = cpu_seconds(node.pid) - cpu
    with profiled(node.pid, profile and profile / f"{name}-apply.txt"):
        wait_until(lambda: _drained(db_path), f"{name} applied", 600)
    result["applied_s"] = time.monotonic() - started
    return result


def run(quick: bool = False, profile: Path | None = None) -> dict[str, Any]:
    rng = random.Random(11)
    n_peers, rounds = (8, 1) if quick else (256, 3)
    with scratch("inbox") as tmp, _serving(tmp, "bench.hello") as hello_port:
        node_port = free_port()
        peers = _peers(n_peers, 2 if quick else 32, free_port())
        data, db_path = admitted_node(tmp, node_port, peers)
        with _serving_peers(tmp, peers, rng), node_process(data, node_port) as node, \
                _serving(tmp, "bench.floor", _key_file(tmp, peers)) as floor_port:
            warm = _sent_and_applied(node, node_port, db_path,
                                     signed_round(peers, n_peers, node_port, rng), None, "warm-up")
            if warm["statuses"] != {"202": n_peers}:
                raise RuntimeError(f"warm-up refused: {warm['statuses']} (see {data}/node.log)")
            probe = _sent_and_applied(node, node_port, db_path, signed_round(
                peers, 100 if quick else 500, node_port, rng), None, "probe")
            # Rounds of about 2 s of sending, within every peer's burst allowance and
            # small enough that applying them all takes seconds, not minutes.
            size = 100 if quick else int(max(500, min(
                probe["rate"] * 2, probe["answered"] / probe["applied_s"] * 15,
                n_peers * BURST * 0.8, 30_000)))
            results, baselines, floors = [], [], []
            for n in range(rounds):
                baselines.append(load(hello_port, CONCURRENCY, [HELLO],
                                      5000 if quick else 60_000))
                requests = signed_round(peers, size, node_port, rng)
                floors.append(load(floor_port, CONCURRENCY, requests))
                results.append(_sent_and_applied(node, node_port, db_path, requests,
                                                 profile if n == rounds - 1 else None, "inbox"))
            peak_rss = memory_mb(node.pid, "VmHWM")
        states = _states(db_path)
        meetings = query(db_path, "SELECT count(*) FROM events WHERE ap_id IS NOT NULL")[0][0]
    everything = [warm, probe, *results]
    accepted_total = sum(r["statuses"].get("202", 0) for r in everything)
    if states.get("applied", 0) != accepted_total or meetings != accepted_total:
        raise RuntimeError(f"{accepted_total} accepted, but inbox states are {states} and "
                           f"{meetings} meetings were listed")
    accepted = [r["statuses"].get("202", 0) for r in results]
    node_rate = median([a / r["elapsed"] for a, r in zip(accepted, results)])
    hello_rate = median([b["rate"] for b in baselines])
    if any(f["statuses"] != {"202": f["answered"]} for f in floors):
        raise RuntimeError(f"the floor server refused requests: {[f['statuses'] for f in floors]}")
    floor_rate = median([f["rate"] for f in floors])
    return {
        "ratio": node_rate / hello_rate,
        "accepted_per_s": node_rate,
        "hello_per_s": hello_rate,
        "floor_per_s": floor_rate,
        "floor_ratio": floor_rate / hello_rate,
        "round_size": size,
        "refused": {s: n for r in results for s, n in r["statuses"].items() if s != "202"},
        "applied": states.get("applied", 0),
        "sent": sum(r["answered"] for r in everything),
        # The node's CPU time (all threads) while a round was sent, per accepted activity.
        "node_cpu_ms_per_accepted": median([r["node_cpu_s"] * 1000 / max(a, 1)
                                            for a, r in zip(accepted, results)]),
        "applied_per_s": median([a / r["applied_s"] for a, r in zip(accepted, results)]),
        "generator_ceiling_per_s": median([r["answered"] / r["cpu"] for r in results]),
        "generator_ceiling_hello_per_s": median([b["answered"] / b["cpu"] for b in baselines]),
        "peers": n_peers,
        "node_peak_rss_mb": peak_rss,
    }


if __name__ == "__main__":
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=1))
