"""No data lost: FULL commits, group commit of inbox arrivals, leases, graceful shutdown.

The unit tests run the acceptor and the runner on a real database; the last
test sends SIGTERM to a real node process while it delivers to a slow sink.
"""
from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from federation import runner, store
from federation.acceptor import InboxAcceptor, NotAccepted
from federation.context import Federation
from federation.documents import Urls
from federation.fetch import Fetcher
from node.cli import initialise
from node.db import Database, connect_sync, stamp
from node.domain import EventDraft, Format
from node.storage import accounts, events, groups, remote
from tests.helpers import database, draft, free_port, run_on
from tests.test_crash import NodeProcess


def arrival(n: int, actor: Any = "https://peer.test/actor") -> store.Arrival:
    activity_id = f"https://peer.test/activities/{n}"
    return store.Arrival(activity_id, actor, "peer.test", "Create",
                         json.dumps({"id": activity_id, "type": "Create"}))


async def commits_during(db: Database, work: Awaitable[Any]) -> tuple[Any, int]:
    """``work``'s result and how many transactions the database committed meanwhile: each
    ``transaction()`` that ends without an error, and each ``write`` (one of its own)."""
    commits = 0
    transaction, write = db.transaction, db.write
    writing: ContextVar[bool] = ContextVar("writing", default=False)

    @asynccontextmanager
    async def counted_transaction() -> AsyncIterator[Any]:
        nonlocal commits
        async with transaction() as conn:
            yield conn
        commits += not writing.get()  # a write's own transaction is counted as the write

    async def counted_write(sql: str, params: Any = ()) -> Any:
        nonlocal commits
        token = writing.set(True)
        try:
            rows = await write(sql, params)
        finally:
            writing.reset(token)
        commits += 1
        return rows

    db.transaction, db.write = counted_transaction, counted_write  # type: ignore[method-assign]
    try:
        result = await work
    finally:
        del db.transaction, db.write
    return result, commits


async def stored_ids(db: Database) -> Counter[str]:
    return Counter(r[0] for r in await db.fetchall("SELECT activity_id FROM inbox_items"))


# --- durability pragmas -------------------------------------------------------------

@pytest.mark.sqlite_only  # SQLite's durability pragmas
def test_every_writing_connection_commits_with_synchronous_full(tmp_path):
    async def scenario(db: Database) -> None:
        async with db.transaction() as conn:
            cursor = await conn.execute("PRAGMA synchronous")
            assert (await cursor.fetchone())[0] == 2  # FULL
            cursor = await conn.execute("PRAGMA journal_mode")
            assert (await cursor.fetchone())[0] == "wal"

    run_on(tmp_path / "node.db", scenario)
    conn = connect_sync(tmp_path / "node.db")  # the CLI's and the backup's connection
    try:
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2
    finally:
        conn.close()


# --- group commit ---------------------------------------------------------------------

def test_200_concurrent_accepts_share_a_handful_of_commits_and_are_stored_once(tmp_path):
    async def scenario(db: Database) -> None:
        await store.accept_inbox_items(db, [arrival(n) for n in range(10)])  # seen before
        acceptor = InboxAcceptor(db)
        acceptor.start()
        # 150 distinct ids: 0-9 already stored, 140-149 sent twice at once.
        sends = [arrival(n) for n in range(150)] + [arrival(n) for n in range(140, 150)] \
            + [arrival(n) for n in range(40)]
        assert len(sends) == 200
        results, commits = await commits_during(
            db, asyncio.gather(*(acceptor.accept(a) for a in sends)))
        await acceptor.stop()
        print(f"\n200 concurrent accepts: {commits} commit(s)")
        assert 1 <= commits <= 5
        new = Counter(a.activity_id for a, fresh in zip(sends, results) if fresh)
        assert set(new) == {arrival(n).activity_id for n in range(10, 150)}
        assert set(new.values()) == {1}  # each new id answered "new" exactly once
        assert sum(results) == 140
        stored = await stored_ids(db)
        assert len(stored) == 150 and set(stored.values()) == {1}

    run_on(tmp_path / "node.db", scenario)


def test_arrivals_during_a_commit_go_in_the_next_one(tmp_path):
    """Requests trickling in while the writer is busy are batched, not committed one by one."""
    async def scenario(db: Database) -> None:
        acceptor = InboxAcceptor(db)
        acceptor.start()

        async def trickle() -> list[bool]:
            sending = []
            for n in range(300):
                sending.append(asyncio.create_task(acceptor.accept(arrival(n))))
                if n % 10 == 0:
                    await asyncio.sleep(0)  # let the acceptor run now and then
            return await asyncio.gather(*sending)

        results, commits = await commits_during(db, trickle())
        await acceptor.stop()
        print(f"\n300 trickled accepts: {commits} commits")
        assert all(results)
        assert commits <= 300 / 10
        assert len(await stored_ids(db)) == 300

    run_on(tmp_path / "node.db", scenario)


