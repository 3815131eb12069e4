"""Benchmark: a sustained load of signed meeting Creates and Updates; does applying keep up?

Peers are loopback hosts (127.0.x.y) served by ``peer_stub``, followed and
approved as in ``bench.inbox``; the node's per-peer limit is raised for this
node (``GRASSROOTS_INBOX_RATE_PER_SECOND`` and ``GRASSROOTS_INBOX_BURST``), so
only the node's own capacity holds the load back. A probe round first finds the
rate the node accepts (as fast as it answers, concurrency 32). Then, for
``SECONDS``, the peers' Groups send at that rate a mix of ``Create{Event}``
(new meetings) and ``Update{Event}`` (``UPDATE_SHARE`` of them, of meetings
each peer created earlier), signed beforehand and paced by the load
generator. Every ``SAMPLE_SECONDS`` the node's database is read from outside:
accepted (stored), applied (done with) and the backlog (stored, not yet
applied). PASS when applying keeps up: the backlog at the end is no larger
than at half time plus ``TOLERANCE_SECONDS`` of the load, and applied/s is at
least ``KEEP_UP`` × accepted/s. Afterwards the backlog must drain and every
Create be listed once.
"""
from __future__ import annotations

import json
import os
import pickle
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import (
    HOST,
    ROOT,
    free_port,
    load,
    node_process,
    query,
    scratch,
    sign_all,
    wait_until,
)
from bench.inbox import (
    CONCURRENCY,
    Peer,
    _drained,
    _peers,
    _serving_peers,
    admitted_node,
    create_event,
)

SECONDS = 60
SAMPLE_SECONDS = 10
UPDATE_SHARE = 0.7
KEEP_UP = 0.95
TOLERANCE_SECONDS = 1.0
DRAIN_TIMEOUT = 300
# High enough that no peer is held back: the node's capacity is what is measured.
LIMITS = {"GRASSROOTS_INBOX_RATE_PER_SECOND": "10000", "GRASSROOTS_INBOX_BURST": "100000"}


def activities(peers: list[Peer], count: int, rng: random.Random) -> list[tuple[Peer, bytes]]:
    """``count`` bodies, peers taking turns: Creates, and Updates of each peer's earlier ones."""
    today = datetime.now().replace(microsecond=0)
    created: dict[str, list[dict[str, Any]]] = {p.host: [] for p in peers}
    found = []
    for i in range(count):
        peer = peers[i % len(peers)]
        earlier = created[peer.host]
        if earlier and rng.random() < UPDATE_SHARE:
            event = dict(rng.choice(earlier))
            event["name"] = f"{event['name'].split(' · ')[0]} · changed {i}"
            act = {"@context": earlier[0]["@context"],
                   "id": f"http://{peer.host}/activities/{uuid.uuid4()}", "type": "Update",
                   "actor": peer.group, "object": {k: v for k, v in event.items()
                                                   if k != "@context"},
                   "to": event["to"], "cc": event["cc"]}
            body = json.dumps(act).encode()
        else:
            body = create_event(peer, rng, today)
            act = json.loads(body)
            earlier.append({**act["object"], "@context": act["@context"]})
        found.append((peer, body))
    return found


def _signed(node_port: int, bodies: list[tuple[Peer, bytes]]) -> list[bytes]:
    return sign_all([(node_port, "/inbox", body, f"{peer.group}#main-key", peer.private_pem)
                     for peer, body in bodies])


def _counts(db_path: Path) -> tuple[int, int]:
    """(activities stored, of which not yet applied)."""
    total, waiting = query(db_path, "SELECT count(*), count(*) FILTER (WHERE state ="
                                    " 'received') FROM inbox_items")[0]
    return total, waiting


@contextmanager
def _limits_raised() -> Iterator[None]:
    """The node started in this block lets every peer send as fast as it likes."""
    before = {name: os.environ.get(name) for name in LIMITS}
    os.environ.update(LIMITS)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _sustain(node_port: int, db_path: Path, requests: list[bytes], rate: float,
             seconds: float, every: float, tmp: Path) -> dict[str, Any]:
    """Send ``requests`` paced at ``rate``; sample the database every ``every`` seconds."""
    with tempfile.NamedTemporaryFile(suffix=".pickle", dir=tmp, delete=False) as file:
        pickle.dump(requests, file)
    stored, _ = _counts(db_path)
    sender = subprocess.Popen(
        [sys.executable, "-m", "bench.loadgen", HOST, str(node_port), str(CONCURRENCY),
         file.name, str(len(requests)), str(rate)],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: _counts(db_path)[0] > stored, "the first activity stored", 120,
                   interval=0.005)
        began = time.monotonic()
        samples = []
        for n in range(1, int(seconds / every) + 1):
            time.sleep(max(0.0, began + n * every - time.monotonic()))
            total, waiting = _counts(db_path)
            at = time.monotonic() - began
            accepted = total - stored
            samples.append({"s": round(at, 1), "accepted": accepted,
                            "applied": accepted - waiting, "backlog": waiting})
            print(f"  sustained {at:5.1f} s: accepted {accepted / at:,.0f}/s, applied"
                  f" {(accepted - waiting) / at:,.0f}/s, backlog {waiting:,}",
                  file=sys.stderr, flush=True)
        out, err = sender.communicate(timeout=600)
    finally:
        if sender.poll() is None:
            sender.kill()
            sender.wait()
        os.unlink(file.name)
    if sender.returncode != 0:
        raise RuntimeError(f"load generator failed: {err[-2000:]}")
    return {"samples": samples, "sender": json.loads(out.strip().splitlines()[-1])}


