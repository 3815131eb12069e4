"""The safe fetcher: SSRF guard, origin of fetched documents, size and time limits.

Nothing here leaves the machine. Every fetcher is built with a fake DNS (names
answer from a table, unknown names fail) and with ``Network`` as its inner
transport: loopback goes to a real server on 127.0.0.1, public addresses answer
from an in-memory table without opening a socket, and any other address fails
the test.
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import idna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.addresses import (
    is_public_address,
    normalise_host,
    on_host,
    origin_prefix,
    url_host,
)
from federation.fetch import (
    AP_ACCEPT,
    AS_PROFILE,
    JRD_ACCEPT,
    BadContentType,
    BadStatus,
    BlockedAddress,
    Fetcher,
    FetchError,
    GuardedTransport,
    IdMismatch,
    Timeout,
    TooLarge,
    TooManyRedirects,
    parse_json_document,
    parse_webfinger_handle,
    validate_url,
    webfinger_url,
)

AP = "application/activity+json"
PUBLIC_V4 = "93.184.215.14"
PUBLIC_V6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"

BLOCKED = [
    "127.0.0.1", "127.255.255.254", "0.0.0.0", "10.0.0.1", "172.16.0.1", "172.31.255.255",
    "192.168.1.1", "169.254.169.254", "100.64.0.1", "100.127.255.254", "198.18.0.1",
    "198.19.255.255", "192.0.0.8", "192.0.2.1", "198.51.100.7", "203.0.113.9",
    "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255",
    "::1", "::", "::ffff:127.0.0.1", "::ffff:0.0.0.0", "::ffff:10.0.0.1",
    "::ffff:169.254.169.254", "::ffff:192.168.0.1", "::127.0.0.1", "::10.0.0.1",
    "fc00::1", "fd12:3456:789a::1", "fe80::1", "fec0::1", "ff02::1",
    "64:ff9b::7f00:1", "64:ff9b::808:808", "2002:7f00:1::1", "2002:808:808::1",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001:db8::1", "3fff::1", "100::1",
]
PUBLIC = [PUBLIC_V4, "8.8.8.8", "1.1.1.1", PUBLIC_V6, "2606:4700::1111", "::ffff:8.8.8.8"]


# --- the world the fetcher sees -------------------------------------------------------


class FakeDNS:
    """Names answer from a table, one listed answer per lookup, the last one repeating."""

    def __init__(self, table: dict[str, list[list[str]]] | None = None) -> None:
        self.table = table or {}
        self.lookups: list[str] = []

    def add(self, name: str, *answers: list[str]) -> None:
        self.table[name] = list(answers)

    async def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        answers = self.table.get(host)
        if not answers:
            raise socket.gaierror(socket.EAI_NONAME, "unknown in the test's DNS")
        return answers.pop(0) if len(answers) > 1 else answers[0]


class Network(httpx.AsyncBaseTransport):
    """The fetcher's only way out: loopback is real, public is a table, anything else fails."""

    def __init__(self) -> None:
        self.pages: dict[tuple[str, str], Callable[[], httpx.Response]] = {}
        self.connected: list[str] = []
        self.requests: list[httpx.Request] = []
        self._loopback = httpx.AsyncHTTPTransport()

    def page(self, host: str, path: str, status: int = 200, *, body: dict | None = None,
             headers: dict[str, str] | None = None) -> None:
        def reply() -> httpx.Response:
            return httpx.Response(status, json=body,
                                  headers={"content-type": AP, **(headers or {})})
        self.pages[(host, path)] = reply

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        # The guard must hand over an address it vetted, never a name left to resolve.
        address = ipaddress.ip_address(request.url.host)
        self.connected.append(str(address))
        self.requests.append(request)
        if address.is_loopback and str(address) == "127.0.0.1":
            return await self._loopback.handle_async_request(request)
        if address.is_global and not address.is_multicast:
            reply = self.pages.get((request.headers["host"], request.url.path))
            return reply() if reply else httpx.Response(404)
        raise AssertionError(f"the fetcher tried to connect to {address}")

    async def aclose(self) -> None:
        await self._loopback.aclose()


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": AP})
    drip: bool = False      # one byte a second
    endless: bool = False   # body without end and without a length