def test_a_failed_batch_fails_every_request_in_it_and_stores_nothing(tmp_path):
    async def scenario(db: Database) -> None:
        acceptor = InboxAcceptor(db)
        acceptor.start()
        # One arrival the database refuses (actor is NOT NULL) sinks the whole batch.
        sends = [arrival(n) for n in range(20)] + [arrival(20, actor=None)]
        results = await asyncio.gather(*(acceptor.accept(a) for a in sends),
                                       return_exceptions=True)
        assert all(isinstance(r, NotAccepted) for r in results)
        assert await stored_ids(db) == Counter()
        assert await acceptor.accept(arrival(1)) is True  # the next batch is fine
        await acceptor.stop()

    run_on(tmp_path / "node.db", scenario)


def test_stopping_stores_what_is_waiting_and_refuses_what_comes_later(tmp_path):
    async def scenario(db: Database) -> None:
        acceptor = InboxAcceptor(db)
        acceptor.start()
        waiting = [asyncio.create_task(acceptor.accept(arrival(n))) for n in range(5)]
        await asyncio.sleep(0)
        await acceptor.stop()
        assert [await w for w in waiting] == [True] * 5
        with pytest.raises(NotAccepted):
            await acceptor.accept(arrival(6))
        assert len(await stored_ids(db)) == 5

    run_on(tmp_path / "node.db", scenario)


# --- leases and the runner's stop ----------------------------------------------------

def test_a_starting_runner_releases_what_a_killed_one_had_claimed(tmp_path):
    async def scenario(db: Database) -> None:
        await store.publish(db, {"id": "https://ours.test/a/1", "type": "Create"}, "node",
                            ["https://peer.test/inbox"])
        await store.accept_inbox_items(db, [arrival(1), arrival(2)])
        await store.finish_inbox_item(db, arrival(2).activity_id, "received", "outage",
                                      retry_in=3600)  # backing off: not a lease
        assert len(await store.claim_deliveries(db, 120, 10)) == 1
        assert len(await store.claim_inbox_items(db)) == 1
        # The process dies here. Nothing is due until its leases are released:
        assert await store.claim_deliveries(db, 120, 10) == []
        assert await store.claim_inbox_items(db) == []
        await store.release_leases(db)
        assert len(await store.claim_deliveries(db, 120, 10)) == 1
        assert [i.activity_id for i in await store.claim_inbox_items(db)] \
            == [arrival(1).activity_id]

    run_on(tmp_path / "node.db", scenario)


def run_with_runner(tmp_path: Path, monkeypatch, applying: Callable[[str], Awaitable[None]],
                    scenario: Callable[[Database, Federation], Awaitable[None]]) -> None:
    """``scenario`` on a node whose handlers are replaced by ``applying(activity_id)``."""
    async def fake_apply(fed: Federation, act: dict[str, Any], sender: str, host: str,
                         done: store.Finish | None = None) -> bool:
        await applying(act["id"])
        return True

    monkeypatch.setattr(runner, "apply", fake_apply)

    async def go(db: Database) -> None:
        async with Fetcher(allow_private=True) as fetcher:
            await scenario(db, Federation(db, fetcher, Urls("http://ours.test")))

    run_on(tmp_path / "node.db", go)


async def states(db: Database) -> dict[str, tuple[str, bool]]:
    """Each inbox item's state and whether it is due now."""
    now = stamp(datetime.now(UTC))
    rows = await db.fetchall("SELECT activity_id, state, next_attempt_at <= ? FROM inbox_items",
                             (now,))
    return {r[0]: (r[1], bool(r[2])) for r in rows}


