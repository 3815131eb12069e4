"""Benchmark 5: how small and quick to start a node with the demo data is.

Startup is timed from launching the ``grassroots`` command until ``GET /``
first answers 200, polled every 5 ms. Idle memory is the resident set of
the serving process after it has answered a visitor's first pages (home,
directory, a group, the calendar) and settled for a second.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import (
    HOST,
    ROOT,
    free_port,
    get_status,
    median,
    memory_mb,
    scratch,
    stop,
    wait_until_serving,
)

PAGES = ["/", "/groups", "/groups?q=grief", "/groups/tuesday-grief-circle", "/events.ics",
         "/feed.atom"]


def _command() -> list[str]:
    """The installed ``grassroots`` script beside this Python, else the module."""
    script = Path(sys.executable).parent / "grassroots"
    return [str(script)] if script.exists() else [sys.executable, "-m", "node.cli"]


def _start(data: Path, port: int, *extra: str) -> tuple[subprocess.Popen, float]:
    """A serving node and the seconds from launch to its first 200."""
    launched = time.monotonic()
    with open(data.parent / "node.log", "ab") as log:
        proc = subprocess.Popen([*_command(), "serve", "--data", str(data), "--host", HOST,
                                 "--port", str(port), *extra], cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT)
    return proc, wait_until_serving(port, proc, interval=0.005) - launched


def run(quick: bool = False) -> dict[str, Any]:
    rounds = 1 if quick else 3
    with scratch("footprint") as tmp:
        data, port = tmp / "node", free_port()
        proc, first_start = _start(data, port, "--demo")  # creates the data and the demo
        stop(proc)
        startups, idle = [], []
        for _ in range(rounds):
            proc, seconds = _start(data, port)
            try:
                statuses = {page: get_status(port, page) for page in PAGES}
                if set(statuses.values()) != {200}:
                    raise RuntimeError(f"demo pages did not all answer 200: {statuses}")
                time.sleep(1.0)
                idle.append(memory_mb(proc.pid))
            finally:
                stop(proc)
            startups.append(seconds)
        shutil.rmtree(data)
    return {"startup_s": median(startups), "startups_s": startups, "first_start_s": first_start,
            "idle_rss_mb": median(idle), "idle_rss_rounds_mb": idle}


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=1))