def document(url: str, **extra: object) -> Reply:
    return Reply(body=json.dumps({"id": url, "type": "Group", **extra}).encode())


def redirect(location: str, status: int = 302) -> Reply:
    return Reply(status=status, headers={"location": location})


class LocalServer:
    """A tiny HTTP/1.1 server on a free 127.0.0.1 port, one response per connection."""

    def __init__(self) -> None:
        self.routes: dict[str, Reply] = {}
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []
        self.sent_bytes = 0
        self._handlers: set[asyncio.Task] = set()

    async def __aenter__(self) -> LocalServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._server.close()
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    def paths(self) -> list[str]:
        return [path for _, path, _, _ in self.seen]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._handlers.add(asyncio.current_task())
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            method, path, _ = head[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip()
                       for k, _, v in (line.partition(":") for line in head[1:] if line)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.seen.append((method, path, headers, body))
            await self._reply(writer, self.routes.get(path.partition("?")[0], Reply(404, b"", {})))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _reply(self, writer: asyncio.StreamWriter, reply: Reply) -> None:
        lines = [f"HTTP/1.1 {reply.status} X", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in reply.headers.items()]
        if not reply.endless:
            lines.append(f"Content-Length: {len(reply.body)}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        if reply.endless:
            while True:
                writer.write(b" " * 65536)
                await writer.drain()
                self.sent_bytes += 65536
        elif reply.drip:
            for byte in reply.body:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(1)
        else:
            writer.write(reply.body)
            await writer.drain()


def fetcher(network: Network, dns: FakeDNS | None = None, **options) -> Fetcher:
    return Fetcher(resolver=dns or FakeDNS(), transport=network, **options)


def run(coroutine):
    return asyncio.run(coroutine)


def bracketed(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


# --- addresses ------------------------------------------------------------------------


@pytest.mark.parametrize("ip", BLOCKED)
def test_special_purpose_addresses_are_not_public(ip: str) -> None:
    assert not is_public_address(ipaddress.ip_address(ip))


@pytest.mark.parametrize("ip", PUBLIC)
def test_global_unicast_addresses_are_public(ip: str) -> None:
    assert is_public_address(ipaddress.ip_address(ip))


# IANA lists these as not globally reachable; some Python versions call parts of them global.
_NOT_GLOBAL_PER_IANA = [ipaddress.ip_network(net) for net in (
    "192.0.0.0/24", "192.88.99.0/24", "64:ff9b::/96", "64:ff9b:1::/48", "2001::/23", "3fff::/20")]


def independently_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.version == 6 and (ip.sixtofour is not None or ip.teredo is not None or ip.is_site_local):
        return False
    return ip.is_global and not (
        ip.is_multicast or ip.is_reserved or ip.is_private or ip.is_loopback
        or ip.is_link_local or ip.is_unspecified
    ) and not any(ip.version == net.version and ip in net for net in _NOT_GLOBAL_PER_IANA)


@settings(max_examples=3000)
@given(st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6),
                 st.ip_addresses(v=4).map(lambda v4: ipaddress.IPv6Address(f"::ffff:{v4}"))))
def test_is_public_address_agrees_with_ipaddress_properties(ip) -> None:
    assert is_public_address(ip) == independently_public(ip)


_LABEL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789üéñøåçжя",
                 min_size=1, max_size=12)


@given(st.lists(_LABEL, min_size=1, max_size=3),
       st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=6))
def test_normalise_host_makes_case_trailing_dot_and_idn_variants_equal(labels, tld) -> None:
    name = ".".join([*labels, tld])
    a_label = idna.encode(name, uts46=True).decode()
    canonical = normalise_host(name)
    variants = [name.upper(), name + ".", name.upper() + ".", a_label, a_label.upper() + "."]
    assert [normalise_host(v) for v in variants] == [canonical] * len(variants)
    assert canonical == a_label and canonical.isascii() and normalise_host(canonical) == canonical


@pytest.mark.parametrize("host", ["", ".", "a..b", "-a.example", "a b.example", "a/b.example",
                                  "127.1", "0x7f000001", "2130706433", "a." * 130 + "com",
                                  "xn--zz-.example"])
