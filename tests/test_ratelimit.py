"""The per-peer inbox rate limit: token buckets, who is counted, and the 429 the inbox gives.

The flood between two real peers is in tests/test_attacks.py.
"""
from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from federation.ratelimit import BURST, RATE, PeerRateLimits, retry_after, sender_of
from node.cli import initialise
from node.domain import EventDraft, Format
from tests.helpers import draft, free_port, publish_listing, run_on, serving, wait_for


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limits(**options) -> tuple[PeerRateLimits, Clock]:
    clock = Clock()
    return PeerRateLimits(clock=clock, **options), clock


def test_a_sender_may_burst_then_waits_for_the_next_token() -> None:
    bucket, _ = limits(rate=20, burst=100)
    assert [bucket.take("peer.example") for _ in range(100)] == [0.0] * 100
    assert bucket.take("peer.example") == pytest.approx(1 / 20)


def test_tokens_come_back_at_the_sustained_rate_up_to_the_burst() -> None:
    bucket, clock = limits(rate=20, burst=100)
    for _ in range(100):
        bucket.take("peer.example")
    clock.now += 0.5  # ten tokens
    assert [bucket.take("peer.example") for _ in range(10)] == [0.0] * 10
    assert bucket.take("peer.example") > 0
    clock.now += 3600
    assert [bucket.take("peer.example") for _ in range(100)] == [0.0] * 100
    assert bucket.take("peer.example") > 0


def test_refused_requests_do_not_dig_the_bucket_deeper() -> None:
    bucket, clock = limits(rate=20, burst=100)
    for _ in range(100):
        bucket.take("peer.example")
    for _ in range(1000):
        assert bucket.take("peer.example") == pytest.approx(1 / 20)
    clock.now += 1 / 20 + 1e-9
    assert bucket.take("peer.example") == 0.0


def test_one_senders_flood_leaves_every_other_sender_its_burst() -> None:
    bucket, _ = limits(rate=20, burst=100)
    for _ in range(10_000):
        bucket.take("flood.example")
    assert [bucket.take("calm.example") for _ in range(100)] == [0.0] * 100


def test_the_least_recently_seen_sender_is_forgotten_first() -> None:
    bucket, _ = limits(rate=20, burst=2, max_tracked=3)
    for host in ("a.example", "b.example", "c.example"):
        bucket.take(host)
        bucket.take(host)
    bucket.take("a.example")  # a is seen again: b is now the oldest
    bucket.take("d.example")  # b is forgotten
    assert len(bucket) == 3
    assert bucket.take("a.example") > 0     # still tracked, still empty
    assert bucket.take("b.example") == 0.0  # forgotten: a full bucket again
    assert bucket.take("c.example") == 0.0  # and b's return pushed c out


