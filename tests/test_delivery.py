"""The delivery queue: retry policy as properties, the worker against a real local peer.

Every worker test runs on a real SQLite file and POSTs over real HTTP to a
Starlette "peer" under uvicorn on 127.0.0.1, which checks each request's
signature against the signer's public key and answers as the test tells it.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from federation import store
from federation.delivery import DeliveryWorker
from federation.fetch import Fetcher
from federation.retry import GIVE_UP_AFTER, MAX_DELAY, MAX_RETRY_AFTER, next_attempt
from federation.signatures import SignatureError, check, verify_request
from node.db import Database, parse_stamp, stamp
from tests.helpers import database

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
RETRIABLE = [None, 401, 408, 500, 502, 504, 520, 429, 503]
PERMANENT = [400, 403, 404, 405, 410, 413, 422, 451]


# --- the retry policy --------------------------------------------------------------------

def decide(attempts: int = 0, age: timedelta = timedelta(0), status: int | None = 500,
           retry_after: str | None = None, jitter: float = 0.5):
    return next_attempt(attempts, NOW - age, NOW, status, retry_after, rng=lambda: jitter)


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_is_sent(status):
    assert decide(status=status).outcome == "sent"


@pytest.mark.parametrize("status", PERMANENT)
def test_refusing_4xx_fails_at_once(status):
    decision = decide(status=status)
    assert (decision.outcome, decision.delay_seconds) == ("failed", None)


@pytest.mark.parametrize("status", RETRIABLE)
def test_401_408_429_5xx_and_no_answer_are_retried(status):
    decision = decide(status=status)
    assert decision.outcome == "retry" and decision.delay_seconds > 0


def test_backoff_starts_at_30_seconds_and_doubles_within_jitter():
    assert decide(attempts=0).delay_seconds == 30
    assert decide(attempts=3).delay_seconds == 240
    assert 24 <= decide(attempts=0, jitter=0.0).delay_seconds < decide(attempts=0, jitter=0.99).delay_seconds <= 36


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_seconds_and_http_date_are_honoured(status):
    assert decide(status=status, retry_after="120").delay_seconds == 120
    in_ten_minutes = format_datetime(NOW + timedelta(minutes=10), usegmt=True)
    assert decide(status=status, retry_after=in_ten_minutes).delay_seconds == 600


def test_retry_after_is_capped_and_never_sooner_than_backoff():
    assert decide(status=429, retry_after=str(30 * 86400)).delay_seconds == MAX_RETRY_AFTER
    assert decide(status=429, retry_after="0", attempts=4).delay_seconds == 480
    assert decide(status=503, retry_after="soon", attempts=4).delay_seconds == 480


retry_after_values = st.one_of(
    st.none(), st.integers(0, 10**10).map(str), st.text(max_size=40),
    st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2200, 1, 1)).map(
        lambda d: format_datetime(d.replace(tzinfo=UTC), usegmt=True)))


@given(attempts=st.integers(0, 10_000), age=st.timedeltas(timedelta(days=-1), timedelta(days=30)),
       status=st.one_of(st.none(), st.integers(100, 599)), retry_after=retry_after_values,
       jitter=st.floats(0, 1, exclude_max=True))
def test_delay_is_never_negative_nor_above_the_cap(attempts, age, status, retry_after, jitter):
    decision = decide(attempts, age, status, retry_after, jitter)
    if decision.outcome == "retry":
        assert 0 <= decision.delay_seconds <= MAX_DELAY
    else:
        assert decision.delay_seconds is None


@given(attempts=st.integers(0, 200), status=st.sampled_from(RETRIABLE),
       retry_after=st.one_of(st.none(), st.integers(0, 10**6).map(str)),
       jitter=st.sampled_from([0.0, 0.5, 0.999999]))
def test_delay_never_shrinks_as_attempts_grow(attempts, status, retry_after, jitter):
    before = decide(attempts, status=status, retry_after=retry_after, jitter=jitter)
    after = decide(attempts + 1, status=status, retry_after=retry_after, jitter=jitter)
    assert before.delay_seconds <= after.delay_seconds


@given(attempts=st.integers(0, 10_000), status=st.sampled_from(RETRIABLE),
       age=st.timedeltas(timedelta(0), timedelta(days=10)), retry_after=retry_after_values)
def test_retriable_errors_give_up_after_3_days_and_never_before(attempts, status, age, retry_after):
    decision = decide(attempts, age, status, retry_after)
    assert decision.outcome == ("failed" if age > GIVE_UP_AFTER else "retry")


# --- a real peer on 127.0.0.1 -------------------------------------------------------------

@dataclass
class Reply:
    status: int = 202
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    signature_problem: str | None  # None: every fact of the signature holds


class Peer:
    """Inboxes at any path on one uvicorn server; each answers as ``replies`` says."""

    def __init__(self) -> None:
        self.replies: dict[str, Reply] = {}
        self.received: list[Received] = []
        self.public_pem = ""
        app = Starlette(routes=[Route("/{path:path}", self._inbox, methods=["POST"])])
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                lifespan="off", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "peer did not start"
            time.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)

    def inbox(self, name: str) -> str:
        return f"{self.base}/{name}/inbox"

    def answer(self, name: str, reply: Reply) -> None:
        self.replies[f"/{name}/inbox"] = reply

    def bodies(self, name: str) -> list[bytes]:
        return [r.body for r in self.received if r.path == f"/{name}/inbox"]

    async def _inbox(self, request: Request) -> Response:
        body = await request.body()
        path = request.scope["raw_path"].decode("ascii")
        facts = verify_request("POST", path, request.url.query or None, request.headers, body,
                               self.public_pem)
        try:
            check(facts)
            problem = None
        except SignatureError as error:
            problem = str(error)
        self.received.append(Received(path, dict(request.headers), body, problem))
        reply = self.replies.get(path, Reply())
        if reply.hang:
            await asyncio.sleep(60)
        return Response(status_code=reply.status, headers=reply.headers)


@pytest.fixture(scope="module")
def running_peer() -> Iterator[Peer]:
    peer = Peer()
    peer.start()
    yield peer
    peer.stop()


@pytest.fixture
def peer(running_peer: Peer) -> Peer:
    running_peer.replies.clear()
    running_peer.received.clear()
    return running_peer


KEY_ID = "http://node.test/actor#main-key"


async def key_id_for(owner: str) -> str:
    if owner != "node":
        raise LookupError("no such actor")
    return KEY_ID


@dataclass
class Node:
    db: Database
    worker: DeliveryWorker
    published: int = 0

    async def publish(self, inboxes: list[str], owner: str = "node") -> str:
        self.published += 1
        activity = {"@context": "https://www.w3.org/ns/activitystreams",
                    "id": f"http://node.test/activities/{self.published}", "type": "Create",
                    "actor": "http://node.test/actor", "object": {"type": "Note",
                                                                 "content": "body-marker café"}}
        await store.publish(self.db, activity, owner, inboxes)
        return activity["id"]

    async def rows(self, inbox: str) -> list[dict[str, Any]]:
        found = await self.db.fetchall(
            "SELECT d.*, a.body FROM deliveries d JOIN activities a ON a.id = d.activity_id"
            " WHERE inbox = ? ORDER BY d.id", (inbox,))
        return [dict(r) for r in found]

    async def row(self, inbox: str) -> dict[str, Any]:
        (only,) = await self.rows(inbox)
        return only

    async def send_one(self, inbox: str) -> dict[str, Any]:
        """Publish one activity to ``inbox``, run one cycle, and return its delivery row."""
        await self.publish([inbox])
        assert await self.worker.run_once() == 1
        return await self.row(inbox)

    async def everything_due(self) -> None:
        """As if the clock had passed every retry time (and nothing else)."""
        await self.sql("UPDATE deliveries SET next_attempt_at = ?",
                       (stamp(datetime.now(UTC) - timedelta(seconds=1)),))

    async def sql(self, statement: str, params: tuple = ()) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(statement, params)


def on_node(tmp_path: Path, peer: Peer, scenario: Callable[[Node], Awaitable[None]], *,
            lease_seconds: float = 120, deadline: float = 10) -> None:
    async def go() -> None:
        db = database(tmp_path / "node.db")
        await db.open()
        async with Fetcher(allow_private=True, deadline=deadline) as fetcher:
            try:
                peer.public_pem = (await store.key_for(db, "node")).public_pem
                worker = DeliveryWorker(db, fetcher, key_id_for, lease_seconds=lease_seconds)
                await scenario(Node(db, worker))
            finally:
                await db.close()

    asyncio.run(go())


def seconds_from_now(value: str) -> float:
    return (parse_stamp(value) - datetime.now(UTC)).total_seconds()


# --- the worker -----------------------------------------------------------------------------

def test_2xx_marks_sent_once_after_a_validly_signed_post_of_the_exact_body(tmp_path, peer):
    async def scenario(node: Node) -> None:
        await store.save_peer(node.db, "127.0.0.1", "http://127.0.0.1/actor", peer.inbox("a"),
                              None)
        row = await node.send_one(peer.inbox("a"))
        assert (row["state"], row["attempts"], row["last_status"]) == ("sent", 1, 202)
        (received,) = peer.received
        assert received.signature_problem is None
        assert f'keyId="{KEY_ID}"' in received.headers["signature"]
        assert received.headers["content-type"] == "application/activity+json"
        assert received.body == row["body"].encode("utf-8")
        assert (await store.get_peer(node.db, "127.0.0.1")).last_success_at is not None

        await node.everything_due()
        assert await node.worker.run_once() == 0
        assert len(peer.received) == 1

    on_node(tmp_path, peer, scenario)


def test_500_requeues_with_a_later_attempt_and_counts_it(tmp_path, peer):
    peer.answer("a", Reply(500))

    async def scenario(node: Node) -> None:
        row = await node.send_one(peer.inbox("a"))
        assert (row["state"], row["attempts"], row["last_status"]) == ("queued", 1, 500)
        assert row["locked_until"] is None
        assert 23 <= seconds_from_now(row["next_attempt_at"]) <= 37  # 30 s ± 20 %
        assert await node.worker.run_once() == 0
        assert len(peer.received) == 1

    on_node(tmp_path, peer, scenario)


def test_410_fails_for_good_and_is_never_retried(tmp_path, peer):
    peer.answer("a", Reply(410))

    async def scenario(node: Node) -> None:
        row = await node.send_one(peer.inbox("a"))
        assert (row["state"], row["last_status"]) == ("failed", 410)
        await node.everything_due()
        assert await node.worker.run_once() == 0
        assert len(peer.received) == 1

    on_node(tmp_path, peer, scenario)


def test_429_retry_after_is_waited_for(tmp_path, peer):
    peer.answer("a", Reply(429, {"Retry-After": "120"}))

    async def scenario(node: Node) -> None:
        row = await node.send_one(peer.inbox("a"))
        assert (row["state"], row["last_status"]) == ("queued", 429)
        assert 119 <= seconds_from_now(row["next_attempt_at"]) <= 122

    on_node(tmp_path, peer, scenario)


def test_no_answer_is_retried_with_the_reason_kept(tmp_path, peer):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{closed.getsockname()[1]}/inbox"

    async def scenario(node: Node) -> None:
        row = await node.send_one(nowhere)
        assert (row["state"], row["attempts"], row["last_status"]) == ("queued", 1, None)
        assert "ConnectError" in row["last_error"]

    on_node(tmp_path, peer, scenario)


def test_a_crash_mid_send_leaves_the_row_queued_and_it_goes_once_the_lease_ends(tmp_path, peer):
    peer.answer("a", Reply(hang=True))

    async def scenario(node: Node) -> None:
        await node.publish([peer.inbox("a")])
        cycle = asyncio.create_task(node.worker.run_once())
        while not peer.received:
            assert not cycle.done(), "the cycle ended without sending"
            await asyncio.sleep(0.01)
        cycle.cancel()  # the process dies while the peer has not answered
        with pytest.raises(asyncio.CancelledError):
            await cycle
        row = await node.row(peer.inbox("a"))
        assert (row["state"], row["attempts"]) == ("queued", 0)
        assert await node.worker.run_once() == 0  # still leased

        peer.answer("a", Reply(202))
        started = time.monotonic()
        while await node.worker.run_once() == 0:
            assert time.monotonic() - started < 6, "lease never ended"
            await asyncio.sleep(0.1)
        row = await node.row(peer.inbox("a"))
        assert (row["state"], row["attempts"]) == ("sent", 1)
        assert len(peer.received) == 2

    on_node(tmp_path, peer, scenario, lease_seconds=4, deadline=2)


def test_a_failing_inbox_does_not_delay_a_healthy_one_in_the_same_cycle(tmp_path, peer):
    peer.answer("a", Reply(500))

    async def scenario(node: Node) -> None:
        await node.publish([peer.inbox("a"), peer.inbox("b")])
        await node.publish([peer.inbox("b")])
        assert await node.worker.run_once() == 3
        assert [r["state"] for r in await node.rows(peer.inbox("a"))] == ["queued"]
        assert [r["state"] for r in await node.rows(peer.inbox("b"))] == ["sent", "sent"]

    on_node(tmp_path, peer, scenario)


def test_a_failing_peer_gets_one_probe_per_cycle_not_every_row(tmp_path, peer):
    peer.answer("a", Reply(503))

    async def scenario(node: Node) -> None:
        for _ in range(3):
            await node.publish([peer.inbox("a")])
        assert await node.worker.run_once() == 3
        assert len(peer.bodies("a")) == 1
        first, *held = await node.rows(peer.inbox("a"))
        assert first["attempts"] == 1
        for row in held:  # released, waiting for the peer's retry time, untried
            assert row["attempts"] == 0 and row["locked_until"] is None
            assert row["next_attempt_at"] >= first["next_attempt_at"]

        # The retry time comes: the oldest row probes again, alone.
        await node.everything_due()
        assert await node.worker.run_once() == 3
        assert peer.bodies("a") == [first["body"].encode()] * 2
        assert [r["attempts"] for r in await node.rows(peer.inbox("a"))] == [2, 0, 0]

    on_node(tmp_path, peer, scenario)


def test_a_recovered_peer_gets_its_held_deliveries_promptly(tmp_path, peer):
    peer.answer("a", Reply(500))

    async def scenario(node: Node) -> None:
        for _ in range(3):
            await node.publish([peer.inbox("a")])
        await node.worker.run_once()
        assert all(seconds_from_now(r["next_attempt_at"]) > 20
                   for r in await node.rows(peer.inbox("a")))

        peer.answer("a", Reply(202))
        await node.publish([peer.inbox("a")])  # due now: the first success...
        assert await node.worker.run_once() == 1
        assert await node.worker.run_once() == 3  # ...makes the held rows due at once
        rows = await node.rows(peer.inbox("a"))
        assert [r["state"] for r in rows] == ["sent"] * 4
        assert peer.bodies("a")[-3:] == [r["body"].encode() for r in rows[:3]]

    on_node(tmp_path, peer, scenario)


def test_after_3_days_of_failure_the_peer_s_old_rows_give_up(tmp_path, peer):
    peer.answer("a", Reply(500))

    async def scenario(node: Node) -> None:
        await node.publish([peer.inbox("a")])
        await node.publish([peer.inbox("a")])
        await node.sql("UPDATE deliveries SET created_at = ?",
                       (stamp(datetime.now(UTC) - timedelta(days=3, minutes=1)),))
        await node.publish([peer.inbox("a")])  # fresh: keeps waiting for the peer
        assert await node.worker.run_once() == 3
        rows = await node.rows(peer.inbox("a"))
        assert [r["state"] for r in rows] == ["failed", "failed", "queued"]
        assert "gave up" in rows[0]["last_error"] and "gave up" in rows[1]["last_error"]
        assert seconds_from_now(rows[2]["next_attempt_at"]) > 20
        assert len(peer.received) == 1

    on_node(tmp_path, peer, scenario)


def test_run_forever_survives_a_broken_delivery_and_wakes_for_new_work(tmp_path, peer, caplog):
    async def scenario(node: Node) -> None:
        wake = asyncio.Event()
        loop = asyncio.create_task(node.worker.run_forever(wake))
        try:
            await node.publish([peer.inbox("a")], owner="group:999")  # no key id: raises
            await node.publish([peer.inbox("b")])
            wake.set()
            started = time.monotonic()
            while not peer.bodies("b"):
                assert time.monotonic() - started < 5, "nothing delivered"
                await asyncio.sleep(0.02)
            assert not loop.done()
            broken = await node.row(peer.inbox("a"))
            assert (broken["state"], broken["attempts"]) == ("queued", 0)
        finally:
            loop.cancel()
            with pytest.raises(asyncio.CancelledError):
                await loop

    with caplog.at_level(logging.WARNING, logger="federation.delivery"):
        on_node(tmp_path, peer, scenario)
    warnings = [r for r in caplog.records if r.name == "federation.delivery"]
    assert warnings and all(r.levelno == logging.WARNING for r in warnings)
    assert "body-marker" not in caplog.text and "activities/1" not in caplog.text


def test_the_lease_must_outlast_an_exchange(tmp_path):
    async def scenario() -> None:
        async with Fetcher(deadline=10) as fetcher:
            with pytest.raises(ValueError):
                DeliveryWorker(database(tmp_path / "x.db"), fetcher, key_id_for,
                               lease_seconds=11)

    asyncio.run(scenario())