def test_normalise_host_refuses_invalid_and_disguised_numeric_hosts(host: str) -> None:
    with pytest.raises(ValueError):
        normalise_host(host)


# --- URLs -----------------------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "data:application/activity+json,{}", "file:///etc/passwd", "ftp://peer.example/x",
    "gopher://peer.example/", "javascript:alert(1)", "//peer.example/x", "peer.example/x",
    "https://user:pw@peer.example/x", "https:///x", "https://peer.example:99999/x",
    "https://peer.example/" + "x" * 2048,
])
def test_urls_other_than_plain_https_are_refused(url: str) -> None:
    network = Network()
    with pytest.raises(FetchError):
        run(fetcher(network).get_json(url))
    assert network.connected == []


def test_http_is_refused_unless_private_addresses_are_allowed() -> None:
    with pytest.raises(FetchError, match="scheme 'http'"):
        validate_url("http://peer.example/actor", allow_private=False)
    assert str(validate_url("http://peer.example/actor", allow_private=True)) == \
        "http://peer.example/actor"


def test_validate_url_normalises_the_host() -> None:
    assert validate_url("https://Bücher.Example./a?b=1", allow_private=False).raw_host == \
        b"xn--bcher-kva.example"


# --- the guard ------------------------------------------------------------------------


@pytest.mark.parametrize("ip", BLOCKED)
def test_literal_non_public_address_is_refused_before_connecting(ip: str) -> None:
    network = Network()
    with pytest.raises(BlockedAddress):
        run(fetcher(network).get_json(f"https://{bracketed(ip)}/actor"))
    assert network.connected == []


@pytest.mark.parametrize("ip", BLOCKED)
def test_name_resolving_to_non_public_address_is_refused_before_connecting(ip: str) -> None:
    network, dns = Network(), FakeDNS()
    dns.add("evil.example", [ip])
    with pytest.raises(BlockedAddress):
        run(fetcher(network, dns).get_json("https://evil.example/actor"))
    assert network.connected == [] and dns.lookups == ["evil.example"]


@pytest.mark.parametrize("private", ["127.0.0.1", "10.0.0.1", "::1", "::ffff:127.0.0.1"])
def test_name_resolving_to_one_public_and_one_private_address_is_refused(private: str) -> None:
    network, dns = Network(), FakeDNS()
    dns.add("mixed.example", [PUBLIC_V4, private])
    with pytest.raises(BlockedAddress):
        run(fetcher(network, dns).get_json("https://mixed.example/actor"))
    assert network.connected == []


def test_connection_goes_to_the_vetted_address_with_the_name_in_host_and_sni() -> None:
    network, dns = Network(), FakeDNS()
    dns.add("peer.example", [PUBLIC_V6])
    network.page("peer.example", "/actor", body={"id": "https://peer.example/actor"})
    fetched = run(fetcher(network, dns).get_json("https://Peer.Example./actor"))
    assert fetched.final_url == "https://peer.example/actor"
    assert network.connected == [PUBLIC_V6]
    sent = network.requests[0]
    assert sent.headers["host"] == "peer.example"
    assert sent.extensions["sni_hostname"] == "peer.example"
    assert sent.headers["accept"] == AP_ACCEPT


def test_an_idn_host_is_resolved_and_sent_in_its_ascii_form() -> None:
    network, dns = Network(), FakeDNS()
    dns.add("xn--bcher-kva.example", [PUBLIC_V4])
    network.page("xn--bcher-kva.example", "/g", body={"id": "https://BÜCHER.example/g"})
    fetched = run(fetcher(network, dns).get_json("https://bücher.example/g"))
    assert dns.lookups == ["xn--bcher-kva.example"]
    assert network.requests[0].extensions["sni_hostname"] == "xn--bcher-kva.example"
    assert fetched.document["id"] == "https://BÜCHER.example/g"


def test_the_fragment_of_a_key_id_is_not_part_of_the_id_check() -> None:
    network, dns = Network(), FakeDNS()
    dns.add("peer.example", [PUBLIC_V4])
    network.page("peer.example", "/actor", body={"id": "https://peer.example/actor"})
    fetched = run(fetcher(network, dns).get_json("https://peer.example/actor#main-key"))
    assert fetched.final_url == "https://peer.example/actor"


