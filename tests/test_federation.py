"""Three real node processes federating over loopback with signed ActivityPub.

A follows B and C; B approves, C rejects; B's demo listings backfill into
A; a meeting created, moved, cancelled and deleted on B follows on A; A
blocks B and B's listings vanish. Along the way every byte B sent to or
served A is checked for member data.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from federation.admission import TTL as ADMITTED_SECONDS
from node.cli import initialise
from node.db import Database
from node.domain import (
    EventDraft,
    Format,
    GroupDraft,
    MembershipStatus,
    OccurrenceChange,
    Visibility,
)
from node.storage import accounts, events, groups
from tests.helpers import (
    draft,
    free_port,
    publish_listing,
    run_on,
    serving,
    set_visibility,
    wait_for,
)

AP = {"Accept": "application/activity+json"}
SECRETS = ("zelda.secretname@example.org", "Zelda Secretname", "private-room-7731")


@dataclass
class Node:
    data: Path
    url: str
    host: str

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "node.cli", *args, "--data", str(self.data)],
            capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Rows of a read of the node's database, running or not."""
        return [tuple(row) for row in self.run(lambda db: db.fetchall(sql, params))]

    def run(self, work: Callable[[Database], Any]) -> Any:
        return run_on(self.data / "grassroots.db", work)


@contextmanager
def node(tmp: Path, name: str, host: str, *extra: str) -> Iterator[Node]:
    port = free_port(host)
    data = tmp / name
    initialise(data, f"http://{host}:{port}")
    with serving(data, "--dev", *extra, host=host, port=port) as (url, _):
        yield Node(data, url, f"{host}:{port}")  # two dev nodes on one address differ by port


@pytest.fixture(scope="module")
def network(tmp_path_factory) -> Iterator[tuple[Node, Node, Node]]:
    tmp = tmp_path_factory.mktemp("federation")
    with ExitStack() as stack:
        a = stack.enter_context(node(tmp, "a", "127.0.0.1"))
        b = stack.enter_context(node(tmp, "b", "127.0.0.2", "--demo"))
        c = stack.enter_context(node(tmp, "c", "127.0.0.3"))
        yield a, b, c


def federated_names(a: Node, origin: str) -> set[str]:
    return {r[0] for r in a.query("SELECT name FROM groups WHERE origin = ?", (origin,))}


def test_follow_approve_reject_and_backfill(network):
    a, b, c = network
    # As the README's walk-through pastes it: approved right away, the request still on its way.
    a.cli("peers", "follow", b.url, "--dev")
    b.cli("peers", "approve", a.host)
    a.cli("peers", "follow", c.url, "--dev")
    wait_for(lambda: c.query("SELECT follower FROM peers WHERE host = ?", (a.host,))
             == [("pending",)], "C to see A's request")
    assert "pending" in c.cli("peers", "list")
    c.cli("peers", "reject", a.host)
    wait_for(lambda: a.query("SELECT following FROM peers WHERE host = ?", (b.host,))
             == [("accepted",)], "A to be accepted by B")
    wait_for(lambda: a.query("SELECT following FROM peers WHERE host = ?", (c.host,))
             == [("rejected",)], "A to be rejected by C")

    public = {r[0] for r in b.query(
        "SELECT name FROM groups WHERE visibility = 'public' AND origin IS NULL")}
    hidden = {r[0] for r in b.query(
        "SELECT name FROM groups WHERE visibility != 'public'")}
    assert len(public) >= 5 and hidden
    wait_for(lambda: federated_names(a, b.host) == public, "B's listings on A")
    assert not federated_names(a, b.host) & hidden
    assert federated_names(a, c.host) == set()

    page = httpx.get(f"{a.url}/groups?origin=federated").text
    assert all(name.replace("'", "&#39;") in page for name in public)
    assert f"listed by <strong>{b.host}</strong>" in page
    # Each peer's last successful delivery and last inbound activity, as the admin sees them.
    header, *rows = [line.split() for line in a.cli("peers", "list").splitlines()
                     if line.startswith(("PEER", b.host))]
    assert header[:6] == ["PEER", "WE", "FOLLOW", "FOLLOWS", "US", "LAST"]
    [(host, following, _, delivered, heard, *_)] = rows
    assert (host, following) == (b.host, "accepted")
    assert delivered.startswith("20") and heard.startswith("20"), rows


