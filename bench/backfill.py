"""Benchmark: following a peer with 10,000 public groups and 50,000 meetings.

The peer is a real node whose database is built through the storage layer
(``bench.dataset``, all local) and whose outbox already holds every group's
and meeting's Create: the node's own publisher (``publish_pending``) is run
over it before it starts, on the bulk driver. The peer has already approved
our node, so our Follow is accepted at once. Our node, a real ``grassroots
serve`` with a modest local data set, follows it (``grassroots peers follow``);
from that command until every group and meeting is in our database, our
peak RSS is read and people browse our pages at 20 requests a second.
"""
from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from bench.common import (
    HOST,
    ROOT,
    browsed,
    browsing,
    free_port,
    memory_mb,
    node_process,
    profiled,
    query,
    scratch,
    wait_until,
)
from bench.dataset import InlineDatabase, build
from federation import store
from federation.context import Federation
from federation.documents import Urls
from federation.fetch import Fetcher
from federation.keys import generate_key, public_pem
from federation.publisher import publish_pending
from node.cli import initialise
from node.config import load_config
from node.db import timestamp
from node.domain import GroupDraft, Visibility
from node.storage.changes import record_change
from node.storage.groups import get_group_by_id, update_group

TARGET_SECONDS = 60.0
TARGET_RSS_MB = 150.0
TARGET_P95_MS = 100.0


async def _announce_all(db: InlineDatabase) -> None:
    """Every local group public (as its facilitator would make it; the corpus has some not)
    and recorded as changed, so the publisher announces it and then its meetings."""
    for (group_id, visibility) in await db.fetchall("SELECT id, visibility FROM groups"
                                                    " WHERE origin IS NULL"):
        if visibility == Visibility.PUBLIC.value:
            async with db.transaction() as conn:
                await record_change(conn, "group", group_id)
            continue
        group = await get_group_by_id(db, group_id)
        draft = GroupDraft(**{f.name: getattr(group, f.name) for f in fields(GroupDraft)})
        await update_group(db, group_id, replace(draft, visibility=Visibility.PUBLIC))


async def _publish_all(db: InlineDatabase, public_url: str) -> None:
    """Every recorded change of local listings turned into its activity, as a starting
    node's publisher does. One key pair stands for every group's (made once; nothing
    checks a group's key while a follower reads the outbox)."""
    private = generate_key()
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO actor_keys (owner, private_pem, public_pem, created_at)"
            " SELECT 'group:' || id, ?, ?, ? FROM groups WHERE origin IS NULL"
            " ON CONFLICT DO NOTHING", (private, public_pem(private), timestamp()))
    async with Fetcher() as fetcher:  # publishing fetches nothing
        fed = Federation(db, fetcher, Urls(public_url))
        while await publish_pending(fed, 1000):
            pass


async def _prepare(db_path: Path, url: str, groups: int, meetings: int) -> int:
    await build(db_path, groups, meetings, federated_share=0.0)
    db = InlineDatabase(db_path)
    await db.open()
    try:
        await _announce_all(db)
        await _publish_all(db, url)
        return (await db.fetchone("SELECT count(*) FROM activities WHERE type = 'Create'"))[0]
    finally:
        await db.close()


def prepare(data: Path, url: str, groups: int, meetings: int) -> int:
    """A data directory for ``url`` with that many public local listings, each published
    in a Create; how many Creates its outbox holds."""
    initialise(data, url)
    return asyncio.run(_prepare(load_config(data).db_path, url, groups, meetings))


async def approve_follower(db_path: Path, follower_url: str) -> None:
    """The peer has already approved the follower node: its Follow is accepted at once."""
    host = follower_url.removeprefix("http://")
    db = InlineDatabase(db_path)
    await db.open()
    try:
        await store.save_peer(db, host, f"{follower_url}/actor", f"{follower_url}/inbox",
                              f"{follower_url}/actor/outbox")
        await store.set_follower(db, host, "approved")
    finally:
        await db.close()


def visible(db_path: Path, origin: str) -> tuple[int, int]:
    """(groups, meetings) from ``origin`` in the node's database."""
    return query(db_path, "SELECT (SELECT count(*) FROM groups WHERE origin = ?),"
                 " (SELECT count(*) FROM events e JOIN groups g ON g.id = e.group_id"
                 "  WHERE g.origin = ?)", (origin, origin))[0]


