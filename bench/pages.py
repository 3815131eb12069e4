"""Benchmark: the pages people browse, under 32 concurrent clients, on a city-sized node.

A real ``grassroots serve`` process holds the directory data set (10,000
groups and 100,000 meetings, see ``dataset``). Each kind of page gets its
own round from the load generator at concurrency 32, after a short warm-up:
``/groups`` plain and with a few common filters, group pages (several local
and federated groups), the calendar's month view and its agenda, and the
node's ``/events.ics``. Each round is sized from the warm-up's rate to last
about four seconds (eight requests at least, all in flight at once). The baseline is the same generator against the hello-world
route on the node's uvicorn settings (``bench.hello``), before and after the
pages in the same run. Every answer must be a 200.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.common import (
    HOST,
    free_port,
    get_request,
    load,
    memory_mb,
    node_process,
    query,
    scratch,
)
from bench.dataset import node_holding
from bench.inbox import CONCURRENCY, HELLO, _serving
from node.config import load_config

TARGET_RATIO = 0.3  # of hello-world's requests/s
TARGET_P95_MS = 50.0
GROUP_PAGES = 24  # different groups asked for, half local and half federated
WARM_UP = 4  # requests of each kind before its round
SLOW_ROUND = 8


def page_kinds(db_path: Path) -> dict[str, list[str]]:
    """The paths of each kind of page, asked for in turn."""
    slugs = [slug for (slug,) in query(
        db_path, "SELECT slug FROM (SELECT slug, origin IS NULL AS local,"
        " row_number() OVER (PARTITION BY origin IS NULL ORDER BY id) AS n FROM groups"
        " WHERE visibility = 'public') WHERE n % 7 = 1 ORDER BY n, local LIMIT ?",
        (GROUP_PAGES,))]
    return {
        "/groups": ["/groups", "/groups?topic=grief", "/groups?language=en",
                    "/groups?format=online", "/groups?q=anxiety", "/groups?page=2"],
        "group page": [f"/groups/{slug}" for slug in slugs],
        "calendar month": ["/events", "/events?topic=grief"],
        "calendar agenda": ["/events?view=agenda", "/events?view=agenda&format=online"],
        "/events.ics": ["/events.ics"],
    }


def _round_size(rate: float, quick: bool) -> int:
    """Requests for a round of about four seconds at the warm-up's rate; at least
    ``SLOW_ROUND`` (a page that takes seconds is measured in minutes, not hours)."""
    return 16 if quick else int(min(max(rate * 4, SLOW_ROUND), 30_000))


def rounds(port: int, kinds: dict[str, list[str]], quick: bool,
           data: Path) -> dict[str, dict[str, Any]]:
    """A warm-up and a round of each kind of page from the node on ``port``; each round's
    requests/s and latency percentiles. Every answer must be a 200."""
    pages: dict[str, dict[str, Any]] = {}
    for kind, paths in kinds.items():
        requests = [get_request(path) for path in paths]
        warm = load(port, CONCURRENCY, requests, WARM_UP)
        report = load(port, CONCURRENCY, requests, _round_size(warm["rate"], quick))
        if set(warm["statuses"]) | set(report["statuses"]) != {"200"}:
            raise RuntimeError(f"{kind} answered {report['statuses']} after"
                               f" {warm['statuses']} (see {data}/node.log)")
        pages[kind] = {key: report[key] for key in ("rate", "p50_ms", "p95_ms",
                                                    "p99_ms", "answered")}
    return pages


def measure(data: Path, quick: bool = False) -> dict[str, Any]:
    """Every kind of page from a node serving ``data`` (built, not running), against
    hello-world measured in the same run; RSS of the node after the load."""
    kinds = page_kinds(load_config(data).db_path)
    hello_count = 2000 if quick else 60_000
    with _serving(data, "bench.hello") as hello_port:
        hellos = [load(hello_port, CONCURRENCY, [HELLO], hello_count)]
        port = free_port()
        with node_process(data, port, "--url", f"http://{HOST}:{port}") as node:
            pages = rounds(port, kinds, quick, data)
            rss = memory_mb(node.pid)
            peak_rss = memory_mb(node.pid, "VmHWM")
        hellos.append(load(hello_port, CONCURRENCY, [HELLO], hello_count))
    hello_rate = sum(h["rate"] for h in hellos) / len(hellos)
    for figures in pages.values():
        figures["ratio"] = figures["rate"] / hello_rate
        figures["met"] = figures["ratio"] >= TARGET_RATIO and figures["p95_ms"] <= TARGET_P95_MS
    worst_ratio = min(pages, key=lambda kind: pages[kind]["ratio"])
    worst_p95 = max(pages, key=lambda kind: pages[kind]["p95_ms"])
    return {
        "hello_per_s": hello_rate,
        "pages": pages,
        "lowest_ratio": pages[worst_ratio]["ratio"],
        "lowest_ratio_kind": worst_ratio,
        "highest_p95_ms": pages[worst_p95]["p95_ms"],
        "highest_p95_kind": worst_p95,
        "all_met": all(figures["met"] for figures in pages.values()),
        "rss_mb": rss,
        "peak_rss_mb": peak_rss,
    }


def run(quick: bool = False) -> dict[str, Any]:
    scale = 0.02 if quick else 1.0
    with scratch("pages") as tmp:
        data = tmp / "node"
        built = node_holding(data, int(10_000 * scale), int(100_000 * scale))
        result = measure(data, quick)
    return {**result, "groups": built.groups, "meetings": built.meetings}


def describe(result: dict[str, Any]) -> str:
    """Each kind's requests/s, ratio to hello-world and latency against the targets."""
    lines = [
        (f"pages: {result['groups']:,} groups, {result['meetings']:,} meetings, 32 concurrent"
        f" clients; hello-world {result['hello_per_s']:,.0f} req/s; node RSS after"
        f" {result['rss_mb']:.0f} MB (peak {result['peak_rss_mb']:.0f} MB)"),
        f"  {'page':16} {'req/s':>7} {'ratio':>6} {'p50 ms':>7} {'p95 ms':>7}  target",
    ]
    for kind, f in result["pages"].items():
        lines.append(
            f"  {kind:16} {f['rate']:7,.0f} {f['ratio']:6.3f} {f['p50_ms']:7.1f}"
            f" {f['p95_ms']:7.1f}  ratio >= {TARGET_RATIO:g}, p95 <= {TARGET_P95_MS:g}"
            f" {'PASS' if f['met'] else 'FAIL'}")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    print(describe(run(quick="--quick" in sys.argv)))