def test_stop_lets_the_application_under_way_finish_and_releases_the_rest(tmp_path,
                                                                          monkeypatch):
    applied: list[str] = []
    started_once = asyncio.Event()

    async def slowly(activity_id: str) -> None:
        started_once.set()
        await asyncio.sleep(0.5)
        applied.append(activity_id)

    async def scenario(db: Database, fed: Federation) -> None:
        await store.accept_inbox_items(db, [arrival(n) for n in range(5)])
        background = await runner.start(fed)
        await started_once.wait()
        began = time.monotonic()
        await runner.stop(background)
        assert time.monotonic() - began < 2
        assert applied == [arrival(0).activity_id]
        found = await states(db)
        assert found.pop(arrival(0).activity_id)[0] == "applied"
        assert set(found.values()) == {("received", True)}  # released: due at the next start

        background = await runner.start(fed)
        deadline = time.monotonic() + 10
        while len(applied) < 5:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        await runner.stop(background)
        assert sorted(applied) == sorted(arrival(n).activity_id for n in range(5))

    run_with_runner(tmp_path, monkeypatch, slowly, scenario)


def test_stop_cancels_work_that_outlasts_the_grace_and_leaves_it_due(tmp_path, monkeypatch):
    started_once = asyncio.Event()

    async def forever(activity_id: str) -> None:
        started_once.set()
        await asyncio.sleep(3600)

    async def scenario(db: Database, fed: Federation) -> None:
        await store.accept_inbox_items(db, [arrival(1)])
        background = await runner.start(fed)
        await started_once.wait()
        began = time.monotonic()
        await runner.stop(background, grace=0.3)
        assert time.monotonic() - began < 2
        assert await states(db) == {arrival(1).activity_id: ("received", True)}

    run_with_runner(tmp_path, monkeypatch, forever, scenario)


# --- a meeting applied and marked applied in one transaction ----------------------------

PEER_GROUP = "https://peer.test/groups/circle"


def meeting_arrival(n: int, kind: str = "Create") -> store.Arrival:
    activity_id = f"https://peer.test/activities/{kind}-{n}"
    event = {"id": "https://peer.test/events/1", "type": "Event", "name": f"Meeting {n}",
             "startTime": "2031-05-06T18:00:00Z", "timezone": "UTC",
             "attributedTo": PEER_GROUP, "to": ["https://www.w3.org/ns/activitystreams#Public"]}
    return store.Arrival(activity_id, PEER_GROUP, "peer.test", kind, json.dumps(
        {"id": activity_id, "type": kind, "actor": PEER_GROUP, "object": event}))


async def followed_peer_group(fed: Federation) -> None:
    await store.save_peer(fed.db, "peer.test", "https://peer.test/actor",
                          "https://peer.test/inbox", None)
    await store.set_following(fed.db, "peer.test", "accepted")
    await remote.upsert_remote_group(fed.db, origin="peer.test", ap_id=PEER_GROUP,
                                     url=PEER_GROUP, username="circle", draft=draft())


def run_with_federation(tmp_path: Path,
                        scenario: Callable[[Database, Federation], Awaitable[None]]) -> None:
    async def go(db: Database) -> None:
        async with Fetcher(allow_private=True) as fetcher:
            await scenario(db, Federation(db, fetcher, Urls("http://ours.test")))

    run_on(tmp_path / "node.db", go)


def test_a_meeting_and_its_applied_mark_commit_in_one_transaction(tmp_path):
    async def scenario(db: Database, fed: Federation) -> None:
        await followed_peer_group(fed)
        await store.accept_inbox_items(db, [meeting_arrival(1), meeting_arrival(2, "Update")])
        claimed, commits = await commits_during(db, runner.process_inbox(fed))
        assert claimed == 2
        assert commits == 4  # the claim, the peers' last-seen time, one per meeting
        assert {state for state, _ in (await states(db)).values()} == {"applied"}
        assert await db.fetchval("SELECT title FROM events WHERE ap_id = ?",
                                 ("https://peer.test/events/1",)) == "Meeting 2"

    run_with_federation(tmp_path, scenario)


def test_a_failure_before_the_commit_leaves_neither_the_meeting_nor_the_mark(tmp_path,
                                                                             monkeypatch):
    marking = store.Finish.__call__

    async def marked_then_failed(self: store.Finish, conn: Any) -> None:
        await marking(self, conn)
        raise OSError("disk gone")  # as a crash between the mark and the commit would

    async def scenario(db: Database, fed: Federation) -> None:
        await followed_peer_group(fed)
        await store.accept_inbox_items(db, [meeting_arrival(1)])
        monkeypatch.setattr(store.Finish, "__call__", marked_then_failed)
        await runner.process_inbox(fed)
        assert await db.fetchval("SELECT count(*) FROM events") == 0
        assert await states(db) == {meeting_arrival(1).activity_id: ("received", False)}
        monkeypatch.setattr(store.Finish, "__call__", marking)
        await store.release_leases(db)
        await db.write("UPDATE inbox_items SET next_attempt_at = ''")  # its retry is due
        await runner.process_inbox(fed)
        assert await db.fetchval("SELECT count(*) FROM events") == 1
        assert (await states(db))[meeting_arrival(1).activity_id][0] == "applied"

    run_with_federation(tmp_path, scenario)


