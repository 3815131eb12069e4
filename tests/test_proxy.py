"""Behind a reverse proxy: the client's address and scheme come from the proxy's headers,
and only from a trusted proxy; rate limits count the real client."""
from __future__ import annotations

import asyncio
import ipaddress
import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from node.app import create_app
from node.cli import initialise
from node.config import LOOPBACK, load_config
from node.web.proxy import ProxyHeaders

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
OUTSIDER = ("203.0.113.7", 40000)  # a client on the internet, talking to the node directly
LOCAL_PROXY = ("127.0.0.1", 40001)  # Caddy on the same machine


def seen_by_app(client: tuple[str, int], headers: list[tuple[str, str]],
                trusted=LOOPBACK) -> tuple[tuple[str, int], str]:
    """(client, scheme) as the app behind ProxyHeaders sees a request."""
    seen = {}

    async def app(scope, receive, send) -> None:
        seen.update(scope)

    scope = {"type": "http", "client": client, "scheme": "http", "method": "GET",
             "path": "/", "headers": [(k.lower().encode(), v.encode()) for k, v in headers]}
    asyncio.run(ProxyHeaders(app, trusted)(scope, None, None))
    return seen["client"], seen["scheme"]


def test_headers_from_a_client_that_is_not_a_trusted_proxy_change_nothing():
    forged = [("X-Forwarded-For", "198.51.100.1"), ("X-Forwarded-Proto", "https"),
              ("Forwarded", "for=198.51.100.2;proto=https")]
    assert seen_by_app(OUTSIDER, forged) == (OUTSIDER, "http")
    # With no trusted proxies at all, not even loopback is believed.
    assert seen_by_app(LOCAL_PROXY, forged, trusted=()) == (LOCAL_PROXY, "http")


def test_a_trusted_proxy_names_the_client_and_its_scheme():
    assert seen_by_app(LOCAL_PROXY, [("X-Forwarded-For", "198.51.100.9"),
                                     ("X-Forwarded-Proto", "https")]) == (
        ("198.51.100.9", 0), "https")
    assert seen_by_app(LOCAL_PROXY, [("X-Forwarded-Proto", "https")]) == (LOCAL_PROXY, "https")


def test_what_a_client_wrote_itself_to_the_left_of_its_proxy_is_never_believed():
    # The client sent "X-Forwarded-For: 10.9.9.9, 127.0.0.1"; its proxy appended its address.
    spoofed = [("X-Forwarded-For", "10.9.9.9, 127.0.0.1, 198.51.100.9"),
               ("X-Forwarded-Proto", "https")]
    assert seen_by_app(LOCAL_PROXY, spoofed)[0] == ("198.51.100.9", 0)
    # Two header lines are one list.
    assert seen_by_app(LOCAL_PROXY, [("X-Forwarded-For", "10.9.9.9"),
                                     ("X-Forwarded-For", "198.51.100.9")])[0] == (
        "198.51.100.9", 0)


def test_the_chain_is_walked_past_every_trusted_hop():
    trusted = (*LOOPBACK, ipaddress.ip_network("10.0.0.0/8"))
    chain = [("X-Forwarded-For", "192.0.2.1, 198.51.100.9, 10.0.0.5, 10.0.0.2")]
    assert seen_by_app(LOCAL_PROXY, chain, trusted)[0] == ("198.51.100.9", 0)
    # Every hop trusted: the first one is the client.
    assert seen_by_app(LOCAL_PROXY, [("X-Forwarded-For", "10.0.0.5, 10.0.0.2")],
                       trusted)[0] == ("10.0.0.5", 0)


def test_rfc_7239_forwarded_is_read_when_there_is_no_x_forwarded_for():
    forwarded = [("Forwarded", ('for=192.0.2.60;proto=http;by=203.0.113.43, '
                                'For="[2001:db8:cafe::17]:4711";proto=https'))]
    assert seen_by_app(LOCAL_PROXY, forwarded) == (("2001:db8:cafe::17", 4711), "https")
    # A client's own Forwarded header next to the proxy's X-Forwarded-For is passed over.
    both = [("Forwarded", "for=10.9.9.9;proto=https"), ("X-Forwarded-For", "198.51.100.9")]
    assert seen_by_app(LOCAL_PROXY, both) == (("198.51.100.9", 0), "http")


@pytest.mark.parametrize("value", ["unknown", "_hidden", "not an address", ""])
def test_a_hop_that_cannot_be_read_leaves_the_proxy_as_the_client(value):
    assert seen_by_app(LOCAL_PROXY, [("X-Forwarded-For", value)])[0] == LOCAL_PROXY
    quoted = f'"{value}"'
    assert seen_by_app(LOCAL_PROXY, [("Forwarded", f"for={quoted}")])[0] == LOCAL_PROXY


# The login rate limit, through the real application ---------------------------------

@pytest.fixture
def node(tmp_path: Path) -> Path:
    initialise(tmp_path / "node", "https://node.example.org")
    return tmp_path / "node"


@pytest.fixture
def client_at(node: Path):
    """A TestClient of the real node whose requests come from ``address``."""
    opened: list[TestClient] = []

    def connect(address: tuple[str, int]) -> TestClient:
        client = TestClient(create_app(load_config(node, environ={})),
                            base_url="https://node.example.org", client=address)
        opened.append(client.__enter__())
        return client

    yield connect
    for client in opened:
        client.__exit__(None, None, None)


def failed_login(client: TestClient, n: int, headers: dict[str, str]) -> int:
    """A wrong password for a new address each time (so only the per-client limit counts)."""
    token = CSRF.search(client.get("/login").text).group(1)
    return client.post("/login", data={"email": f"nobody{n}@example.org", "password": "wrong",
                                       "csrf_token": token}, headers=headers).status_code


def failures_until_refused(client: TestClient, headers_for) -> list[int]:
    return [failed_login(client, n, headers_for(n)) for n in range(31)]


def test_a_forged_x_forwarded_for_from_an_untrusted_client_does_not_escape_the_login_limit(
        client_at):
    outsider = client_at(OUTSIDER)
    statuses = failures_until_refused(outsider, lambda n: {
        "X-Forwarded-For": f"198.51.100.{n}", "Forwarded": f"for=192.0.2.{n}"})
    assert statuses == [400] * 30 + [429]


def test_behind_a_trusted_proxy_the_login_limit_counts_each_real_client(client_at):
    proxy = client_at(LOCAL_PROXY)
    # One real client, spoofing a new address to the left of its proxy's each time.
    statuses = failures_until_refused(proxy, lambda n: {
        "X-Forwarded-For": f"10.0.0.{n}, 198.51.100.9"})
    assert statuses == [400] * 30 + [429]
    # Another client behind the same proxy is not held back by the first.
    assert failed_login(proxy, 99, {"X-Forwarded-For": "198.51.100.10"}) == 400