def _public_group_id(b: Node) -> int:
    return b.query("SELECT id FROM groups WHERE visibility = 'public' AND origin IS NULL"
                   " ORDER BY id LIMIT 1")[0][0]


def test_meeting_changes_follow_within_seconds(network):
    a, b, _ = network
    group_id = _public_group_id(b)
    start = (datetime.now(UTC) + timedelta(days=3)).replace(
        hour=18, minute=0, second=0, microsecond=0, tzinfo=None)

    async def create(db: Database) -> int:
        member = await accounts.create_account(
            db, email=SECRETS[0], display_name=SECRETS[1], password_hash=None)
        await groups.add_membership(db, group_id, member, MembershipStatus.ACTIVE)
        event_id = await events.create_event(db, group_id, EventDraft(
            title="Federated walk and talk", description="Bring a flask.", starts_at=start,
            duration_minutes=90, timezone="Europe/London", rrule="FREQ=WEEKLY",
            format=Format.HYBRID, place="Community hall", address="1 Main Street",
            online_url=f"https://meet.example/{SECRETS[2]}", capacity=12))
        slot = start.strftime("%Y-%m-%dT%H:%M")
        await events.rsvp_yes(db, event_id, slot, member)
        return event_id

    event_id = b.run(create)
    ap_id = f"{b.url}/events/{event_id}"
    started = time.monotonic()
    wait_for(lambda: a.query("SELECT title FROM events WHERE ap_id = ?", (ap_id,))
             == [("Federated walk and talk",)], "the meeting on A")
    seconds = time.monotonic() - started
    print(f"\nmeeting created on B appeared on A after {seconds:.2f} s")
    assert seconds < 5
    row = a.query("SELECT starts_at, timezone, rrule, capacity, online_url FROM events"
                  " WHERE ap_id = ?", (ap_id,))[0]
    assert row == (start.strftime("%Y-%m-%dT%H:%M"), "Europe/London", "FREQ=WEEKLY", 12, "")

    moved_to = start + timedelta(days=1, hours=1)
    b.run(lambda db: events.change_occurrence(db, event_id, OccurrenceChange(
        start + timedelta(days=7), cancelled=False, starts_at=moved_to + timedelta(days=7))))
    wait_for(lambda: a.query(
        "SELECT x.starts_at FROM event_exceptions x JOIN events e ON e.id = x.event_id"
        " WHERE e.ap_id = ?", (ap_id,)) == [((moved_to + timedelta(days=7))
                                             .strftime("%Y-%m-%dT%H:%M"),)],
        "the moved occurrence on A")

    b.run(lambda db: events.set_cancelled(db, event_id, True))
    wait_for(lambda: a.query("SELECT cancelled FROM events WHERE ap_id = ?", (ap_id,))
             == [(1,)], "the cancellation on A")

    b.run(lambda db: events.delete_event(db, event_id))
    wait_for(lambda: a.query("SELECT count(*) FROM events WHERE ap_id = ?", (ap_id,))
             == [(0,)], "the deletion on A")


def _served_documents(b: Node) -> list[str]:
    """Every ActivityPub document B serves to peers about its public listings."""
    bodies = []
    urls = [f"{b.url}/actor", f"{b.url}/actor/followers", f"{b.url}/actor/following",
            f"{b.url}/.well-known/nodeinfo", f"{b.url}/nodeinfo/2.1"]
    for (slug,) in b.query("SELECT slug FROM groups WHERE origin IS NULL"):
        urls += [f"{b.url}/groups/{slug}", f"{b.url}/groups/{slug}/followers",
                 f"{b.url}/groups/{slug}/outbox?page=1",
                 f"{b.url}/.well-known/webfinger?resource=acct:{slug}@{b.host}"]
    for (event_id,) in b.query("SELECT id FROM events"):
        urls.append(f"{b.url}/events/{event_id}")
    page = f"{b.url}/actor/outbox?page=1"
    while page:
        response = httpx.get(page, headers=AP)
        bodies.append(response.text)
        page = response.json().get("next")
    for url in urls:
        bodies.append(httpx.get(url, headers=AP).text)
    return bodies


