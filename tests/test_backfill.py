"""Reading a followed peer's outbox: our outbox's paging both ways, the oldest-first walk
over a real peer larger than the newest-first cap, and its bounds against a hostile one."""
from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.backfill import approve_follower, prepare
from federation import handlers, store
from federation.context import Federation
from federation.documents import Urls
from federation.fetch import Fetcher
from node.cli import initialise
from node.db import Database
from node.domain import EventDraft, GroupDraft
from node.storage import events, groups
from tests.helpers import database, free_port, run_on, serving, wait_for
from tests.test_federation import Node
from tests.test_fetch import PUBLIC_V4, FakeDNS, Network

AP = {"Accept": "application/activity+json"}
BASE = "http://testserver"


# --- our outbox's pages ---------------------------------------------------------------------


def _walk(client, url: str, link: str) -> list[dict[str, Any]]:
    pages = []
    while url:
        response = client.get(url.removeprefix(BASE), headers=AP)
        assert response.status_code == 200, url
        pages.append(response.json())
        url = pages[-1].get(link)
    return pages


def test_outbox_pages_from_the_oldest_through_prev_and_from_the_newest_through_next(
        client, run_db):
    async def publish(db: Database) -> None:
        for n in range(120):
            await store.publish(db, {"id": f"{BASE}/activities/{n}", "type": "Create",
                                     "actor": f"{BASE}/actor",
                                     "object": {"id": f"{BASE}/objects/{n}", "type": "Note"}},
                                "node", [])
            if n % 10 == 0:  # answers to follows are no outbox matter
                await store.publish(db, {"id": f"{BASE}/activities/accept-{n}",
                                         "type": "Accept"}, "node", [])
    run_db(publish)
    published = [f"{BASE}/activities/{n}" for n in range(120)]

    collection = client.get("/actor/outbox", headers=AP).json()
    assert collection["totalItems"] == 120
    assert collection["first"] == f"{BASE}/actor/outbox?page=1"
    assert collection["last"] == f"{BASE}/actor/outbox?after=0"

    oldest_first = _walk(client, collection["last"], "prev")
    assert [len(p["orderedItems"]) for p in oldest_first] == [50, 50, 20]
    assert "prev" not in oldest_first[-1]  # nothing newer yet
    for page in oldest_first:  # newest first within each page, as every page
        ids = [item["id"] for item in page["orderedItems"]]
        assert ids == sorted(ids, key=published.index, reverse=True)
    assert [i["id"] for p in oldest_first for i in reversed(p["orderedItems"])] == published
    # An after page links back to the older items it follows, when there are any.
    assert "next" not in oldest_first[0]
    assert client.get(oldest_first[1]["next"].removeprefix(BASE), headers=AP).json()[
        "orderedItems"] == oldest_first[0]["orderedItems"]

    newest_first = _walk(client, collection["first"], "next")
    assert [i["id"] for p in newest_first for i in p["orderedItems"]] == published[::-1]
    assert "prev" not in newest_first[0]  # page 1 is the newest
    back = client.get(newest_first[1]["prev"].removeprefix(BASE), headers=AP).json()
    assert back["orderedItems"] == newest_first[0]["orderedItems"]
    assert client.get("/actor/outbox?after=100000", headers=AP).json()["orderedItems"] == []


# --- a real peer with more than the newest-first cap ------------------------------------------

RENAMED = "Lantern Makers Moonlit Circle"
RETITLED = "Retitled by lamplight"


async def _edit_busiest(db: Database) -> tuple[int, int]:
    """After every Create: the group with most meetings renamed and its first meeting
    retitled, so their Updates come later in the outbox; (group id, meeting id)."""
    (group_id,), = await db.fetchall("SELECT group_id FROM events GROUP BY group_id"
                                     " ORDER BY count(*) DESC LIMIT 1")
    group = await groups.get_group_by_id(db, group_id)
    listing = GroupDraft(**{f.name: getattr(group, f.name) for f in fields(GroupDraft)})
    await groups.update_group(db, group_id, replace(listing, name=RENAMED))
    event = (await events.events_of_group(db, group_id))[0]
    series = EventDraft(**{f.name: getattr(event, f.name) for f in fields(EventDraft)})
    await events.update_event(db, event.id, replace(series, title=RETITLED))
    return group_id, event.id