def test_dns_rebinding_to_loopback_is_refused_at_connect_time() -> None:
    network, dns = Network(), FakeDNS()
    dns.add("rebind.example", [PUBLIC_V4], ["127.0.0.1"])
    network.page("rebind.example", "/actor", body={"id": "https://rebind.example/actor"})

    async def twice() -> None:
        async with fetcher(network, dns) as client:
            await client.get_json("https://rebind.example/actor")
            await client.get_json("https://rebind.example/actor")

    with pytest.raises(BlockedAddress, match="127.0.0.1"):
        run(twice())
    assert network.connected == [PUBLIC_V4]


def test_dns_rebinding_between_redirect_hops_is_refused() -> None:
    network, dns = Network(), FakeDNS()
    dns.add("rebind.example", [PUBLIC_V4], ["169.254.169.254"])
    network.page("rebind.example", "/a", 302, headers={"location": "/b"})
    with pytest.raises(BlockedAddress):
        run(fetcher(network, dns).get_json("https://rebind.example/a"))
    assert network.connected == [PUBLIC_V4]


@pytest.mark.parametrize("location", [
    "https://internal.example/actor", "https://127.0.0.1/actor", "https://[::ffff:10.0.0.1]/",
    "http://peer.example/actor", "file:///etc/passwd", "data:application/activity+json,{}",
])
def test_redirect_to_a_private_address_or_other_scheme_is_refused(location: str) -> None:
    network, dns = Network(), FakeDNS()
    dns.add("peer.example", [PUBLIC_V4])
    dns.add("internal.example", ["10.0.0.5"])
    network.page("peer.example", "/actor", 302, headers={"location": location})
    with pytest.raises(FetchError):
        run(fetcher(network, dns).get_json("https://peer.example/actor"))
    assert network.connected == [PUBLIC_V4]


def test_guarded_transport_refuses_even_when_the_url_was_never_validated() -> None:
    network, dns = Network(), FakeDNS()
    dns.add("evil.example", ["10.1.2.3"])

    async def go(url: str) -> None:
        guarded = GuardedTransport(network, dns, allow_private=False)
        async with httpx.AsyncClient(transport=guarded) as client:
            await client.get(url)

    for url in ("http://127.0.0.1/", "https://[::1]/", "https://evil.example/"):
        with pytest.raises(BlockedAddress):
            run(go(url))
    assert network.connected == []


def test_unknown_name_is_a_fetch_error() -> None:
    network = Network()
    with pytest.raises(FetchError, match="cannot resolve"):
        run(fetcher(network).get_json("https://nowhere.example/actor"))
    assert network.connected == []


# --- documents from a real server on loopback (development mode) ----------------------


def fetch_from(setup: Callable[[LocalServer], str], **options) -> tuple[LocalServer, object]:
    """Start a local server, let ``setup`` add routes and pick a URL, fetch it (or the error)."""
    async def go():
        network = Network()
        async with LocalServer() as server:
            url = setup(server)
            async with fetcher(network, allow_private=True, **options) as client:
                try:
                    result = await client.get_json(url)
                except FetchError as error:
                    result = error
            assert set(network.connected) <= {"127.0.0.1"}
            return server, result
    return run(go())


def test_an_activitystreams_document_whose_id_is_its_url_is_fetched() -> None:
    def setup(server: LocalServer) -> str:
        server.routes["/groups/tea"] = document(f"{server.base}/groups/tea")
        return f"{server.base}/groups/tea"

    server, fetched = fetch_from(setup)
    assert fetched.document["type"] == "Group"
    assert fetched.final_url == f"{server.base}/groups/tea"
    assert server.seen[0][2]["accept"] == AP_ACCEPT


def test_ld_json_with_the_activitystreams_profile_is_accepted() -> None:
    def setup(server: LocalServer) -> str:
        reply = document(f"{server.base}/a")
        reply.headers = {"content-type": f'application/ld+json; profile="{AS_PROFILE}"'}
        server.routes["/a"] = reply
        return f"{server.base}/a"

    assert fetch_from(setup)[1].document["id"].endswith("/a")