def test_no_member_data_leaves_the_node(network):
    """Every activity B queued for any inbox, and every document it serves."""
    a, b, _ = network
    assert b.query("SELECT count(*) FROM accounts WHERE email = ?", (SECRETS[0],)) == [(1,)]
    sent = [body for (body,) in b.query("SELECT body FROM activities")]
    assert sent, "B sent nothing: the capture would prove nothing"
    captured = sent + _served_documents(b)
    emails = [r[0] for r in b.query("SELECT email FROM accounts WHERE email IS NOT NULL")]
    names = [r[0] for r in b.query("SELECT display_name FROM accounts")]
    links = [r[0] for r in b.query("SELECT online_url FROM events WHERE online_url != ''")]
    for body in captured:
        for secret in (*SECRETS, *emails, *links):
            assert secret not in body
        for name in names:
            assert f'"{name}"' not in body
    # What A stored from B carries none of it either.
    dump = "\n".join(json.dumps(row) for table in ("groups", "events", "inbox_items")
                     for row in a.query(f"SELECT * FROM {table}"))
    for secret in SECRETS:
        assert secret not in dump


def _what_members_keep(b: Node) -> list[str]:
    """What B's demo group holds for its members alone: proposed themes not chosen,
    pulse words, resources not made public, a change to the agreements being discussed
    (its new line, reason, comments and objections) and who holds each meeting."""
    agreements = {text for (text,) in b.query("SELECT agreements FROM groups")}
    proposed_lines = [line for (text,) in b.query(
        "SELECT text FROM agreement_proposals WHERE state = 'open'")
        for line in text.splitlines() if line and not any(line in a for a in agreements)]
    return [
        *(theme for (theme,) in b.query(
            "SELECT theme FROM theme_proposals WHERE theme NOT IN"
            " (SELECT theme FROM meeting_themes)")),
        *(word for (word,) in b.query("SELECT word FROM pulse_answers WHERE word != ''")),
        *(text for row in b.query("SELECT title, note FROM group_resources WHERE public = 0")
          for text in row if text),
        *proposed_lines,
        *(reason for (reason,) in b.query("SELECT reason FROM agreement_proposals")),
        *(body for (body,) in b.query("SELECT body FROM agreement_comments")),
        *(reason for (reason,) in b.query("SELECT reason FROM agreement_objections")),
        *(name for (name,) in b.query(
            "SELECT display_name FROM accounts WHERE id IN (SELECT account_id FROM"
            " meeting_holders) OR id IN (SELECT account_id FROM agreement_proposals)")),
    ]


def _anonymous_pages(b: Node) -> dict[str, str]:
    """Every page, calendar, feed and embed B answers an anonymous visitor, per URL,
    each meeting of the demo's member-run group by its own occurrence too."""
    paths = ["/", "/groups", "/events", "/events?view=agenda", "/events.ics", "/feed.atom",
             "/meetings.json", "/embed/meetings.html"]
    for (slug,) in b.query("SELECT slug FROM groups WHERE origin IS NULL"):
        paths += [f"/groups/{slug}", f"/groups/{slug}/resources",
                  f"/groups/{slug}/agreements", f"/groups/{slug}/events.ics",
                  f"/groups/{slug}/meetings.json", f"/groups/{slug}/embed.html",
                  f"/groups/{slug}/flyer"]
    for (event_id,) in b.query("SELECT id FROM events WHERE group_id IN"
                               " (SELECT id FROM groups WHERE origin IS NULL)"):
        paths += [f"/events/{event_id}", f"/events/{event_id}.ics",
                  f"/events/{event_id}/flyer"]
    for event_id, key in b.query(
            "SELECT event_id, occurrence FROM meeting_holders UNION SELECT event_id,"
            " occurrence FROM theme_proposals UNION SELECT event_id, occurrence"
            " FROM pulse_meetings"):
        paths.append(f"/events/{event_id}?on={key}")
    with httpx.Client(base_url=b.url, follow_redirects=True) as visitor:
        return {path: visitor.get(path).text for path in paths}