# --- SIGTERM on a real node delivering to a slow peer ---------------------------------

class SlowSink:
    """A peer inbox on loopback that takes ``delay`` seconds to answer each POST with 202."""

    def __init__(self, delay: float) -> None:
        self.received: list[str] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                sink.received.append(json.loads(body)["id"])
                time.sleep(delay)
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.inbox = f"http://127.0.0.1:{self.port}/inbox"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def slow_sink() -> Iterator[SlowSink]:
    sink = SlowSink(delay=0.4)
    yield sink
    sink.close()


def test_sigterm_finishes_the_posts_in_flight_and_a_restart_sends_the_rest_once(
        tmp_path, slow_sink):
    host = "127.0.0.2"
    port = free_port(host)
    data = tmp_path / "b"
    initialise(data, f"http://{host}:{port}")
    start = (datetime.now(UTC) + timedelta(days=3)).replace(minute=0, second=0,
                                                            microsecond=0, tzinfo=None)

    async def follower_and_meetings(db: Database) -> None:
        sink_host = f"127.0.0.1:{slow_sink.port}"
        await store.save_peer(db, sink_host, f"http://{sink_host}/actor", slow_sink.inbox, None)
        await store.set_follower(db, sink_host, "approved")
        owner = await accounts.create_account(db, email=None, display_name="Host",
                                              password_hash=None)
        group = await groups.get_group(db, await groups.create_group(db, draft(), owner))
        for n in range(12):
            await events.create_event(db, group.id, EventDraft(
                title=f"Meeting {n}", description="", starts_at=start + timedelta(days=n),
                duration_minutes=60, timezone="UTC", rrule=None, format=Format.IN_PERSON))

    node = NodeProcess(data, host, port)
    node.run(follower_and_meetings)
    node.start()
    try:
        deadline = time.monotonic() + 30
        while len(slow_sink.received) < 3:
            assert time.monotonic() < deadline, "nothing reached the sink"
            time.sleep(0.02)
        began = time.monotonic()
        node.signal(signal.SIGTERM)
        assert node.wait() == -signal.SIGTERM  # uvicorn re-raises it once shut down
        print(f"\nSIGTERM with a POST in flight: exited after {time.monotonic() - began:.2f} s")
        assert time.monotonic() - began < 10

        rows = node.query("SELECT a.id, d.state, d.locked_until FROM deliveries d"
                          " JOIN activities a ON a.id = d.activity_id WHERE d.inbox = ?",
                          (slow_sink.inbox,))
        assert len(rows) == 13  # the group and its 12 meetings
        sent = {r[0] for r in rows if r[1] == "sent"}
        assert sent == set(slow_sink.received)  # the POST in flight finished and was recorded
        assert len(sent) < 13
        assert all(r[1] == "queued" and r[2] is None for r in rows if r[0] not in sent)

        node.start()
        deadline = time.monotonic() + 30
        while node.query("SELECT count(*) FROM deliveries WHERE state != 'sent'") != [(0,)]:
            assert time.monotonic() < deadline, "the rest was not sent after the restart"
            time.sleep(0.05)
    finally:
        node.stop()
    assert Counter(slow_sink.received) == Counter({r[0]: 1 for r in rows})


def test_a_full_inbox_backlog_refuses_new_activities_and_stores_nothing(tmp_path, monkeypatch):
    """Bounded queue: past the backlog limit arrivals get NotAccepted (a 503 at the inbox)."""
    import federation.acceptor as acceptor_module
    from federation import store
    from federation.acceptor import InboxAcceptor, NotAccepted

    monkeypatch.setattr(acceptor_module, "MAX_BACKLOG", 3)

    async def run():
        db = database(tmp_path / "n.db")
        await db.open()
        acceptor = InboxAcceptor(db)
        acceptor.start()
        try:
            results = []
            for n in range(5):
                arrival = store.Arrival(f"https://peer.example/a/{n}", "https://peer.example/actor",
                                        "peer.example", "Create", "{}")
                try:
                    results.append(await acceptor.accept(arrival))
                except NotAccepted:
                    results.append("refused")
            return results, await store.inbox_backlog(db)
        finally:
            await acceptor.stop()
            await db.close()

    results, backlog = asyncio.run(run())
    assert results == [True, True, True, "refused", "refused"]
    assert backlog == 3