@pytest.mark.parametrize("content_type", ["text/html", "application/json", "application/ld+json",
                                          "text/plain; x=application/activity+json", ""])
def test_wrong_content_types_are_refused(content_type: str) -> None:
    def setup(server: LocalServer) -> str:
        reply = document(f"{server.base}/a")
        reply.headers = {"content-type": content_type}
        server.routes["/a"] = reply
        return f"{server.base}/a"

    assert isinstance(fetch_from(setup)[1], BadContentType)


def test_a_document_whose_id_is_not_its_url_is_refused() -> None:
    def setup(server: LocalServer) -> str:
        server.routes["/groups/tea"] = document("https://victim.example/groups/tea")
        return f"{server.base}/groups/tea"

    assert isinstance(fetch_from(setup)[1], IdMismatch)


def test_after_a_redirect_the_document_must_carry_the_final_url_as_id() -> None:
    def setup(server: LocalServer) -> str:
        server.routes["/old"] = redirect("/new", 301)
        server.routes["/new"] = document(f"{server.base}/new")
        return f"{server.base}/old"

    server, fetched = fetch_from(setup)
    assert fetched.final_url == f"{server.base}/new"
    assert server.paths() == ["/old", "/new"]


def test_after_a_redirect_a_document_carrying_the_first_url_as_id_is_refused() -> None:
    def setup(server: LocalServer) -> str:
        server.routes["/old"] = redirect("/new")
        server.routes["/new"] = document(f"{server.base}/old")
        return f"{server.base}/old"

    assert isinstance(fetch_from(setup)[1], IdMismatch)


def test_three_redirects_are_followed_and_a_fourth_is_refused() -> None:
    def chain(length: int) -> Callable[[LocalServer], str]:
        def setup(server: LocalServer) -> str:
            for hop in range(length):
                server.routes[f"/{hop}"] = redirect(f"/{hop + 1}", 307)
            server.routes[f"/{length}"] = document(f"{server.base}/{length}")
            return f"{server.base}/0"
        return setup

    assert fetch_from(chain(3))[1].final_url.endswith("/3")
    server, error = fetch_from(chain(4))
    assert isinstance(error, TooManyRedirects)
    assert server.paths() == ["/0", "/1", "/2", "/3"]


def test_a_redirect_loop_is_refused() -> None:
    def setup(server: LocalServer) -> str:
        server.routes["/a"] = redirect(f"{server.base}/b")
        server.routes["/b"] = redirect("/a")
        return f"{server.base}/a"

    server, error = fetch_from(setup)
    assert isinstance(error, TooManyRedirects) and "loop" in error.reason
    assert server.paths() == ["/a", "/b"]


def test_a_declared_length_over_the_cap_is_refused() -> None:
    def setup(server: LocalServer) -> str:
        server.routes["/big"] = Reply(body=b" " * 200_000)
        return f"{server.base}/big"

    assert isinstance(fetch_from(setup, max_bytes=100_000)[1], TooLarge)


def test_an_endless_body_stops_being_read_at_the_cap() -> None:
    def setup(server: LocalServer) -> str:
        server.routes["/endless"] = Reply(endless=True)
        return f"{server.base}/endless"

    started = time.monotonic()
    server, error = fetch_from(setup, max_bytes=100_000, deadline=10)
    assert isinstance(error, TooLarge)
    assert time.monotonic() - started < 5


def test_a_body_dripping_one_byte_a_second_fails_at_the_total_deadline() -> None:
    def setup(server: LocalServer) -> str:
        reply = document(f"{server.base}/slow")
        reply.drip = True
        server.routes["/slow"] = reply
        return f"{server.base}/slow"

    started = time.monotonic()
    error = fetch_from(setup, deadline=1.5)[1]
    elapsed = time.monotonic() - started
    assert isinstance(error, Timeout)
    assert 1.4 < elapsed < 3


@pytest.mark.parametrize("body", [b"[" * 10_000 + b"]" * 10_000,
                                  b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
                                  b'{"a":' + b"[" * 65 + b"]" * 65 + b"}"])
