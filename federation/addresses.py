"""Which network addresses a node may reach, and host names in one canonical form."""
from __future__ import annotations

import functools
import ipaddress
import re
from typing import Any

import httpx
import idna

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# IANA special-purpose registries: none of these is a public peer.
_REFUSED_V4 = tuple(ipaddress.IPv4Network(net) for net in (
    "0.0.0.0/8",        # "this network", unspecified
    "10.0.0.0/8",       # private
    "100.64.0.0/10",    # carrier-grade NAT
    "127.0.0.0/8",      # loopback
    "169.254.0.0/16",   # link-local (cloud metadata lives here)
    "172.16.0.0/12",    # private
    "192.0.0.0/24",     # IETF protocol assignments
    "192.0.2.0/24",     # documentation
    "192.88.99.0/24",   # deprecated 6to4 relay anycast
    "192.168.0.0/16",   # private
    "198.18.0.0/15",    # benchmarking
    "198.51.100.0/24",  # documentation
    "203.0.113.0/24",   # documentation
    "224.0.0.0/4",      # multicast
    "240.0.0.0/4",      # reserved, and 255.255.255.255 broadcast
))
# Only 2000::/3 is global unicast; this refuses ::1, ::, IPv4-compatible ::a.b.c.d,
# NAT64 64:ff9b::/96, ULA fc00::/7, link-local fe80::/10 and multicast ff00::/8.
_GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")
_REFUSED_V6 = tuple(ipaddress.IPv6Network(net) for net in (
    "2001::/23",      # IETF protocol assignments, Teredo 2001::/32 among them
    "2001:db8::/32",  # documentation
    "2002::/16",      # 6to4 (embeds any IPv4 address)
    "3fff::/20",      # documentation
))

_ASCII_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")
_MAX_PREFIXED_LENGTH = 8192  # longer URLs are parsed (httpx refuses over 65,536)
# inet_aton reads "127.1" and "0x7f000001" as IPv4; no real top-level domain looks like that.
_NUMERIC_LABEL = re.compile(r"0x[0-9a-f]*|[0-9]+")


def is_public_address(ip: IPAddress) -> bool:
    """True when ``ip`` is a globally routable unicast address a peer may live at."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return is_public_address(ip.ipv4_mapped)
        return ip in _GLOBAL_UNICAST_V6 and not any(ip in net for net in _REFUSED_V6)
    return not any(ip in net for net in _REFUSED_V4)


def normalise_host(host: str) -> str:
    """The one form of a host used in every comparison: lowercase ASCII (IDNA), no trailing dot.

    IP literals come back in their compressed form, without brackets.
    Raises ValueError for anything that is not a valid host name.
    """
    literal = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return str(ipaddress.ip_address(literal))
    except ValueError:
        pass
    name = host[:-1] if host.endswith((".", "\u3002", "\uff0e", "\uff61")) else host
    if not name or len(name) > 253:
        raise ValueError(f"invalid host name {host!r}")
    if not name.isascii():
        try:
            name = idna.encode(name, uts46=True).decode("ascii")
        except idna.IDNAError as error:
            raise ValueError(f"invalid host name {host!r}: {error}") from None
    name = name.lower()
    labels = name.split(".")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        raise ValueError(f"invalid host name {host!r}: not a canonical IP address")
    for label in labels:
        if not _ASCII_LABEL.fullmatch(label):
            raise ValueError(f"invalid host name {host!r}")
        if label.startswith("xn--"):
            try:
                idna.decode(label)
            except idna.IDNAError as error:
                raise ValueError(f"invalid host name {host!r}: {error}") from None
    return name


def url_host(url: Any) -> str:
    """The host a URL belongs to in every origin comparison.

    The host name through `normalise_host`, with `:port` when the port is not
    the scheme's default, so two development nodes on one loopback address
    are two hosts. ValueError for anything but an http(s) URL with a host.
    """
    host, port = _host_and_port(url)
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return host if port is None else f"{host}:{port}"


def url_domain(url: Any) -> str:
    """A URL's host through `normalise_host`, without its port: what a block or a rate
    limit covers. ValueError as for `url_host`."""
    return _host_and_port(url)[0]


def _host_and_port(url: Any) -> tuple[str, int | None]:
    if not isinstance(url, str):
        raise ValueError(f"not a URL: {str(url)[:100]!r}")
    return _parsed_host_and_port(url)


@functools.lru_cache(maxsize=4096)  # the inbox asks about the same actors again and again
def _parsed_host_and_port(url: str) -> tuple[str, int | None]:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        raise ValueError(f"not a URL: {str(url)[:100]!r}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"not an http(s) URL: {str(url)[:100]!r}")
    return normalise_host(parsed.host), parsed.port


def origin_prefix(url: str) -> str | None:
    """``url`` up to the first "/" after its authority (``https://host:port/``), or None.

    The authority ends at the first "/", "?" or "#", so every URL that starts
    with this prefix has the authority, and so the `url_host`, of ``url``.
    """
    scheme, separator, rest = url.partition("://")
    end = rest.find("/")
    if not separator or end < 0 or not scheme.isascii():
        return None
    return f"{scheme}://{rest[:end + 1]}"


def on_host(url: Any, host: str, prefix: str | None) -> bool:
    """Whether ``url`` belongs to ``host``, with ``prefix`` (`origin_prefix` of a URL on it).

    A printable URL of at most `_MAX_PREFIXED_LENGTH` characters starting with
    the prefix needs no parsing (the inbox checks several ids against their
    actor's); any other goes through `url_host`, whose ValueError it lets through.
    """
    if prefix is not None and isinstance(url, str) and len(url) <= _MAX_PREFIXED_LENGTH \
            and url.startswith(prefix) and url.isprintable():
        return True
    return url_host(url) == host
