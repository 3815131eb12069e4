"""Fetching attacks (SSRF) in-process: links a peer's own documents give must not reach
private places. An injected resolver and transport (tests/test_fetch.py) refuse before any
connection; no packet leaves the process. Counted in the attack tally.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from federation.context import Federation
from federation.documents import Urls
from federation.fetch import JRD_ACCEPT, Fetcher, FetchError
from federation.handlers import MAX_BACKFILL_PAGES, backfill
from node.cli import initialise
from tests.attacks import TALLY, report_tally
from tests.helpers import database
from tests.test_fetch import PUBLIC_V4, FakeDNS, Network


@pytest.fixture(scope="module", autouse=True)
def tally(request: pytest.FixtureRequest) -> None:
    report_tally(request.config)


# --- fetching (SSRF): in-process, injected resolver and transport ---------------------------


def _with_federation(tmp: Path, fetcher: Fetcher, work: Callable[[Federation], Any]) -> Any:
    initialise(tmp, "https://ours.example")
    return asyncio.run(_federating(tmp, fetcher, work))


async def _federating(tmp: Path, fetcher: Fetcher, work: Callable[[Federation], Any]) -> Any:
    db = database(tmp / "grassroots.db")
    await db.open()
    try:
        async with fetcher:
            return await work(Federation(db, fetcher, Urls("https://ours.example")))
    finally:
        await db.close()


def _page(network: Network, path: str, next_url: str | None, items: int = 0) -> None:
    body: dict[str, Any] = {"id": f"https://peer.example{path}", "type": "OrderedCollectionPage",
                            "orderedItems": [{"id": f"https://peer.example{path}/{i}",
                                              "type": "Like"} for i in range(items)]}
    if next_url is not None:
        body["next"] = next_url
    network.page("peer.example", path, body=body)


NEXT_URLS = {
    "next on a private address": "https://10.0.0.1/outbox/2",
    "next on the metadata address": "https://169.254.169.254/latest/meta-data/",
    "next on loopback v6": "https://[::1]/outbox/2",
    "next on a mapped v4 address": "https://[::ffff:127.0.0.1]/outbox/2",
    "next hiding a private address behind userinfo": "https://peer.example@10.0.0.1/x",
    "next on a name resolving privately": "https://internal.example/outbox/2",
    "next on another host": "https://elsewhere.example/outbox/2",
    "next as a data: URL": "data:application/activity+json,{}",
    "next as a file: URL": "file:///etc/passwd",
    "next over plain http": "http://peer.example/outbox/2",
    "next on the peer's name, rebound to loopback": "https://peer.example/outbox/2",
}


@pytest.mark.parametrize("name", NEXT_URLS)
def test_an_outbox_next_link_never_reaches_a_private_address(tmp_path: Path, name: str) -> None:
    network, dns = Network(), FakeDNS()
    rebinding = "rebound" in name
    dns.add("peer.example", [PUBLIC_V4], *([[PUBLIC_V4], ["127.0.0.1"]] if rebinding else []))
    dns.add("internal.example", ["10.9.8.7"])
    dns.add("elsewhere.example", [PUBLIC_V4])
    network.page("peer.example", "/outbox", body={"id": "https://peer.example/outbox",
                                                  "type": "OrderedCollection",
                                                  "first": "https://peer.example/outbox/1"})
    _page(network, "/outbox/1", NEXT_URLS[name])
    _page(network, "/outbox/2", None)
    fetcher = Fetcher(resolver=dns, transport=network)
    with TALLY.trying("fetching", f"outbox {name}", outcome="not fetched"):
        applied = _with_federation(tmp_path / "node", fetcher, lambda fed: backfill(
            fed, "https://peer.example/outbox", "peer.example"))
        assert applied == 0
        assert network.connected == [PUBLIC_V4, PUBLIC_V4]  # the outbox and its first page


def test_an_outbox_that_pages_forever_stops_at_the_page_cap(tmp_path: Path) -> None:
    network, dns = Network(), FakeDNS()
    dns.add("peer.example", [PUBLIC_V4])
    network.page("peer.example", "/outbox", body={"id": "https://peer.example/outbox",
                                                  "type": "OrderedCollection",
                                                  "first": "https://peer.example/outbox/1"})
    for n in range(1, 100):
        _page(network, f"/outbox/{n}", f"https://peer.example/outbox/{n + 1}")
    fetcher = Fetcher(resolver=dns, transport=network)
    with TALLY.trying("fetching", "an outbox that pages forever (in-process)",
                      outcome=f"stopped after {MAX_BACKFILL_PAGES} pages"):
        _with_federation(tmp_path / "node", fetcher, lambda fed: backfill(
            fed, "https://peer.example/outbox", "peer.example"))
        assert len(network.requests) == 1 + MAX_BACKFILL_PAGES


DISCOVERED = {
    "NodeInfo link to the metadata address": "https://169.254.169.254/nodeinfo/2.1",
    "NodeInfo link to a name resolving privately": "https://internal.example/nodeinfo/2.1",
    "NodeInfo link over plain http": "http://peer.example/nodeinfo/2.1",
    "NodeInfo link to a mapped address": "https://[::ffff:a9fe:a9fe]/nodeinfo",
    "NodeInfo link to a disguised loopback (decimal)": "https://2130706433/nodeinfo",
    "NodeInfo link to a disguised loopback (hex)": "https://0x7f000001/nodeinfo",
    "NodeInfo link to a disguised loopback (octal)": "https://0177.0.0.1/nodeinfo",
    "NodeInfo link to a disguised loopback (short)": "https://127.1/nodeinfo",
    "NodeInfo link to an IPv6 zone": "https://[fe80::1%25eth0]/nodeinfo",
    "NodeInfo link to NAT64 loopback": "https://[64:ff9b::7f00:1]/nodeinfo",
    "NodeInfo link as a data: URL": "data:application/json,{}",
    "WebFinger self link to a ULA address": "https://[fd00::1]/users/x",
    "WebFinger self link to 6to4 loopback": "https://[2002:7f00:1::1]/users/x",
    "WebFinger self link to Teredo": "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/u",
    "WebFinger self link to CGNAT": "https://100.64.0.1/users/x",
    "WebFinger self link to a benchmarking address": "https://198.18.0.1/users/x",
}


@pytest.mark.parametrize("name", DISCOVERED)
def test_links_in_a_peers_discovery_documents_are_not_followed_to_private_places(
        name: str) -> None:
    network, dns = Network(), FakeDNS()
    dns.add("peer.example", [PUBLIC_V4])
    dns.add("internal.example", ["10.1.1.1"])
    link = DISCOVERED[name]
    network.page("peer.example", "/.well-known/nodeinfo",
                 body={"links": [{"rel": "http://nodeinfo.diaspora.software/ns/schema/2.1",
                                  "href": link}]},
                 headers={"content-type": "application/json"})

    async def go() -> None:
        async with Fetcher(resolver=dns, transport=network) as fetcher:
            found = await fetcher.get_json("https://peer.example/.well-known/nodeinfo",
                                           accept=JRD_ACCEPT, require_id=False)
            with pytest.raises(FetchError):
                await fetcher.get_json(found.document["links"][0]["href"], require_id=False)

    with TALLY.trying("fetching", name, outcome="not fetched"):
        asyncio.run(go())
        assert network.connected == [PUBLIC_V4]
        assert dns.lookups in (["peer.example"], ["peer.example", "internal.example"])