def test_what_members_keep_in_their_group_stays_with_them(network):
    """The demo's member-run group: only its public theme and public resources show."""
    a, b, _ = network
    kept = _what_members_keep(b)
    assert len(kept) >= 12, kept  # the demo has some of each
    pages = _anonymous_pages(b)
    captured = [body for (body,) in b.query("SELECT body FROM activities")]
    captured += _served_documents(b) + list(pages.values())
    for body in captured:
        for secret in kept:
            assert secret not in body.replace("&#39;", "'"), secret
    # What the group made public does show: the capture would catch the rest.
    [(event_id, key, theme)] = b.query("SELECT event_id, occurrence, theme FROM meeting_themes")
    assert theme in pages[f"/events/{event_id}?on={key}"]
    assert "Samaritans: 116 123" in pages["/groups/sunday-sharing-circle"]
    ap_id = f"{b.url}/events/{event_id}"
    assert theme in httpx.get(ap_id, headers=AP).text
    wait_for(lambda: a.query(
        "SELECT t.theme FROM meeting_themes t JOIN events e ON e.id = t.event_id"
        " WHERE e.ap_id = ?", (ap_id,)) == [(theme,)], "the public theme on A")
    dump = "\n".join(json.dumps(row) for table in ("groups", "events", "inbox_items",
                                                    "meeting_themes")
                     for row in a.query(f"SELECT * FROM {table}"))
    for secret in kept:
        assert secret not in dump, secret


def test_unfollow_removes_listings_and_a_new_follow_brings_them_back(network):
    a, b, _ = network
    listed = federated_names(a, b.host)
    assert listed
    a.cli("peers", "unfollow", b.host)
    assert federated_names(a, b.host) == set()
    wait_for(lambda: b.query("SELECT follower FROM peers WHERE host = ?", (a.host,))
             == [("none",)], "B to see the Undo")
    a.cli("peers", "follow", b.url, "--dev")
    wait_for(lambda: b.query("SELECT follower FROM peers WHERE host = ?", (a.host,))
             == [("pending",)], "B to see the new request")
    b.cli("peers", "approve", a.host)
    wait_for(lambda: federated_names(a, b.host) == listed, "the listings back on A")


