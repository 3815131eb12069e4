"""Benchmark 3: /groups on a node holding 10,000 groups and 100,000 meetings.

The data set is built through the storage layer (see ``dataset``); then 1,000
mixed directory requests (every filter, free-text search, combinations,
later pages) go through the node's whole ASGI application (middleware,
handler, SQL, template) in this process, each timed from the call until the
response is complete: server time, no client or network.
"""
from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench import corpus
from bench.common import median, percentile, scratch
from bench.dataset import build
from node.app import create_app
from node.cli import initialise
from node.config import load_config
from node.db import Database
from node.domain import ACCESSIBILITY, Cost, Format

TEXT = ["grief", "anxiety", "recovery", "carers", "lonel", "park", "biscuits", "tea",
        "circle", "walk talk", "peer support", "drop-in", "parents", "newcomers", "quiet space",
        "long covid", "hearing voices", "kreuzberg", "lavapies", "neukolln", "evening",
        "chronic pain", "harbour", "depress", "bereave", "lighthouse", "guest speaker"]


def mixed_queries(count: int, seed: int = 7) -> list[tuple[str, str]]:
    """(kind, query string) pairs: every filter alone, free text, combinations, later pages."""
    rng = random.Random(seed)
    today = date.today()

    def topic() -> str:
        return rng.choice(corpus.TOPICS[:25])

    makers = {
        "all": dict,
        "topic": lambda: {"topic": topic()},
        "language": lambda: {"language": rng.choice(corpus.LANGUAGES[:10])},
        "format": lambda: {"format": rng.choice(list(Format)).value},
        "accessibility": lambda: {"accessibility": rng.sample(sorted(ACCESSIBILITY),
                                                              rng.randint(1, 2))},
        "cost": lambda: {"cost": rng.choice(list(Cost)).value},
        "area": lambda: {"area": rng.choice(corpus.PLACES)[0]},
        "origin": lambda: {"origin": rng.choice(["local", "federated"])},
        "dates": lambda: {"from": str(today + timedelta(days=(d := rng.randint(0, 60)))),
                          "to": str(today + timedelta(days=d + rng.choice([0, 6, 30])))},
        "text": lambda: {"q": rng.choice(TEXT)},
        "combined": lambda: rng.choice([
            {"q": rng.choice(TEXT), "language": "en"},
            {"topic": topic(), "format": "in_person", "accessibility": ["step_free"]},
            {"topic": topic(), "language": rng.choice(corpus.LANGUAGES[:4]), "cost": "free"},
            {"q": rng.choice(TEXT), "origin": "local"},
            {"area": rng.choice(corpus.PLACES)[0], "from": str(today),
             "to": str(today + timedelta(days=7))},
        ]),
        "page": lambda: {**rng.choice([{}, {"topic": topic()}, {"format": "online"}]),
                         "page": rng.randint(2, 6)},
    }
    weights = {"text": 25, "combined": 12, "page": 5}
    kinds = list(makers)
    picks = rng.choices(kinds, [weights.get(k, 6) for k in kinds], k=count)
    return [(kind, urlencode(makers[kind](), doseq=True)) for kind in picks]


# The calendars anyone may ask for: the node's, a saved search's, the month and agenda pages.
CALENDARS = [("/events.ics", ""), ("/events.ics", "topic=grief"), ("/events", ""),
             ("/events", "view=agenda")]


async def _timed_get(app: Any, state: dict[str, Any], path: str, query: str) -> tuple[int, float]:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(),
        "query_string": query.encode(), "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"accept", b"text/html")],
        "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8000), "state": dict(state),
    }
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    started = time.perf_counter()
    await app(scope, receive, send)
    return status, time.perf_counter() - started


async def measure(data: Path, queries: list[tuple[str, str]], rounds: int) -> dict[str, Any]:
    config = load_config(data)
    db = Database(config.db_path)
    await db.open()
    try:
        app = create_app(config, dev=True)
        state = {"db": db, "config": config}
        for _, query in queries[:50]:  # warm the page cache and the template
            await _timed_get(app, state, "/groups", query)
        per_round: list[list[tuple[str, float]]] = []
        for _ in range(rounds):
            timings = []
            for kind, query in queries:
                status, seconds = await _timed_get(app, state, "/groups", query)
                if status != 200:
                    raise RuntimeError(f"/groups?{query} answered {status}")
                timings.append((kind, seconds * 1000))
            per_round.append(timings)
        calendars = {}
        for path, query in CALENDARS:
            times = []
            for _ in range(rounds):
                status, seconds = await _timed_get(app, state, path, query)
                if status != 200:
                    raise RuntimeError(f"{path}?{query} answered {status}")
                times.append(seconds * 1000)
            calendars[f"{path}?{query}".rstrip("?")] = median(times)
    finally:
        await db.close()
    p95s = [percentile([ms for _, ms in t], 95) for t in per_round]
    middle = per_round[p95s.index(sorted(p95s)[len(p95s) // 2])]
    by_kind: dict[str, list[float]] = defaultdict(list)
    for kind, ms in middle:
        by_kind[kind].append(ms)
    return {
        "p50_ms": median([ms for _, ms in middle]),
        "p95_ms": percentile([ms for _, ms in middle], 95),
        "p95_rounds_ms": p95s,
        "by_kind": {k: (median(v), percentile(v, 95), len(v)) for k, v in sorted(by_kind.items())},
        "calendars_ms": calendars,
    }


def run(quick: bool = False) -> dict[str, Any]:
    scale = 0.02 if quick else 1.0
    with scratch("directory") as tmp:
        data = tmp / "node"
        initialise(data, "http://127.0.0.1:8000")
        built = asyncio.run(build(load_config(data).db_path, int(10_000 * scale),
                                  int(100_000 * scale)))
        queries = mixed_queries(100 if quick else 1000)
        result = asyncio.run(measure(data, queries, rounds=1 if quick else 3))
    result.update(groups=built.groups, meetings=built.meetings, occurrences=built.occurrences,
                  build_s=built.seconds, build_writes_per_s=built.writes_per_second)
    return result


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=1))
