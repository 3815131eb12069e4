"""No delivery lost or applied twice while both nodes are killed with SIGKILL again and again.

Node A follows node B (real ``grassroots serve --dev`` processes). B's
facilitator creates N meetings through the storage layer while the test
kills each process at random moments and restarts it on the same data
directory and port. At the end A holds exactly the activities B sent, each
stored once and applied, every meeting listed once, and B's queue is empty.

The default is short enough for CI (N=300, 3 kills of each node); set
``GRASSROOTS_CRASH_FULL=1`` for the full run (N=10,000, 10 kills each) and
``GRASSROOTS_CRASH_SEED`` to replay a schedule. Run with ``-s`` for the figures.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Self

import httpx
import pytest

from node.cli import initialise
from node.config import CONFIG_FILE
from node.db import Database
from node.domain import EventDraft, Format
from node.storage import accounts, events, groups
from tests.helpers import draft, free_port, run_on
from tests.test_federation import Node, wait_for

FULL = os.environ.get("GRASSROOTS_CRASH_FULL") == "1"
MEETINGS = 10_000 if FULL else 300
KILLS_EACH = 10 if FULL else 3


class NodeProcess(Node):
    """``grassroots serve --dev`` on one data directory and port, stopped and started at will."""

    def __init__(self, data: Path, host: str, port: int, *serve: str) -> None:
        # A non-default port is part of the host peers name it by.
        super().__init__(data, f"http://{host}:{port}", f"{host}:{port}")
        self._address = (host, port)
        self._serve = serve  # more arguments of grassroots serve
        self._proc: subprocess.Popen | None = None
        self.log = data.parent / f"{data.name}.log"

    def start(self, timeout: float = 30) -> None:
        host, port = self._address
        with open(self.log, "ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "node.cli", "serve", "--data", str(self.data),
                 "--host", host, "--port", str(port), "--dev", *self._serve],
                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(self.url + "/", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert self._proc.poll() is None, self.log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"{self.host} did not start"
            time.sleep(0.05)

    def signal(self, sig: signal.Signals) -> None:
        assert self._proc is not None
        self._proc.send_signal(sig)

    def wait(self, timeout: float = 30) -> int:
        assert self._proc is not None
        return self._proc.wait(timeout)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.wait()

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def write(self, sql: str, params: tuple = ()) -> None:
        """One statement on the node's database, running or not."""
        self.run(lambda db: db.write(sql, params))


def new_node(tmp: Path, name: str, host: str) -> NodeProcess:
    port = free_port(host)
    initialise(tmp / name, f"http://{host}:{port}")
    return NodeProcess(tmp / name, host, port)


class Hub(NodeProcess):
    """A node on PostgreSQL: ``serve --workers 2`` answering requests, and two
    ``grassroots worker`` processes doing its work, each killed and started at will."""

    WORKERS = 2

    def __init__(self, data: Path, host: str, port: int) -> None:
        super().__init__(data, host, port, "--workers", "2")
        self.workers: list[subprocess.Popen | None] = [None] * self.WORKERS

    def start(self, timeout: float = 30) -> None:
        super().start(timeout)
        for n in range(self.WORKERS):
            self.start_worker(n)

    def start_worker(self, n: int) -> None:
        with open(self.log, "ab") as log:
            self.workers[n] = subprocess.Popen(
                [sys.executable, "-m", "node.cli", "worker", "--data", str(self.data), "--dev"],
                stdout=log, stderr=subprocess.STDOUT)

    def kill_worker(self, n: int) -> None:
        worker = self.workers[n]
        assert worker is not None and worker.poll() is None, self.log.read_text()[-3000:]
        worker.kill()
        worker.wait()

    def stop(self) -> None:
        for worker in self.workers:
            if worker is not None and worker.poll() is None:
                worker.terminate()
                worker.wait(30)
        super().stop()


def new_hub(tmp: Path, name: str, host: str, new_database: Callable[[], str]) -> Hub:
    """A hub's data directory, on a PostgreSQL database of its own whichever engine the
    suite runs on."""
    port = free_port(host)
    initialise(tmp / name, f"http://{host}:{port}")
    config = tmp / name / CONFIG_FILE
    if "database_url" not in config.read_text():
        database_url = new_database()
        with open(config, "a", encoding="utf-8") as f:
            f.write(f'database_url = "{database_url}"\n')
        run_on(tmp / name, lambda db: accounts.create_account(
            db, email=None, display_name="Admin", password_hash=None, is_admin=True))
    return Hub(tmp / name, host, port)


class Clock:
    """Fast-forwards B's retry backoff (30 s × 2ⁿ after A was down) so the test waits seconds.

    Only the time of the next attempt moves; what is sent, and when it counts as
    sent, is B's own doing.
    """

    def __init__(self, b: NodeProcess) -> None:
        self._b = b
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._tick, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _tick(self) -> None:
        while not self._done.wait(0.5):
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            self._b.write("UPDATE deliveries SET next_attempt_at = ?"
                          " WHERE state = 'queued' AND next_attempt_at > ?", (now, now))


def create_meetings(b: NodeProcess, group_id: int, count: int) -> None:
    start = (datetime.now(UTC) + timedelta(days=2)).replace(second=0, microsecond=0,
                                                            tzinfo=None)

    async def work(db: Database) -> None:
        for n in range(count):
            await events.create_event(db, group_id, EventDraft(
                title=f"Crash meeting {n}", description="", starts_at=start
                + timedelta(minutes=n), duration_minutes=60, timezone="UTC", rrule=None,
                format=Format.IN_PERSON))

    b.run(work)