def follow(data: Path, peer_url: str) -> None:
    """``grassroots peers follow``, as an admin types it."""
    subprocess.run([sys.executable, "-m", "node.cli", "peers", "follow", peer_url, "--dev",
                    "--data", str(data)], cwd=ROOT, check=True, capture_output=True,
                   timeout=120)


def run(quick: bool = False, profile: Path | None = None) -> dict[str, Any]:
    groups, meetings = (200, 1_000) if quick else (10_000, 50_000)
    ours_groups, ours_meetings = (20, 100) if quick else (200, 2_000)
    with scratch("backfill") as tmp:
        peer_port, our_port = free_port(), free_port()
        peer_url, our_url = f"http://{HOST}:{peer_port}", f"http://{HOST}:{our_port}"
        started = time.monotonic()
        creates = prepare(tmp / "peer", peer_url, groups, meetings)
        prepare(tmp / "ours", our_url, ours_groups, ours_meetings)
        peer_db, our_db = load_config(tmp / "peer").db_path, load_config(tmp / "ours").db_path
        asyncio.run(approve_follower(peer_db, our_url))
        prepared_s = time.monotonic() - started
        if creates != groups + meetings:
            raise RuntimeError(f"the peer's outbox holds {creates} Creates, not"
                               f" {groups + meetings}")
        slug = query(our_db, "SELECT slug FROM groups WHERE origin IS NULL ORDER BY id"
                     " LIMIT 1")[0][0]
        paths = browsed(slug)
        origin = f"{HOST}:{peer_port}"
        with node_process(tmp / "peer", peer_port), node_process(tmp / "ours", our_port) as ours:
            if query(peer_db, "SELECT count(*) FROM listing_changes")[0][0]:
                raise RuntimeError("the peer still had changes to publish")
            idle_rss = memory_mb(ours.pid)
            with browsing(our_port, paths, rate=20, workdir=tmp, most_seconds=1800) as pages, \
                    profiled(ours.pid, profile and profile / "backfill.txt"):
                time.sleep(1.0)  # browsing before the follow, as it goes on during it
                begun = time.monotonic()
                follow(tmp / "ours", peer_url)
                wait_until(lambda: visible(our_db, origin) == (groups, meetings),
                           "every listing of the peer", 900, 0.25)
                seconds = time.monotonic() - begun
            peak_rss = memory_mb(ours.pid, "VmHWM")
    if set(pages["statuses"]) != {"200"}:
        raise RuntimeError(f"pages answered {pages['statuses']} during the backfill")
    return {"groups": groups, "meetings": meetings, "seconds": seconds,
            "items_per_s": (groups + meetings) / seconds, "idle_rss_mb": idle_rss,
            "peak_rss_mb": peak_rss, "pages_p95_ms": pages["p95_ms"],
            "pages_p50_ms": pages["p50_ms"], "pages": pages["answered"],
            "page_statuses": pages["statuses"], "prepared_s": prepared_s}


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def describe(result: dict[str, Any]) -> str:
    r = result
    lines = [
        (f"backfill: following a peer with {r['groups']:,} groups and {r['meetings']:,}"
         f" meetings (peer prepared in {r['prepared_s']:.0f} s)"),
        (f"  all visible after {r['seconds']:.1f} s ({r['items_per_s']:,.0f} listings/s)"
         f"  target <= {TARGET_SECONDS:g} s {_verdict(r['seconds'] <= TARGET_SECONDS)}"),
        (f"  peak RSS {r['peak_rss_mb']:.1f} MB (idle {r['idle_rss_mb']:.1f} MB)"
         f"  target <= {TARGET_RSS_MB:g} MB {_verdict(r['peak_rss_mb'] <= TARGET_RSS_MB)}"),
        (f"  pages meanwhile: {r['pages']:,} answered, p50 {r['pages_p50_ms']:.1f} ms,"
         f" p95 {r['pages_p95_ms']:.1f} ms  target p95 <= {TARGET_P95_MS:g} ms"
         f" {_verdict(r['pages_p95_ms'] <= TARGET_P95_MS)}"),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(describe(run(quick="--quick" in sys.argv,
                       profile=Path(sys.argv[sys.argv.index("--profile") + 1])
                       if "--profile" in sys.argv else None)))