@pytest.fixture(scope="module")
def followed(tmp_path_factory) -> Iterator[tuple[Node, Node, tuple[int, int]]]:
    """A peer whose outbox holds 2,300 Creates (more than the 2,000 the newest-first walk
    reads) and two Updates after them, followed by our node; (peer, ours, edited ids)."""
    tmp = tmp_path_factory.mktemp("backfill")
    peer_port, our_port = free_port("127.0.0.2"), free_port()
    peer_url, our_url = f"http://127.0.0.2:{peer_port}", f"http://127.0.0.1:{our_port}"
    assert prepare(tmp / "peer", peer_url, 300, 2000) == 2300
    edited = run_on(tmp / "peer" / "grassroots.db", _edit_busiest)
    asyncio.run(approve_follower(tmp / "peer" / "grassroots.db", our_url))
    initialise(tmp / "ours", our_url)
    with ExitStack() as stack:
        stack.enter_context(serving(tmp / "peer", "--dev", host="127.0.0.2", port=peer_port))
        peer = Node(tmp / "peer", peer_url, f"127.0.0.2:{peer_port}")
        wait_for(lambda: peer.query("SELECT count(*) FROM listing_changes") == [(0,)],
                 "the peer to publish its edits")
        stack.enter_context(serving(tmp / "ours", "--dev", port=our_port))
        ours = Node(tmp / "ours", our_url, f"127.0.0.1:{our_port}")
        ours.cli("peers", "follow", peer.url, "--dev")
        # The meeting's Update is the outbox's newest item: the walk's last.
        last = f"{peer.url}/events/{edited[1]}"
        wait_for(lambda: _counts(ours, peer.host) == (300, 2000) and ours.query(
            "SELECT title FROM events WHERE ap_id = ?", (last,)) == [(RETITLED,)],
            "every listing on our node, the newest last", timeout=240)
        yield peer, ours, edited


def _counts(node: Node, origin: str) -> tuple[int, int]:
    return node.query("SELECT (SELECT count(*) FROM groups WHERE origin = ?),"
                      " (SELECT count(*) FROM events e JOIN groups g ON g.id = e.group_id"
                      "  WHERE g.origin = ?)", (origin, origin))[0]


def test_every_listing_of_a_large_peer_arrives_each_meeting_with_its_group(followed):
    peer, ours, _ = followed
    assert peer.query("SELECT count(*) FROM activities WHERE type = 'Create'") == [(2300,)]
    theirs = {(f"{peer.url}/groups/{slug}", title, starts_at) for slug, title, starts_at in
              peer.query("SELECT g.slug, e.title, e.starts_at FROM events e"
                         " JOIN groups g ON g.id = e.group_id")}
    mine = set(ours.query("SELECT g.ap_id, e.title, e.starts_at FROM events e"
                          " JOIN groups g ON g.id = e.group_id WHERE g.origin = ?",
                          (peer.host,)))
    assert mine == theirs
    assert {r[0] for r in ours.query("SELECT name FROM groups WHERE origin = ?",
                                     (peer.host,))} \
        == {r[0] for r in peer.query("SELECT name FROM groups")}
    # Taken as the peer sent them: nothing was fetched again from the peer.
    assert ours.query("SELECT count(*) FROM fetch_failures") == [(0,)]
    assert ours.query("SELECT following FROM peers WHERE host = ?", (peer.host,)) \
        == [("accepted",)]


def test_an_update_later_in_the_outbox_wins_over_its_create(followed):
    peer, ours, (group_id, event_id) = followed
    slug = peer.query("SELECT slug FROM groups WHERE id = ?", (group_id,))[0][0]
    assert ours.query("SELECT name FROM groups WHERE ap_id = ?",
                      (f"{peer.url}/groups/{slug}",)) == [(RENAMED,)]
    assert ours.query("SELECT title FROM events WHERE ap_id = ?",
                      (f"{peer.url}/events/{event_id}",)) == [(RETITLED,)]
    page = httpx.get(f"{ours.url}/groups", params={"q": "lantern moonlit"}).text
    assert RENAMED in page and f"listed by <strong>{peer.host}</strong>" in page


# --- a hostile outbox ------------------------------------------------------------------------