def test_loopback_peers_are_refused_without_dev_mode(network):
    a, b, _ = network
    result = subprocess.run(
        [sys.executable, "-m", "node.cli", "peers", "follow", b.url, "--data", str(a.data)],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "could not be followed" in result.stderr or "not a peer address" in result.stderr


def test_a_peer_down_for_a_while_misses_nothing(tmp_path, network):
    """D follows A, goes away, A queues meetings for it; D restarts and gets them all."""
    a, _, _ = network
    host = "127.0.0.4"
    port = free_port(host)
    data = tmp_path / "d"
    initialise(data, f"http://{host}:{port}")
    d = Node(data, f"http://{host}:{port}", f"{host}:{port}")
    with serving(data, "--dev", host=host, port=port):
        d.cli("peers", "follow", a.url, "--dev")
        wait_for(lambda: a.query("SELECT follower FROM peers WHERE host = ?", (d.host,))
                 == [("pending",)], "A to see D's request")
        a.cli("peers", "approve", d.host)
        wait_for(lambda: d.query("SELECT following FROM peers WHERE host = ?", (a.host,))
                 == [("accepted",)], "D to be accepted")
    # D is down now. A publishes a group with three meetings.
    start = (datetime.now(UTC) + timedelta(days=5)).replace(minute=0, second=0, microsecond=0,
                                                            tzinfo=None)

    a.run(lambda db: publish_listing(db, draft(name="Queued Group"), *(EventDraft(
        title=f"Queued meeting {n}", description="", starts_at=start + timedelta(days=n),
        duration_minutes=60, timezone="UTC", rrule=None, format=Format.IN_PERSON)
        for n in range(3))))
    inbox = f"{d.url}/inbox"
    wait_for(lambda: a.query("SELECT count(*) FROM deliveries WHERE inbox = ? AND attempts > 0"
                             " AND state = 'queued'", (inbox,))[0][0] >= 1,
             "A to fail delivering to D")
    with serving(data, "--dev", host=host, port=port):
        wait_for(lambda: d.query("SELECT count(*) FROM events WHERE title LIKE 'Queued meeting%'")
                 == [(3,)], "every queued meeting on D", timeout=90)
    assert a.query("SELECT count(*) FROM deliveries WHERE inbox = ? AND state != 'sent'",
                   (inbox,)) == [(0,)]
    sent = a.query("SELECT count(*), count(DISTINCT activity_id) FROM deliveries"
                   " WHERE inbox = ?", (inbox,))[0]
    assert sent[0] == sent[1]  # never twice to the same inbox


def test_a_group_made_private_leaves_no_copy_on_the_follower(network):
    """Taken back on B: A removes the listing and its meetings and keeps no raw copy."""
    a, b, _ = network
    start = (datetime.now(UTC) + timedelta(days=4)).replace(minute=0, second=0, microsecond=0,
                                                            tzinfo=None)

    group_id, _ = b.run(lambda db: publish_listing(db, draft(name="Retracted Circle"), EventDraft(
        title="Retracted meeting", description="", starts_at=start, duration_minutes=60,
        timezone="UTC", rrule="FREQ=WEEKLY", format=Format.IN_PERSON)))
    wait_for(lambda: a.query("SELECT count(*) FROM events WHERE title = 'Retracted meeting'")
             == [(1,)], "the group and its meeting on A")

    b.run(lambda db: set_visibility(db, group_id, Visibility.PRIVATE))
    wait_for(lambda: "Retracted Circle" not in federated_names(a, b.host), "the Delete on A")
    assert a.query("SELECT count(*) FROM events WHERE title = 'Retracted meeting'") == [(0,)]
    assert a.query("SELECT count(*) FROM occurrences o LEFT JOIN events e ON e.id = o.event_id"
                   " WHERE e.id IS NULL") == [(0,)]
    assert a.query("SELECT count(*) FROM inbox_items WHERE body LIKE '%Retracted%'") == [(0,)]
    assert "Retracted" not in httpx.get(f"{a.url}/groups?origin=federated").text

    # Public again: the group and its meeting are published anew.
    b.run(lambda db: set_visibility(db, group_id, Visibility.PUBLIC))
    wait_for(lambda: a.query("SELECT count(*) FROM events WHERE title = 'Retracted meeting'")
             == [(1,)], "the group and its meeting back on A")


def test_block_purges_listings_and_refuses_the_peer(network):
    a, b, _ = network
    assert federated_names(a, b.host)
    a.cli("peers", "block", b.host)
    assert federated_names(a, b.host) == set()
    time.sleep(ADMITTED_SECONDS + 0.1)  # the running node remembers an admitted peer this long
    before = a.query("SELECT count(*) FROM inbox_items")
    # A change on B is still delivered to A (B does not know), and refused there.
    group_id = _public_group_id(b)

    async def touch(db: Database) -> None:
        group = await groups.get_group_by_id(db, group_id)
        draft = GroupDraft(**{f.name: getattr(group, f.name) for f in fields(GroupDraft)})
        await groups.update_group(db, group_id, replace(draft, summary="Updated summary"))

    b.run(touch)
    wait_for(lambda: b.query(
        "SELECT count(*) FROM deliveries WHERE inbox LIKE ? AND last_status = 403",
        (f"{a.url}%",))[0][0] >= 1, "A to refuse B's delivery")
    assert a.query("SELECT count(*) FROM inbox_items") == before
    assert federated_names(a, b.host) == set()
