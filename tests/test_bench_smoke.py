"""The benchmarks still run: ``bench/run.py --quick --json --database URL`` end to end, in
a few minutes (the hub's on the session's throwaway PostgreSQL server).

The quick figures come from toy sizes and mean nothing; this only proves every
benchmark starts its processes, measures, checks its own results and reports.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIGURES = {  # key: (lowest, highest) that a working quick run can report
    "inbox_ratio": (0.0, 10.0),
    "inbox_floor_ratio": (0.0, 10.0),
    "verify_ratio": (0.01, 10.0),
    "directory_p95_ms": (0.01, 10_000.0),
    "fanout_s": (0.001, 120.0),
    "fanout_rss_mb": (5.0, 2_000.0),
    "fanout_pages_p95_ms": (0.01, 10_000.0),
    "idle_rss_mb": (5.0, 2_000.0),
    "startup_s": (0.01, 60.0),
    "sustained_applied_ratio": (0.0, 10.0),
    "pages_lowest_ratio": (0.0, 10.0),
    "pages_highest_p95_ms": (0.01, 60_000.0),
    "curve_worst_growth": (0.0, 1_000.0),
    "backfill_s": (0.01, 300.0),
    "backfill_rss_mb": (5.0, 2_000.0),
    "backfill_pages_p95_ms": (0.01, 60_000.0),
}


def test_quick_benchmarks_report_every_figure_as_a_sane_number(pg_cluster):
    result = subprocess.run([sys.executable, "bench/run.py", "--quick", "--json",
                             "--database", pg_cluster.url()], cwd=ROOT,
                            capture_output=True, text=True, timeout=420, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    for key, (lowest, highest) in FIGURES.items():
        value = figures[key]
        assert isinstance(value, (int, float)) and math.isfinite(value), (key, value)
        assert lowest < value < highest, (key, value)
    assert figures["inbox_ratio"] > 0, "the node accepted nothing"
    assert figures["details"]["fanout"]["retry_scheduled"] > 0
    hub = figures["details"]["hub"]  # SQLite with one process, PostgreSQL with 1, 2, 4
    assert list(hub["pages"]) == list(hub["inbox"]) == [
        "SQLite, 1 process", "PostgreSQL, 1 web", "PostgreSQL, 2 web", "PostgreSQL, 4 web"]
    assert all(kind["rate"] > 0 for config in hub["pages"].values() for kind in config.values())
    assert all(config["accepted_per_s"] > 0 for config in hub["inbox"].values())
