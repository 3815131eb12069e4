"""Benchmark: what a hub gains from PostgreSQL and several web processes.

    python -m bench.hub postgresql://USER@HOST/postgres [--quick]
    python bench/run.py --database postgresql://USER@HOST/postgres

The URL names a PostgreSQL server, and a database there to connect to first: the
benchmark creates a database of its own on that server (its user needs CREATEDB) and
drops it at the end. In one run, against the same data:

- pages: the page data set (``bench.dataset``) served by one ``grassroots serve`` on
  SQLite, then copied to PostgreSQL (``grassroots db copy``) and served by
  ``serve --workers N`` for N = 1, 2 and 4; each kind of page measured as
  ``bench.pages`` does, at concurrency 32;
- inbox: peers followed and approved, rounds of signed Create{Event} activities at
  concurrency 32 (``bench.inbox``) into the node on SQLite, then on PostgreSQL with N
  web processes and two ``grassroots worker`` processes applying; each configuration's
  activities accepted per second, and every accepted activity applied before the next.
"""
from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bench.common import (
    HOST,
    free_port,
    median,
    node_process,
    query,
    scratch,
    spawn,
    stop,
)
from bench.dataset import node_holding
from bench.inbox import (
    BURST,
    _peers,
    _sent_and_applied,
    _serving_peers,
    admitted_node,
    signed_round,
)
from bench.pages import page_kinds, rounds
from node.config import CONFIG_FILE, load_config

PROCESSES = (1, 2, 4)
KINDS = ("/groups", "group page", "calendar month")
WORKERS = 2  # grassroots worker processes beside the web processes, for the inbox


@contextmanager
def scratch_database(server: str) -> Iterator[str]:
    """A new database on ``server``'s PostgreSQL, dropped at the end; its URL."""
    import asyncpg

    name = f"grassroots_bench_{uuid.uuid4().hex[:8]}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(server)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8'"))
    try:
        yield urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
    finally:
        asyncio.run(run(f"DROP DATABASE {name} WITH (FORCE)"))


def moved_to(data: Path, url: str) -> None:
    """The data directory's database copied to ``url``, which the node uses from now on."""
    subprocess.run([sys.executable, "-m", "node.cli", "db", "copy", "--from",
                    f"sqlite://{load_config(data).db_path}", "--to", url],
                   check=True, capture_output=True, text=True, timeout=3600)
    with open(data / CONFIG_FILE, "a", encoding="utf-8") as f:
        f.write(f'database_url = "{url}"\n')


@contextmanager
def workers(data: Path, count: int) -> Iterator[None]:
    procs = [spawn(["-m", "node.cli", "worker", "--data", str(data), "--dev"],
                   log=data / "workers.log") for _ in range(count)]
    try:
        yield
    finally:
        for proc in procs:
            stop(proc)


def pages(server: str, quick: bool) -> dict[str, dict[str, Any]]:
    """Each configuration's figures of each kind of page."""
    scale = 0.02 if quick else 1.0
    found: dict[str, dict[str, Any]] = {}
    with scratch("hub-pages") as tmp:
        data = tmp / "node"
        node_holding(data, int(10_000 * scale), int(100_000 * scale))
        kinds = {kind: paths for kind, paths in page_kinds(load_config(data).db_path).items()
                 if kind in KINDS}
        port = free_port()
        url = ("--url", f"http://{HOST}:{port}")
        with node_process(data, port, *url):
            found["SQLite, 1 process"] = rounds(port, kinds, quick, data)
        with scratch_database(server) as database:
            moved_to(data, database)
            for n in PROCESSES:
                with node_process(data, port, *url, "--workers", str(n)):
                    found[f"PostgreSQL, {n} web"] = rounds(port, kinds, quick, data)
    return found


def inbox(server: str, quick: bool) -> dict[str, dict[str, Any]]:
    """Each configuration's activities accepted per second (the median of its rounds)."""
    rng = random.Random(17)
    n_peers, n_rounds = (8, 1) if quick else (128, 3)
    size = 100 if quick else int(min(2000, n_peers * BURST * 0.8))
    found: dict[str, dict[str, Any]] = {}
    with scratch("hub-inbox") as tmp:
        node_port = free_port()
        peers = _peers(n_peers, 2 if quick else 16, free_port())
        data, db_path = admitted_node(tmp, node_port, peers)

        def measured(node: subprocess.Popen, where: Path | str) -> dict[str, Any]:
            before = applied(where)
            _sent_and_applied(node, node_port, where,
                              signed_round(peers, n_peers, node_port, rng), None, "warm-up")
            results = [_sent_and_applied(node, node_port, where,
                                         signed_round(peers, size, node_port, rng), None,
                                         "inbox") for _ in range(n_rounds)]
            accepted = [r["statuses"].get("202", 0) for r in results]
            if sum(accepted) != n_rounds * size:
                raise RuntimeError(f"refused: {[r['statuses'] for r in results]}"
                                   f" (see {data}/node.log)")
            if applied(where) - before != n_peers + n_rounds * size:
                raise RuntimeError(f"{applied(where) - before} applied of"
                                   f" {n_peers + n_rounds * size} accepted")
            return {"accepted_per_s": median([a / r["elapsed"]
                                              for a, r in zip(accepted, results)]),
                    "applied_per_s": median([a / r["applied_s"]
                                             for a, r in zip(accepted, results)])}

        with _serving_peers(tmp, peers, rng):
            with node_process(data, node_port) as node:
                found["SQLite, 1 process"] = measured(node, db_path)
            with scratch_database(server) as database:
                moved_to(data, database)
                for n in PROCESSES:
                    with node_process(data, node_port, "--workers", str(n)) as node, \
                            workers(data, WORKERS):
                        found[f"PostgreSQL, {n} web"] = measured(node, database)
    return found


def applied(where: Path | str) -> int:
    """Inbox items applied so far (a SQLite file's, or a PostgreSQL database's)."""
    return query(where, "SELECT count(*) FROM inbox_items WHERE state = 'applied'")[0][0]


def run(server: str, quick: bool = False) -> dict[str, Any]:
    return {"pages": pages(server, quick), "inbox": inbox(server, quick)}


def describe(result: dict[str, Any]) -> str:
    """A line a configuration: requests/s and p95 of each kind of page, and the inbox,
    with each as a multiple of SQLite's one process."""
    base_pages = result["pages"]["SQLite, 1 process"]
    base_inbox = result["inbox"]["SQLite, 1 process"]["accepted_per_s"]
    lines = ["hub: requests/s (p95 ms), and × SQLite with one process, at concurrency 32"]
    for name, kinds in result["pages"].items():
        cells = [f"{kind} {f['rate']:,.0f} ({f['p95_ms']:.0f})"
                 f" ×{f['rate'] / base_pages[kind]['rate']:.2f}" for kind, f in kinds.items()]
        inbox_rate = result["inbox"][name]["accepted_per_s"]
        cells.append(f"inbox {inbox_rate:,.0f}/s ×{inbox_rate / base_inbox:.2f}")
        lines.append(f"  {name:20} " + "; ".join(cells))
    return "\n".join(lines)


if __name__ == "__main__":
    server_url = next((a for a in sys.argv[1:] if a.startswith("postgres")), None)
    if server_url is None:
        sys.exit("usage: python -m bench.hub postgresql://USER@HOST/DATABASE [--quick]")
    print(describe(run(server_url, quick="--quick" in sys.argv)))
