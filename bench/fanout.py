"""Benchmark 4: one meeting published to 10,000 peer inboxes.

A local public group; 10,000 approved follower peers whose inboxes are
``/inbox/N`` on one sink (``bench.sink``, which verifies every signature).
Each round writes a new meeting through the storage layer, as the web form
does, and times from that commit until the sink holds a verified delivery
in every inbox: the publisher's pick-up, the 10,000 signed POSTs and their
bookkeeping, while people browse the node's pages (their latency is
measured). The last round has every tenth inbox answering 500: the others
must arrive as fast, and the failed ones must be queued for a retry.
"""
from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import (
    HOST,
    browsed,
    browsing,
    cpu_seconds,
    free_port,
    get_status,
    median,
    memory_mb,
    node_process,
    profiled,
    query,
    scratch,
    spawn,
    stop,
    wait_until,
)
from federation import store
from federation.documents import Urls
from node.cli import initialise
from node.config import load_config
from node.db import SqliteDatabase
from node.domain import Cost, EventDraft, Format, GroupDraft, JoinPolicy, Visibility
from node.storage import accounts, events, groups

BROWSING_RATE = 20  # page requests a second while the fan-out runs

GROUP = GroupDraft(
    name="Tuesday Grief Circle", summary="A gentle, drop-in circle for anyone living with loss.",
    description="We sit in a circle, take turns to speak (or not), and share tea afterwards.",
    agreements="1. What is said here stays here.", visibility=Visibility.PUBLIC,
    join_policy=JoinPolicy.OPEN, format=Format.IN_PERSON, cost=Cost.FREE, area="Riverside",
    address="4 Mill Lane", topics=("grief", "bereavement"), languages=("en",),
    accessibility=("step_free",))


async def _prepare(db_path: Path, followers: int, sink_port: int) -> int:
    """The group and its followers; the group's id."""
    db = SqliteDatabase(db_path)
    await db.open()
    try:
        facilitator = await accounts.create_account(
            db, email="facilitator@bench.invalid", display_name="Facilitator",
            password_hash=None)
        slug = await groups.create_group(db, GROUP, facilitator)
        for n in range(followers):
            host = f"peer{n}.bench.invalid"
            await store.save_peer(db, host, f"https://{host}/actor",
                                  f"http://{HOST}:{sink_port}/inbox/{n}", None)
            await store.set_follower(db, host, "approved")
        return (await groups.get_group(db, slug)).id
    finally:
        await db.close()


async def _publish_meeting(db_path: Path, group_id: int) -> tuple[int, float]:
    """A new weekly meeting, as the web form writes it; its id and when it was committed."""
    db = SqliteDatabase(db_path)
    await db.open()
    try:
        start = datetime.now().replace(second=0, microsecond=0) + timedelta(days=3)
        event_id = await events.create_event(db, group_id, EventDraft(
            title="Weekly circle", description="Tea from 18:30.", starts_at=start,
            duration_minutes=90, timezone="Europe/London", rrule="FREQ=WEEKLY",
            format=Format.IN_PERSON, place="Community Centre", address="4 Mill Lane"))
        return event_id, time.monotonic()
    finally:
        await db.close()


def _stats(sink_port: int, obj: str) -> dict[str, Any]:
    import urllib.parse
    import urllib.request
    url = f"http://{HOST}:{sink_port}/stats?object={urllib.parse.quote(obj)}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def _round(db_path: Path, group_id: int, urls: Urls, sink_port: int, expected: int) -> float:
    """Seconds from a meeting's commit until ``expected`` inboxes hold it, verified."""
    event_id, committed = asyncio.run(_publish_meeting(db_path, group_id))
    obj = urls.event(event_id)
    wait_until(lambda: _stats(sink_port, obj)["delivered"] >= expected, "the fan-out", 120, 0.05)
    stats = _stats(sink_port, obj)
    if stats["bad"]:
        raise RuntimeError(f"{stats['bad']} deliveries had a bad signature")
    return stats["last"] - committed


def _retries(db_path: Path, urls: Urls, event_id: int) -> dict[str, Any]:
    """How the failing round's deliveries stand: sent, or queued for a later attempt."""
    rows = query(db_path, "SELECT d.state, d.attempts, d.last_status"
                 " FROM deliveries d JOIN activities a ON a.id = d.activity_id"
                 " WHERE a.object_id = ? AND a.type = 'Create'", (urls.event(event_id),))
    queued = [r for r in rows if r[0] == "queued"]
    return {"sent": sum(r[0] == "sent" for r in rows), "queued": len(queued),
            "retry_scheduled": sum(r[1] >= 1 and r[2] == 500 for r in queued)}


def run(quick: bool = False, profile: Path | None = None, followers: int | None = None) -> dict[str, Any]:
    followers = followers or (50 if quick else 10_000)
    rounds = 1 if quick else 3
    with scratch("fanout") as tmp:
        node_port, sink_port = free_port(), free_port()
        data = tmp / "node"
        initialise(data, f"http://{HOST}:{node_port}")
        config = load_config(data)
        urls = Urls(config.public_url)
        group_id = asyncio.run(_prepare(config.db_path, followers, sink_port))
        sink = spawn(["-m", "bench.sink", str(sink_port)], log=tmp / "sink.log")
        try:
            wait_until(lambda: get_status(sink_port, "/stats") == 200, "the sink", 30)
            with node_process(data, node_port) as node:
                # Starting, the node announces the group to every follower: the warm-up.
                slug = query(config.db_path, "SELECT slug FROM groups WHERE id = ?",
                             (group_id,))[0][0]
                wait_until(lambda: _stats(sink_port, urls.group(slug))["delivered"] >= followers,
                           "the group's announcement", 120, 0.05)
                times = []
                node_cpu, sink_cpu = cpu_seconds(node.pid), cpu_seconds(sink.pid)
                with browsing(node_port, browsed(slug), BROWSING_RATE, tmp) as pages:
                    for n in range(rounds):
                        with profiled(node.pid, profile and n == rounds - 1
                                      and profile / "fanout.txt"):
                            times.append(_round(config.db_path, group_id, urls, sink_port,
                                                followers))
                node_cpu = (cpu_seconds(node.pid) - node_cpu) / (rounds * followers)
                sink_cpu = (cpu_seconds(sink.pid) - sink_cpu) / (rounds * followers)
                get_status(sink_port, "/fail/on")
                healthy = followers - len(range(0, followers, 10))
                failing_s = _round(config.db_path, group_id, urls, sink_port, healthy)
                last_event = query(config.db_path, "SELECT max(id) FROM events")[0][0]
                wait_until(lambda: _retries(config.db_path, urls, last_event)["sent"] >= healthy,
                           "the node to record the deliveries", 30)
                retries = _retries(config.db_path, urls, last_event)
                peak_rss = memory_mb(node.pid, "VmHWM")
        finally:
            stop(sink)
    if set(pages["statuses"]) != {"200"}:
        raise RuntimeError(f"pages browsed during the fan-out answered {pages['statuses']}")
    if retries["retry_scheduled"] != followers - healthy:
        raise RuntimeError(f"failed deliveries are not all queued for a retry: {retries}")
    return {"seconds": median(times), "rounds_s": times, "with_failures_s": failing_s,
            "followers": followers, "peak_rss_mb": peak_rss,
            "pages": pages, "node_cpu_ms_per_delivery": node_cpu * 1000,
            "sink_cpu_ms_per_delivery": sink_cpu * 1000, **retries}


if __name__ == "__main__":
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=1))