def headers_of(headers: dict[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


@pytest.mark.parametrize("key_id", [
    "https://Peer.Example./actor#main-key", "https://peer.example:8443/actor#main-key",
    "https://peer.example/keys/1", "https://PEER.example/users/x?y#main-key",
])
def test_the_sender_is_the_key_ids_host_in_one_form_for_every_port(key_id: str) -> None:
    header = f'keyId="{key_id}",signature="YQ=="'
    assert sender_of(headers_of({"Signature": header}), "192.0.2.7") == "peer.example"


def test_an_rfc9421_sender_is_its_keyids_host() -> None:
    headers = {"Signature-Input": 'sig1=("@method" "@target-uri");created=1;'
                                  'keyid="https://Peer.Example:8443/actor#main-key"',
               "Signature": "sig1=:YQ==:"}
    assert sender_of(headers_of(headers), "192.0.2.7") == "peer.example"


@pytest.mark.parametrize("headers", [{}, {"Signature": "garbage"},
                                     {"Signature": "sig1=:YQ==:", "Signature-Input": "bad"},
                                     {"Signature": 'keyId="mailto:x",signature="YQ=="'},
                                     {"Signature": 'keyId="https://[::1/",signature="YQ=="'}])
def test_without_a_usable_key_id_the_address_is_counted(headers: dict[str, str]) -> None:
    assert sender_of(headers_of(headers), "192.0.2.7") == "address 192.0.2.7"
    assert sender_of(headers_of(headers), None) == "address ?"


def test_over_the_limit_the_sender_waits_whole_seconds() -> None:
    bucket, _ = limits(rate=0.25, burst=1)
    incoming = headers_of({"Signature": 'keyId="https://peer.example/a",signature="YQ=="'})
    assert retry_after(incoming, "192.0.2.7", bucket) is None
    assert retry_after(incoming, "192.0.2.7", bucket) == ("peer.example", 4)


def test_the_inbox_refuses_a_flooding_sender_before_looking_at_its_body(client, run_db) -> None:
    """Unsigned requests count against the address; once over, a body that would be 413
    is 429 instead: the limit comes before anything of the request is read."""
    headers = {"Content-Type": "application/activity+json"}
    over_the_cap = b" " * 1_000_001
    answers = []
    while 429 not in answers and len(answers) < 1000:
        response = client.post("/inbox", content=over_the_cap, headers=headers)
        answers.append(response.status_code)
    assert answers[-1] == 429 and set(answers[:-1]) == {413}
    assert len(answers) > BURST
    assert response.headers["retry-after"] == "1"
    assert response.text == "too many requests from address testclient; retry in 1 s"
    assert run_db(lambda db: db.fetchval("SELECT count(*) FROM inbox_items")) == 0


# --- the limit as the node's configuration sets it -------------------------------------------


@pytest.fixture
def slow_peers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Set before the node starts: one activity a second from each peer, three at once."""
    monkeypatch.setenv("GRASSROOTS_INBOX_RATE_PER_SECOND", "1")
    monkeypatch.setenv("GRASSROOTS_INBOX_BURST", "3")


def from_peer(client, host: str):
    """A POST as a peer's would be counted (its keyId's host); it is refused after that."""
    return client.post("/inbox", content=b"{}", headers={
        "Content-Type": "application/activity+json",
        "Signature": f'keyId="https://{host}/actor#main-key",signature="YQ=="'})


def test_by_default_a_peer_may_send_twenty_a_second_and_a_hundred_at_once(client) -> None:
    limits = client.app_state["federation"].inbox_limits
    assert (limits.rate, limits.burst) == (20, 100) == (RATE, BURST)
    started, taken = time.monotonic(), 0
    while from_peer(client, "peer.example").status_code != 429 and taken < 1000:
        taken += 1
    # The burst, and what came back at the sustained rate while it was spent.
    assert 100 <= taken <= 100 + 20 * (time.monotonic() - started) + 1


def test_the_limit_follows_the_config_and_retry_after_says_when_to_come_back(
        slow_peers, client, admin) -> None:
    answers = [from_peer(client, "peer.example") for _ in range(4)]
    assert [a.status_code for a in answers[:3]] == [400] * 3  # taken in, then malformed
    busy = answers[3]
    assert busy.status_code == 429
    assert busy.headers["retry-after"] == "1"  # whole seconds: one token comes back in 1 s
    assert busy.text == "too many requests from peer.example; retry in 1 s"
    assert from_peer(client, "other.example").status_code == 400  # its own bucket
    time.sleep(int(busy.headers["retry-after"]))
    assert from_peer(client, "peer.example").status_code == 400  # waited as told: taken in

    page = admin.get("/admin/peers").text
    assert "Each peer may send this node 1 activities a second, and up to 3 at once" in page
    assert "<code>inbox_rate_per_second</code>, <code>inbox_burst</code>" in page


def test_a_busy_peer_is_waited_for_and_gets_everything_later_each_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two real nodes. B takes one activity a second from each peer, four at once. A sends B
    a group and four meetings at once: B answers 429 past its burst, A holds its deliveries
    to B as Retry-After and its back-off say, then delivers the rest; B holds each once."""
    a_port, b_port = free_port("127.0.0.1"), free_port("127.0.0.2")
    initialise(tmp_path / "a", f"http://127.0.0.1:{a_port}")
    initialise(tmp_path / "b", f"http://127.0.0.2:{b_port}")

    def query(name: str, sql: str, params: tuple = ()) -> list[tuple]:
        return [tuple(row) for row in run_on(tmp_path / name,
                                             lambda db: db.fetchall(sql, params))]

    def cli(name: str, *args: str) -> None:
        subprocess.run([sys.executable, "-m", "node.cli", *args, "--data", str(tmp_path / name)],
                       check=True, capture_output=True, timeout=60)

    with serving(tmp_path / "a", "--dev", port=a_port) as (a_url, _):
        monkeypatch.setenv("GRASSROOTS_INBOX_RATE_PER_SECOND", "1")
        monkeypatch.setenv("GRASSROOTS_INBOX_BURST", "4")
        with serving(tmp_path / "b", "--dev", host="127.0.0.2", port=b_port) as (b_url, _):
            cli("b", "peers", "follow", a_url, "--dev")
            wait_for(lambda: query("a", "SELECT follower FROM peers") == [("pending",)],
                     "A to see B's request")
            cli("a", "peers", "approve", f"127.0.0.2:{b_port}")
            wait_for(lambda: query("b", "SELECT following FROM peers") == [("accepted",)],
                     "B to be accepted")
            time.sleep(4)  # B's bucket is full again: four at once, then one a second
            start = (datetime.now(UTC) + timedelta(days=3)).replace(
                minute=0, second=0, microsecond=0, tzinfo=None)
            run_on(tmp_path / "a" / "grassroots.db", lambda db: publish_listing(
                db, draft(name="Patient Circle"), *(EventDraft(
                    title=f"Patient meeting {n}", description="",
                    starts_at=start + timedelta(days=n), duration_minutes=60, timezone="UTC",
                    rrule=None, format=Format.IN_PERSON) for n in range(4))))
            inbox = f"{b_url}/inbox"
            wait_for(lambda: query("a", "SELECT count(*) FROM deliveries WHERE inbox = ?"
                                   " AND last_status = 429 AND state = 'queued'", (inbox,))
                     == [(1,)], "B to answer 429 and A to keep the delivery")
            [(held_until,)] = query("a", "SELECT next_attempt_at FROM deliveries"
                                    " WHERE inbox = ? AND last_status = 429", (inbox,))
            waiting = datetime.fromisoformat(held_until) - datetime.now(UTC)
            assert waiting > timedelta(seconds=20)  # backed off, not hammering B
            assert query("a", "SELECT count(*) FROM deliveries WHERE inbox = ?"
                         " AND state = 'failed'", (inbox,)) == [(0,)]

            wait_for(lambda: query("b", "SELECT count(*) FROM events e JOIN groups g"
                                   " ON g.id = e.group_id WHERE g.name = 'Patient Circle'")
                     == [(4,)], "every meeting on B", timeout=90)
            assert query("a", "SELECT count(*), count(DISTINCT d.activity_id) FROM deliveries d"
                         " JOIN activities a ON a.id = d.activity_id WHERE d.inbox = ?"
                         " AND d.state = 'sent' AND a.type = 'Create'", (inbox,)) == [(5, 5)]
            assert query("b", "SELECT count(*) FROM groups WHERE name = 'Patient Circle'") \
                == [(1,)]
            assert query("b", "SELECT count(DISTINCT title) FROM events WHERE title LIKE"
                         " 'Patient meeting %'") == [(4,)]