def test_no_delivery_is_lost_or_applied_twice_when_both_nodes_are_killed(tmp_path):
    a = new_node(tmp_path, "a", "127.0.0.1")
    b = new_node(tmp_path, "b", "127.0.0.2")

    def kill(rng: random.Random, victim: str) -> None:
        node = a if victim == "a" else b
        node.kill()
        time.sleep(rng.uniform(0, 0.5))
        node.start()

    killed_and_checked(a, b, ["a", "b"] * KILLS_EACH, kill, "of each node")


@pytest.mark.postgresql_run
def test_no_delivery_is_lost_or_applied_twice_when_hub_workers_are_killed(tmp_path,
                                                                          pg_cluster):
    """Both nodes are hubs on PostgreSQL: two web processes and two workers each. A's
    workers apply its inbox, B's deliver to A; each kill is one worker's, at random."""
    a = new_hub(tmp_path, "a", "127.0.0.1", pg_cluster.new_node_database)
    b = new_hub(tmp_path, "b", "127.0.0.2", pg_cluster.new_node_database)
    workers = [(hub, n) for hub in (a, b) for n in range(Hub.WORKERS)]

    def kill(rng: random.Random, victim: str) -> None:
        hub, n = workers[int(victim)]
        hub.kill_worker(n)
        time.sleep(rng.uniform(0, 0.5))
        hub.start_worker(n)

    killed_and_checked(a, b, [str(n) for n in range(len(workers))] * KILLS_EACH,
                       kill, "of each of the four workers")


def killed_and_checked(a: NodeProcess, b: NodeProcess, victims: list[str],
                       kill: Callable[[random.Random, str], None], told: str) -> None:
    """A follows B; B's facilitator creates the meetings while each victim is killed (and
    started again) when A has received a random share of them; then every delivery was
    stored on A once and applied, and every meeting is listed on A once."""
    seed = int(os.environ.get("GRASSROOTS_CRASH_SEED", random.randrange(1 << 32)))
    rng = random.Random(seed)
    began = time.monotonic()
    a.start()
    b.start()
    try:
        a.cli("peers", "follow", b.url, "--dev")
        wait_for(lambda: b.query("SELECT follower FROM peers WHERE host = ?", (a.host,))
                 == [("pending",)], "B to see A's follow", timeout=60)
        b.cli("peers", "approve", a.host)
        wait_for(lambda: a.query("SELECT following FROM peers WHERE host = ?", (b.host,))
                 == [("accepted",)], "A to be accepted", timeout=60)

        async def make_group(db: Database) -> int:
            owner = await accounts.create_account(db, email=None, display_name="Host",
                                                  password_hash=None)
            return (await groups.get_group(
                db, await groups.create_group(db, draft(name="Crash Group"), owner))).id

        group_id = b.run(make_group)
        wait_for(lambda: a.query("SELECT count(*) FROM groups WHERE origin = ?", (b.host,))
                 == [(1,)], "B's group on A", timeout=60)

        def on_a() -> int:
            return a.query("SELECT count(*) FROM inbox_items WHERE host = ?", (b.host,))[0][0]

        baseline = on_a()
        creator = threading.Thread(target=create_meetings, args=(b, group_id, MEETINGS))
        # Each kill when A has received a random share of the meetings, plus a random moment.
        kills = sorted((rng.uniform(0.02, 0.95), victim) for victim in victims)
        with Clock(b):
            creator.start()
            for share, victim in kills:
                wait_for(lambda share=share: on_a() - baseline >= share * MEETINGS,
                         f"{share:.0%} of the meetings on A", timeout=600)
                time.sleep(rng.uniform(0, 0.3))
                kill(rng, victim)
            creator.join()
            wait_for(lambda: b.query("SELECT count(*) FROM deliveries WHERE state != 'sent'")
                     == [(0,)] and a.query("SELECT count(*) FROM inbox_items"
                                           " WHERE state = 'received'") == [(0,)],
                     "B's queue to empty and A to apply everything", timeout=900)
        seconds = time.monotonic() - began
    finally:
        a.stop()
        b.stop()

    inbox = f"{a.url}/inbox"
    sent_rows = b.query("SELECT activity_id, state, attempts FROM deliveries WHERE inbox = ?",
                        (inbox,))
    sent = Counter(r[0] for r in sent_rows)
    held = {r[0]: (r[1], r[2]) for r in a.query(
        "SELECT activity_id, state, attempts FROM inbox_items WHERE host = ?", (b.host,))}
    creates = Counter(r[0] for r in b.query(
        "SELECT object_id FROM activities WHERE type = 'Create' AND object_id LIKE ?",
        (f"{b.url}/events/%",)))
    titles = Counter(r[0] for r in a.query(
        "SELECT e.title FROM events e JOIN groups g ON g.id = e.group_id WHERE g.origin = ?",
        (b.host,)))
    expected = {f"Crash meeting {n}" for n in range(MEETINGS)}
    lost = len(set(sent) - set(held)) + len(expected - set(titles))
    duplicated = (sum(n - 1 for n in sent.values()) + sum(n - 1 for n in titles.values())
                  + sum(n - 1 for n in creates.values()) + len(set(titles) - expected))
    print(f"\ncrash test (seed {seed}): {len(sent)} deliveries B→A, {MEETINGS} meetings,"
          f" {KILLS_EACH} SIGKILLs {told}, {seconds:.1f} s;"
          f" lost {lost}, duplicated {duplicated};"
          f" {sum(r[2] - 1 for r in sent_rows)} retried POSTs (deduplicated by A),"
          f" {sum(1 for s in held.values() if s[1] > 1)} activities re-applied after a kill")

    assert len(creates) == MEETINGS
    assert set(held) == set(sent)  # A holds exactly what B sent, each id stored once
    assert {state for _, (state, _) in held.items()} == {"applied"}
    assert {r[1] for r in sent_rows} == {"sent"}
    assert (lost, duplicated) == (0, 0)