def test_deeply_nested_json_is_a_clean_fetch_error(body: bytes) -> None:
    def setup(server: LocalServer) -> str:
        server.routes["/deep"] = Reply(body=body)
        return f"{server.base}/deep"

    error = fetch_from(setup)[1]
    assert isinstance(error, FetchError) and "nested" in error.reason


def test_nesting_inside_strings_does_not_count() -> None:
    text = '{"id": "x", "note": "' + "[" * 1000 + '\\"{{{{"}'
    assert parse_json_document(text.encode())["note"].startswith("[[[")
    assert parse_json_document(b'{"a":' + b"[" * 63 + b"]" * 63 + b"}")


@pytest.mark.parametrize("body", [b'{"id": "caf\xe9"}', b"\xff\xfe{\x00}\x00", b"[1, 2]",
                                  b'{"a": NaN}', b'{"a": ' + b"9" * 5000 + b"}", b"{"])
def test_bodies_that_are_not_a_utf8_json_object_are_a_clean_fetch_error(body: bytes) -> None:
    def setup(server: LocalServer) -> str:
        server.routes["/bad"] = Reply(body=body)
        return f"{server.base}/bad"

    assert type(fetch_from(setup)[1]) is FetchError


def test_a_missing_document_is_a_bad_status_carrying_the_status() -> None:
    def setup(server: LocalServer) -> str:
        server.routes["/gone"] = Reply(status=410)
        return f"{server.base}/gone"

    error = fetch_from(setup)[1]
    assert isinstance(error, BadStatus) and error.status == 410


def test_a_compressed_body_we_did_not_ask_for_is_refused() -> None:
    def setup(server: LocalServer) -> str:
        reply = document(f"{server.base}/z")
        reply.headers["content-encoding"] = "gzip"
        server.routes["/z"] = reply
        return f"{server.base}/z"

    server, error = fetch_from(setup)
    assert isinstance(error, FetchError) and "encoding" in error.reason
    assert server.seen[0][2]["accept-encoding"] == "identity"


def test_a_name_resolving_to_loopback_is_fetched_in_development_with_its_host_header() -> None:
    dns = FakeDNS()
    dns.add("dev.test", ["127.0.0.1"])

    def setup(server: LocalServer) -> str:
        server.routes["/actor"] = document(f"http://dev.test:{server.port}/actor")
        return f"http://dev.test:{server.port}/actor"

    server, fetched = fetch_from(setup, dns=dns)
    assert fetched.final_url == f"http://dev.test:{server.port}/actor"
    assert server.seen[0][2]["host"] == f"dev.test:{server.port}"


def test_webfinger_documents_are_fetched_as_jrd_without_an_id_check() -> None:
    async def go():
        async with LocalServer() as server:
            server.routes["/.well-known/webfinger"] = Reply(
                body=b'{"subject": "acct:tea@127.0.0.1", "links": []}',
                headers={"content-type": "application/jrd+json; charset=utf-8"})
            async with fetcher(Network(), allow_private=True) as client:
                url = f"{server.base}/.well-known/webfinger?resource=acct:tea@127.0.0.1"
                jrd = await client.get_json(url, accept=JRD_ACCEPT)
                with pytest.raises(BadContentType):
                    await client.get_json(url)
                return jrd

    assert run(go()).document["subject"] == "acct:tea@127.0.0.1"


class HeaderAuth(httpx.Auth):
    def auth_flow(self, request: httpx.Request):
        request.headers["signature"] = f"signed {request.method} {request.url.path}"
        yield request


def test_post_delivers_the_body_signed_and_does_not_follow_redirects() -> None:
    async def go():
        async with LocalServer() as server:
            server.routes["/inbox"] = Reply(status=202, body=b"accepted" * 10_000,
                                            headers={"retry-after": "5"})
            server.routes["/moved"] = redirect("/inbox", 307)
            async with fetcher(Network(), allow_private=True) as client:
                accepted = await client.post(f"{server.base}/inbox", b'{"type": "Follow"}',
                                             {"content-type": AP}, auth=HeaderAuth())
                moved = await client.post(f"{server.base}/moved", b"{}", {"content-type": AP})
            return server, accepted, moved

    server, accepted, moved = run(go())
    assert accepted.status == 202 and accepted.headers["retry-after"] == "5"
    assert len(accepted.body) <= 4096
    method, path, headers, body = server.seen[0]
    assert (method, path, body) == ("POST", "/inbox", b'{"type": "Follow"}')
    assert headers["signature"] == "signed POST /inbox"
    assert moved.status == 307 and server.paths() == ["/inbox", "/moved"]