def _backfill(tmp: Path, network: Network, dns: FakeDNS, following: str = "accepted") -> int:
    """Our node's backfill from peer.example, a peer it follows (``following``)."""
    initialise(tmp, "https://ours.example")

    async def work() -> int:
        db = database(tmp / "grassroots.db")
        await db.open()
        try:
            await store.save_peer(db, "peer.example", "https://peer.example/actor",
                                  "https://peer.example/inbox", "https://peer.example/outbox")
            await store.set_following(db, "peer.example", following)
            async with Fetcher(resolver=dns, transport=network) as fetcher:
                return await handlers.backfill(Federation(db, fetcher,
                                                          Urls("https://ours.example")),
                                               "https://peer.example/outbox", "peer.example")
        finally:
            await db.close()
    return asyncio.run(work())


def _oldest_page(network: Network, path: str, prev: str | None) -> None:
    body: dict[str, Any] = {
        "id": f"https://peer.example{path}", "type": "OrderedCollectionPage",
        "orderedItems": [{"id": f"https://elsewhere.example/activities{path}",
                          "type": "Create", "actor": "https://elsewhere.example/groups/x"}]}
    if prev:
        body["prev"] = prev
    network.page("peer.example", path, body=body)


def _collection(network: Network, last: str) -> None:
    network.page("peer.example", "/outbox", body={
        "id": "https://peer.example/outbox", "type": "OrderedCollection",
        "first": "https://peer.example/outbox/newest", "last": last})


def _network() -> tuple[Network, FakeDNS]:
    network, dns = Network(), FakeDNS()
    dns.add("peer.example", [PUBLIC_V4])
    dns.add("elsewhere.example", [PUBLIC_V4])
    return network, dns


@pytest.mark.parametrize("off_host", ["last", "prev"])
def test_an_oldest_first_walk_never_follows_a_page_off_the_peers_host(tmp_path: Path,
                                                                       off_host: str):
    network, dns = _network()
    elsewhere = "https://elsewhere.example/outbox/0"
    _collection(network, elsewhere if off_host == "last" else "https://peer.example/outbox/0")
    _oldest_page(network, "/outbox/0", elsewhere)
    assert _backfill(tmp_path, network, dns) == 0  # and its item from elsewhere is not applied
    hosts = [r.headers["host"] for r in network.requests]
    assert hosts == ["peer.example"] * (1 if off_host == "last" else 2)
    assert [r.url.path for r in network.requests][1:] == (
        [] if off_host == "last" else ["/outbox/0"])


def test_an_oldest_first_walk_that_pages_forever_stops_at_the_page_cap(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(handlers, "MAX_OLDEST_FIRST_PAGES", 7)
    network, dns = _network()
    _collection(network, "https://peer.example/outbox/0")
    for n in range(50):
        _oldest_page(network, f"/outbox/{n}", f"https://peer.example/outbox/{n + 1}")
    _backfill(tmp_path, network, dns)
    assert len(network.requests) == 1 + 7


def test_an_oldest_first_walk_stops_when_its_time_is_up(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(handlers, "BACKFILL_SECONDS", -1.0)
    network, dns = _network()
    _collection(network, "https://peer.example/outbox/0")
    _oldest_page(network, "/outbox/0", None)
    _backfill(tmp_path, network, dns)
    assert [r.url.path for r in network.requests] == ["/outbox"]


def test_an_oldest_first_walk_reads_a_page_once_when_prev_leads_back(tmp_path: Path):
    network, dns = _network()
    _collection(network, "https://peer.example/outbox/0")
    _oldest_page(network, "/outbox/0", "https://peer.example/outbox/1")
    _oldest_page(network, "/outbox/1", "https://peer.example/outbox/0")
    _backfill(tmp_path, network, dns)
    assert [r.url.path for r in network.requests] == ["/outbox", "/outbox/0", "/outbox/1"]


def test_an_oldest_first_walk_stops_once_the_peer_is_no_longer_followed(tmp_path: Path):
    network, dns = _network()
    _collection(network, "https://peer.example/outbox/0")
    _oldest_page(network, "/outbox/0", "https://peer.example/outbox/1")
    _oldest_page(network, "/outbox/1", None)
    _backfill(tmp_path, network, dns, following="none")
    assert [r.url.path for r in network.requests] == ["/outbox"]
