"""Cost curves: the directory and the browsed pages at 1,000, 10,000 and 100,000 groups.

At each size (ten meetings a group, so 1,000,000 meetings at the top) the
data set is built through the storage layer (``dataset``), then measured:
the directory's mixed filters in process (``directory.measure`` on a reduced
query set), every kind of page under 32 concurrent clients from a real node
(``pages.measure``), the database's size on disk and the node's RSS after
the load. The target is that no kind's p95 grows more than 2x from 10,000
to 100,000 groups. The full run draws the p95s to ``docs/curves.svg``
(``pip install '.[bench]'`` for matplotlib).
"""
from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from bench import directory, pages
from bench.common import ROOT, scratch
from bench.dataset import node_holding
from node.config import load_config

SIZES = [(1_000, 10_000), (10_000, 100_000), (100_000, 1_000_000)]  # (groups, meetings)
QUICK_SIZES = [(30, 300), (100, 1_000), (300, 3_000)]
TARGET_GROWTH = 2.0  # p95 at the largest size ÷ p95 at the middle one
DIRECTORY_PER_KIND = 4  # of each of the directory's mixed query kinds, one round
CHART = ROOT / "docs" / "curves.svg"


def _database_mb(db_path: Path) -> float:
    """The database file and its write-ahead log, in MB (10^6 bytes)."""
    files = [db_path, db_path.with_name(db_path.name + "-wal")]
    return sum(f.stat().st_size for f in files if f.exists()) / 1e6


def measure_size(n_groups: int, n_meetings: int, quick: bool) -> dict[str, Any]:
    """Build one size in a scratch directory and measure it."""
    with scratch(f"curves-{n_groups}") as tmp:
        data = tmp / "node"
        built = node_holding(data, n_groups, n_meetings)
        db_path = load_config(data).db_path
        started = time.monotonic()
        found = asyncio.run(directory.measure(
            data, directory.mixed_queries(1 if quick else DIRECTORY_PER_KIND), rounds=1))
        browsed = pages.measure(data, quick)
        return {
            "groups": n_groups, "meetings": n_meetings, "occurrences": built.occurrences,
            "build_s": built.seconds, "measure_s": time.monotonic() - started,
            "database_mb": _database_mb(db_path), "rss_mb": browsed["rss_mb"],
            "directory": {"p50_ms": found["p50_ms"], "p95_ms": found["p95_ms"],
                          "slowest_kind": found["slowest_kind"],
                          "slowest_p95_ms": found["slowest_p95_ms"]},
            "pages": browsed,
        }


def p95s(size: dict[str, Any]) -> dict[str, float]:
    """Every curve's p95 at one size: the directory's mixed filters, then each page kind."""
    return {"directory (in process)": size["directory"]["p95_ms"],
            **{kind: f["p95_ms"] for kind, f in size["pages"]["pages"].items()}}


def run(quick: bool = False, chart: Path | None = None) -> dict[str, Any]:
    """Every size, smallest first; the chart goes to ``chart`` (the full run: docs/)."""
    sizes = [measure_size(g, m, quick) for g, m in (QUICK_SIZES if quick else SIZES)]
    middle, top = p95s(sizes[1]), p95s(sizes[2])
    growth = {kind: top[kind] / middle[kind] for kind in middle}
    worst = max(growth, key=growth.__getitem__)
    chart = chart if chart or quick else CHART
    if chart:
        draw(sizes, chart)
    return {
        "sizes": sizes,
        "growth": growth,
        "worst_growth": growth[worst],
        "worst_growth_kind": worst,
        "growth_met": growth[worst] <= TARGET_GROWTH,
        # The pages at the middle size (10,000 groups), as ``pages.run`` reports them.
        "pages": {**sizes[1]["pages"], "groups": sizes[1]["groups"],
                  "meetings": sizes[1]["meetings"]},
        "chart": str(chart) if chart else None,
    }


def draw(sizes: list[dict[str, Any]], path: Path) -> None:
    """p95 of each kind against the number of groups, log-log, as SVG or PNG by suffix."""
    import matplotlib
    matplotlib.use("Agg")
    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: small and searchable
    import matplotlib.pyplot as plt

    groups = [size["groups"] for size in sizes]
    figure, axes = plt.subplots(figsize=(8.5, 4.2))
    for kind in p95s(sizes[0]):
        axes.plot(groups, [p95s(size)[kind] for size in sizes], marker="o", label=kind)
    axes.axhline(pages.TARGET_P95_MS, color="grey", linestyle=":", linewidth=1,
                 label=f"pages target, p95 {pages.TARGET_P95_MS:g} ms")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xticks(groups, [f"{g:,}\n({s['meetings']:,} meetings)"
                             for g, s in zip(groups, sizes)])
    axes.minorticks_off()
    axes.set_xlabel("groups listed")
    axes.set_ylabel("p95 latency (ms, log)")
    axes.set_title("Grassroots: p95 per page as the directory grows (32 clients)")
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1))
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, metadata={"Date": None} if path.suffix == ".svg" else None)
    plt.close(figure)


def describe(result: dict[str, Any]) -> str:
    """One row per size, then each kind's p95 and requests/s per size with its growth."""
    sizes = result["sizes"]
    counts = " / ".join(f"{s['groups']:,}" for s in sizes)
    lines = [(f"cost curves: {counts} groups"
             f" (ten meetings each); p95 at {sizes[2]['groups']:,} ÷ at {sizes[1]['groups']:,}"
             f" groups, worst {result['worst_growth_kind']} {result['worst_growth']:.2f}"
             f" (target <= {TARGET_GROWTH:g}: {'PASS' if result['growth_met'] else 'FAIL'})")]
    lines.append(f"  {'groups':>9} {'meetings':>10} {'occurrences':>12} {'build s':>8}"
                 f" {'DB MB':>8} {'RSS MB':>7} {'hello/s':>8}")
    for s in sizes:
        lines.append(f"  {s['groups']:9,} {s['meetings']:10,} {s['occurrences']:12,}"
                     f" {s['build_s']:8.0f} {s['database_mb']:8,.0f} {s['rss_mb']:7.0f}"
                     f" {s['pages']['hello_per_s']:8,.0f}")
    header = "".join(f" {s['groups']:>13,}" for s in sizes)
    lines.append(f"  {'p95 ms (req/s)':24}{header}  growth  target")
    for kind in p95s(sizes[0]):
        cells = ""
        for s in sizes:
            rate = s["pages"]["pages"].get(kind, {}).get("rate")
            cells += f" {p95s(s)[kind]:>13.1f}" if rate is None else \
                f" {p95s(s)[kind]:>6.1f} ({rate:>5,.0f})"
        growth = result["growth"][kind]
        lines.append(f"  {kind:24}{cells}  {growth:6.2f}  <= {TARGET_GROWTH:g}"
                     f" {'PASS' if growth <= TARGET_GROWTH else 'FAIL'}")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    quick = "--quick" in sys.argv
    chart = Path(sys.argv[sys.argv.index("--chart") + 1]) if "--chart" in sys.argv else None
    print(describe(run(quick, chart)))