def run(quick: bool = False, rate: float | None = None) -> dict[str, Any]:
    """The figures; ``rate`` (activities a second) instead of the probe's accepted rate."""
    rng = random.Random(17)
    n_peers, seconds, every = (8, 3, 1) if quick else (256, SECONDS, SAMPLE_SECONDS)
    with scratch("sustained") as tmp, _limits_raised():
        node_port = free_port()
        peers = _peers(n_peers, 2 if quick else 32, free_port())
        data, db_path = admitted_node(tmp, node_port, peers)
        with _serving_peers(tmp, peers, rng), node_process(data, node_port):
            warm = load(node_port, CONCURRENCY, _signed(node_port, activities(peers, n_peers, rng)))
            if warm["statuses"] != {"202": n_peers}:
                raise RuntimeError(f"warm-up refused: {warm['statuses']} (see {data}/node.log)")
            wait_until(lambda: _drained(db_path), "the warm-up applied", 120)
            probe = load(node_port, CONCURRENCY, _signed(
                node_port, activities(peers, 100 if quick else 3000, rng)))
            wait_until(lambda: _drained(db_path), "the probe applied", 600)
            offered = rate or (200.0 if quick else probe["statuses"].get("202", 0)
                               / probe["elapsed"])
            began = time.monotonic()
            requests = _signed(node_port, activities(peers, int(offered * seconds), rng))
            signing_s = time.monotonic() - began
            sustained = _sustain(node_port, db_path, requests, offered, seconds, every, tmp)
            drained_s = wait_until(lambda: _drained(db_path), "the backlog to drain",
                               DRAIN_TIMEOUT)
        meetings = query(db_path, "SELECT count(*) FROM events WHERE ap_id IS NOT NULL")[0][0]
        creates, updates, states = query(
            db_path, "SELECT count(*) FILTER (WHERE type = 'Create'), count(*) FILTER (WHERE"
            " type = 'Update'), group_concat(DISTINCT state) FROM inbox_items")[0]
    # An Update whose Create was refused (503) lists its meeting too; none is listed twice.
    if not creates <= meetings <= creates + updates or states != "applied":
        raise RuntimeError(f"{creates} Creates and {updates} Updates stored but {meetings}"
                           f" meetings listed; inbox states {states}")
    samples = sustained["samples"]
    end, half = samples[-1], samples[len(samples) // 2 - 1]
    accepted_per_s, applied_per_s = end["accepted"] / end["s"], end["applied"] / end["s"]
    tolerance = offered * TOLERANCE_SECONDS
    return {
        "offered_per_s": offered,
        "probe_accepted_per_s": probe["statuses"].get("202", 0) / probe["elapsed"],
        "accepted_per_s": accepted_per_s,
        "applied_per_s": applied_per_s,
        "applied_ratio": applied_per_s / accepted_per_s if accepted_per_s else 0.0,
        "backlog_half": half["backlog"],
        "backlog_end": end["backlog"],
        "backlog_tolerance": tolerance,
        "passed": end["backlog"] <= half["backlog"] + tolerance
        and applied_per_s >= KEEP_UP * accepted_per_s,
        "samples": samples,
        "statuses": sustained["sender"]["statuses"],
        "send_s": sustained["sender"]["elapsed"],
        "signing_s": signing_s,
        "drained_s": drained_s,
        "seconds": seconds,
        "peers": n_peers,
    }


def describe(r: dict[str, Any]) -> str:
    at = "; ".join(f"{s['s']:.0f} s {s['accepted'] / s['s']:,.0f}/{s['applied'] / s['s']:,.0f}/s"
                   f" backlog {s['backlog']:,}" for s in r["samples"])
    return (f"sustained: {r['seconds']} s at {r['offered_per_s']:,.0f}/s offered (the probe's"
            f" accepted rate) from {r['peers']} peers, {UPDATE_SHARE:.0%} Updates: accepted"
            f" {r['accepted_per_s']:,.0f}/s, applied {r['applied_per_s']:,.0f}/s, backlog"
            f" {r['backlog_end']:,} at the end ({r['backlog_half']:,} at half time); target"
            f" backlog not growing (≤ half time + {r['backlog_tolerance']:,.0f}) and applied"
            f" ≥ {KEEP_UP} × accepted: {'PASS' if r['passed'] else 'FAIL'}; answers"
            f" {r['statuses']}; drained {r['drained_s']:.0f} s after"
            f"\n  accepted/applied per s since the start: {at}")


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    chosen = next((float(a.split("=", 1)[1]) for a in sys.argv if a.startswith("--rate=")), None)
    result = run(quick, chosen)
    print(describe(result))
    print(json.dumps(result))