def test_post_to_a_private_address_is_refused_without_development_mode() -> None:
    network = Network()
    with pytest.raises(BlockedAddress):
        run(fetcher(network).post("https://10.0.0.1/inbox", b"{}", {}))
    assert network.connected == []


# --- WebFinger handles ----------------------------------------------------------------


@pytest.mark.parametrize("handle", [
    "u@host:1234/x?y#", "u@host:1234", "u@host/x", "u@host?x", "u@host#x", "u@@host",
    "u@a@host", "u", "@host", "u@", "u@[::1]", "u v@host", "u@ho st", "u@127.1",
    "../u@host", "u%40x@host",
])
def test_malformed_webfinger_handles_are_refused(handle: str) -> None:
    with pytest.raises(FetchError):
        parse_webfinger_handle(handle)


@pytest.mark.parametrize("handle,expected", [
    ("tea@peer.example", ("tea", "peer.example")),
    ("@tea@Peer.Example.", ("tea", "peer.example")),
    ("acct:tea@bücher.example", ("tea", "xn--bcher-kva.example")),
])
def test_webfinger_handles_give_user_and_normalised_host(handle: str, expected) -> None:
    assert parse_webfinger_handle(handle) == expected


def test_webfinger_url_asks_the_host_about_the_account() -> None:
    url = httpx.URL(webfinger_url("tea", "peer.example"))
    assert (url.scheme, url.host, url.path) == ("https", "peer.example", "/.well-known/webfinger")
    assert url.params["resource"] == "acct:tea@peer.example"


# --- origin checks without parsing -------------------------------------------------

_URL_PARTS = st.sampled_from(["http://", "https://", "HTTP://", "http:/", "ftp://", "//", ""])
_URL_TEXT = st.lists(st.sampled_from([*"ab.:/?#@[]%\\ 1é\x00\x7f", "xn--", "::1", "80"]),
                     max_size=16).map("".join)


@settings(max_examples=2000)
@given(actor_scheme=_URL_PARTS, actor_rest=_URL_TEXT, scheme=_URL_PARTS, rest=_URL_TEXT)
def test_a_url_sharing_the_actors_prefix_is_on_the_actors_host_as_url_host_says(
        actor_scheme: str, actor_rest: str, scheme: str, rest: str) -> None:
    actor = actor_scheme + actor_rest
    try:
        host = url_host(actor)
    except ValueError:
        return  # the inbox refuses such an actor before any id is compared
    prefix = origin_prefix(actor)
    for url in (scheme + rest, (prefix or "") + rest, actor + rest):
        try:
            expected: bool | None = url_host(url) == host
        except ValueError:
            expected = None
        try:
            answer: bool | None = on_host(url, host, prefix)
        except ValueError:
            answer = None
        # The prefix may only stand in for url_host when url_host agrees; it never turns a
        # refusal into a match (a parseable URL on the prefix is on the same host).
        assert answer == expected or (answer is True and expected is None
                                      and url.startswith(prefix or "\0")), (actor, url)


def test_the_origin_prefix_ends_at_the_first_slash_after_the_authority() -> None:
    assert origin_prefix("https://peer.example:8443/groups/a") == "https://peer.example:8443/"
    assert origin_prefix("https://peer.example") is None
    assert origin_prefix("peer.example/a") is None
    host = url_host("https://peer.example/groups/a")
    prefix = origin_prefix("https://peer.example/groups/a")
    assert on_host("https://peer.example/activities/1", host, prefix)
    assert not on_host("https://peer.example.evil/activities/1", host, prefix)
    assert not on_host("https://evil.example/https://peer.example/", host, prefix)
    assert on_host("https://PEER.example/x", host, prefix)  # parsed: the same host
    with pytest.raises(ValueError):
        on_host(None, host, prefix)
