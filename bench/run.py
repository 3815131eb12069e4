"""Run the benchmarks and print their figures against the targets.

    python bench/run.py             # all of them, about 30 minutes; prints a table
    python bench/run.py --json      # the same, then one JSON object on the last line
    python bench/run.py --quick     # a minute-long smoke version (numbers not meaningful)
    python bench/run.py --profile DIR   # also sample the node with py-spy (inbox, fan-out)
    python bench/run.py --database postgresql://USER@HOST/postgres   # and a hub's figures
                                    # (bench.hub: PostgreSQL, 1, 2 and 4 web processes)

Each benchmark runs several rounds and reports the median; ratios are
against a baseline measured in the same run, so a noisy machine moves both.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import (
    backfill,
    curves,
    directory,
    fanout,
    footprint,
    hub,
    ignored,
    inbox,
    pages,
    sustained,
    verify,
)
from bench.common import hottest, py_spy


def _figures(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    return {
        "inbox_ratio": results["inbox"]["ratio"],
        "inbox_floor_ratio": results["inbox"]["accepted_per_s"] / results["inbox"]["floor_per_s"],
        "verify_ratio": results["verify"]["ratio"],
        "directory_p95_ms": results["directory"]["slowest_p95_ms"],
        "fanout_s": results["fanout"]["seconds"],
        "fanout_rss_mb": results["fanout"]["peak_rss_mb"],
        "fanout_pages_p95_ms": results["fanout"]["pages"]["p95_ms"],
        "idle_rss_mb": results["footprint"]["idle_rss_mb"],
        "startup_s": results["footprint"]["startup_s"],
        "ignored_ratio": results["ignored"]["warm_over_accepted"],
        "sustained_applied_ratio": results["sustained"]["applied_ratio"],
        "pages_lowest_ratio": results["curves"]["pages"]["lowest_ratio"],
        "pages_highest_p95_ms": results["curves"]["pages"]["highest_p95_ms"],
        "curve_worst_growth": results["curves"]["worst_growth"],
        "backfill_s": results["backfill"]["seconds"],
        "backfill_rss_mb": results["backfill"]["peak_rss_mb"],
        "backfill_pages_p95_ms": results["backfill"]["pages_p95_ms"],
    }


# (key, what, target as text, is it met)
TARGETS: list[tuple[str, str, str, Callable[[float], bool]]] = [
    ("inbox_floor_ratio", "1 inbox accepted/s ÷ parse-and-verify floor", ">= 0.6",
     lambda v: v >= 0.6),
    ("verify_ratio", "1 verifications/s ÷ raw RSA verify/s", ">= 0.8", lambda v: v >= 0.8),
    ("directory_p95_ms", "2 /groups p95, slowest filter kind (ms)", "<= 25",
     lambda v: v <= directory.TARGET_P95_MS),
    ("pages_lowest_ratio", "2 pages, 32 clients: lowest req/s ÷ hello", ">= 0.3",
     lambda v: v >= pages.TARGET_RATIO),
    ("pages_highest_p95_ms", "2 pages, 32 clients: highest p95 (ms)", "<= 50",
     lambda v: v <= pages.TARGET_P95_MS),
    ("curve_worst_growth", "2 p95 at 100k ÷ at 10k groups, worst kind", "<= 2",
     lambda v: v <= curves.TARGET_GROWTH),
    ("fanout_s", "3 fan-out to 10,000 inboxes (s)", "<= 30", lambda v: v <= 30),
    ("fanout_rss_mb", "3 fan-out peak RSS (MB)", "<= 150", lambda v: v <= 150),
    ("fanout_pages_p95_ms", "3 pages p95 during the fan-out (ms)", "<= 100", lambda v: v <= 100),
    ("backfill_s", "3 backfill 10k groups, 50k meetings (s)", "<= 60", lambda v: v <= 60),
    ("backfill_rss_mb", "3 backfill peak RSS (MB)", "<= 150", lambda v: v <= 150),
    ("backfill_pages_p95_ms", "3 pages p95 during the backfill (ms)", "<= 100",
     lambda v: v <= 100),
    ("idle_rss_mb", "4 idle RSS, demo data (MB)", "<= 45", lambda v: v <= 45),
    ("startup_s", "4 serve to first 200 (s)", "<= 0.3", lambda v: v <= 0.3),
    ("ignored_ratio", "1 ignored ÷ accepted, node CPU each", "<= 1", lambda v: v <= 1),
    ("sustained_applied_ratio", "1 sustained 60 s: applied/s ÷ accepted/s", ">= 0.95",
     lambda v: v >= sustained.KEEP_UP),
]


def _details(results: dict[str, dict[str, Any]]) -> list[str]:
    i, v, d, f, p = (results[k] for k in ("inbox", "verify", "directory", "fanout", "footprint"))
    inbox_line = (
        f"inbox: {i['accepted_per_s']:,.0f} accepted/s vs hello-world {i['hello_per_s']:,.0f}"
        f" req/s; parse-and-verify floor {i['floor_per_s']:,.0f} req/s (ratio"
        f" {i['floor_ratio']:.2f}); rounds of {i['round_size']:,} from {i['peers']} peers; node CPU"
        f" {i['node_cpu_ms_per_accepted']:.2f} ms per accepted activity; {i['applied']:,} of"
        f" {i['sent']:,} sent applied ({i['applied_per_s']:,.0f} meetings/s through the inbox);"
        f" generator ceiling {i['generator_ceiling_per_s']:,.0f} req/s (signed POSTs),"
        f" {i['generator_ceiling_hello_per_s']:,.0f} req/s (hello); node peak RSS"
        f" {i['node_peak_rss_mb']:.0f} MB")
    fanout_line = (
        f"fan-out: {f['followers']:,} inboxes in {', '.join(f'{s:.2f}' for s in f['rounds_s'])}"
        f" s; with 10% answering 500 the other {f['sent']} in {f['with_failures_s']:.2f} s,"
        f" {f['retry_scheduled']} queued for a retry; peak RSS {f['peak_rss_mb']:.0f} MB; node"
        f" CPU {f['node_cpu_ms_per_delivery']:.2f} ms per delivery, sink"
        f" {f['sink_cpu_ms_per_delivery']:.2f} ms; {f['pages']['answered']:,} page requests"
        f" meanwhile at {f['pages']['rate']:.0f}/s: p50 {f['pages']['p50_ms']:.0f} ms, p95"
        f" {f['pages']['p95_ms']:.0f} ms")
    footprint_line = (
        f"footprint: first start with --demo {p['first_start_s']:.2f} s; restarts"
        f" {', '.join(f'{s:.2f}' for s in p['startups_s'])} s; idle RSS"
        f" {', '.join(f'{m:.1f}' for m in p['idle_rss_rounds_mb'])} MB")
    verify_line = f"verify: {v['ours_per_s']:,.0f}/s ours vs {v['raw_per_s']:,.0f}/s raw RSA"
    return [inbox_line, verify_line, directory.describe(d),
            pages.describe(results["curves"]["pages"]), curves.describe(results["curves"]),
            fanout_line, backfill.describe(results["backfill"]), footprint_line,
            ignored.describe(results["ignored"]), sustained.describe(results["sustained"])]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke version")
    parser.add_argument("--profile", type=Path, help="write py-spy samples of the node here")
    parser.add_argument("--database", metavar="URL",
                        help="a PostgreSQL server to measure a hub on too (bench.hub)")
    args = parser.parse_args(argv)
    if args.profile:
        if shutil.which(py_spy()) is None:
            parser.error("--profile needs py-spy: pip install py-spy")
        args.profile.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results: dict[str, dict[str, Any]] = {}
    for name, bench in (("verify", lambda: verify.run(args.quick)),
                        ("footprint", lambda: footprint.run(args.quick)),
                        ("fanout", lambda: fanout.run(args.quick, args.profile)),
                        ("inbox", lambda: inbox.run(args.quick, args.profile)),
                        ("ignored", lambda: ignored.run(args.quick)),
                        ("sustained", lambda: sustained.run(args.quick)),
                        ("directory", lambda: directory.run(args.quick)),
                        ("curves", lambda: curves.run(args.quick)),
                        ("backfill", lambda: backfill.run(args.quick)),
                        *([("hub", lambda: hub.run(args.database, args.quick))]
                          if args.database else [])):
        print(f"running {name} ...", file=sys.stderr, flush=True)
        results[name] = bench()
    figures = _figures(results)
    elapsed = time.monotonic() - started

    print(f"Grassroots benchmarks{' (quick: smoke only)' if args.quick else ''}:"
          f" {platform.node()}, {_cores()} cores, Python {platform.python_version()},"
          f" {elapsed:.0f} s")
    print(f"{'':44} {'figure':>10}  {'target':>8}  met")
    for key, what, target, met in TARGETS:
        print(f"{what:44} {figures[key]:>10.3g}  {target:>8}  {'yes' if met(figures[key]) else 'NO'}")
    print("\n".join(_details(results)))
    if "hub" in results:
        print(hub.describe(results["hub"]))
    if args.profile:
        for sample in sorted(args.profile.glob("*.txt")):
            print(f"profile {sample.name} (share of busy samples):")
            for part, ranked in hottest(sample).items():
                print(f"  {part}: " + "; ".join(f"{name} {share:.0%}" for share, name in ranked))
    if args.json:
        if not all(math.isfinite(v) for v in figures.values()):
            raise SystemExit(f"a figure is not a number: {figures}")
        print(json.dumps({**figures, "quick": args.quick, "seconds": elapsed,
                          "details": results}, default=str))
    return 0


def _cores() -> int:
    import os
    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    sys.exit(main())
