"""The client behind a reverse proxy: its address and scheme, from the proxy's headers.

Believed only when the request comes from a trusted proxy (``trusted_proxies``).
The addresses the proxies recorded are read from the right, nearest hop first:
each trusted hop vouches for the one before it, and the first hop that is not
trusted is the client. What a client writes into these headers itself sits to
the left of what its proxy appended, and is never reached. ``X-Forwarded-For``
(with ``X-Forwarded-Proto``) is read when present, as Caddy, nginx, Apache and
Traefik send it; else ``Forwarded`` (RFC 7239). A proxy that sends only
``Forwarded`` must drop any ``X-Forwarded-For`` a client sends.
"""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from node.config import Network

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Hop = tuple[Address | None, int, str | None]  # address (None: unreadable), port, scheme

SCHEMES = ("http", "https")
# An element of a Forwarded header: pairs outside quotes up to the next comma.
ELEMENT = re.compile(r'(?:[^,"]|"(?:[^"\\]|\\.)*")+')
PAIR = re.compile(r'\s*([A-Za-z]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)\s*(?:;|$)')


def _node(text: str) -> tuple[Address | None, int]:
    """An address as proxies write it: 192.0.2.1, 192.0.2.1:4711, [2001:db8::1]:4711."""
    text = text.strip().strip('"')
    port = ""
    if text.startswith("["):
        text, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
    elif text.count(":") == 1:
        text, port = text.split(":")
    try:
        address = ipaddress.ip_address(text)
    except ValueError:  # "unknown", an obfuscated "_name" or rubbish
        return None, 0
    return address, int(port) if port.isdigit() and int(port) < 65536 else 0


def _scheme(text: str | None) -> str | None:
    scheme = (text or "").strip().strip('"').lower()
    return scheme if scheme in SCHEMES else None


def _values(headers: Headers, name: str) -> list[str]:
    return [part.strip() for value in headers.getlist(name) for part in value.split(",")]


def forwarded_hops(headers: Headers) -> list[Hop]:
    """What the proxies recorded, the client's end first, the nearest proxy last."""
    addresses = _values(headers, "x-forwarded-for")
    if addresses:
        protos = [_scheme(p) for p in _values(headers, "x-forwarded-proto")]
        if len(protos) != len(addresses):
            # One value (or none): the nearest proxy's word, for the hop it saw.
            protos = [None] * (len(addresses) - 1) + [protos[-1] if protos else None]
        return [(*_node(a), p) for a, p in zip(addresses, protos, strict=True)]
    hops = []
    for value in headers.getlist("forwarded"):
        for element in ELEMENT.findall(value):
            pairs = {k.lower(): v for k, v in PAIR.findall(element)}
            hops.append((*_node(pairs.get("for", "")), _scheme(pairs.get("proto"))))
    return hops


def real_client(peer: Address, hops: Sequence[Hop],
                trusted: Sequence[Network]) -> tuple[Address, int | None, str | None]:
    """(address, port, scheme) of the client: the first untrusted hop from the right.

    Port and scheme are None when no trusted hop said them.
    """
    address, port, scheme = peer, None, None
    for hop_address, hop_port, hop_scheme in reversed(hops):
        if not any(address in network for network in trusted):
            break
        if hop_address is None:  # the hop this proxy saw is unreadable: stop at the proxy
            break
        address, port, scheme = hop_address, hop_port, hop_scheme or scheme
    return address, port, scheme


class ProxyHeaders:
    """Set ``scope["client"]`` and ``scope["scheme"]`` to the real client's, once, first."""

    def __init__(self, app: ASGIApp, trusted: Sequence[Network]) -> None:
        self.app = app
        self.trusted = tuple(trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if scope["type"] == "http" and self.trusted and client:
            try:
                peer = ipaddress.ip_address(client[0])
            except ValueError:  # a Unix socket, or a test client's name
                peer = None
            if peer is not None and any(peer in network for network in self.trusted):
                scope = self._rewritten(scope, peer)
        await self.app(scope, receive, send)

    def _rewritten(self, scope: Scope, peer: Address) -> Scope:
        headers = Headers(scope=scope)
        hops = forwarded_hops(headers)
        address, port, scheme = real_client(peer, hops, self.trusted)
        if not hops:
            scheme = _scheme(headers.get("x-forwarded-proto"))
        scope = dict(scope)
        if address != peer:
            scope["client"] = (str(address), port or 0)
        if scheme:
            scope["scheme"] = scheme
        return scope
