"""The one way this node talks to remote servers: guarded, capped, and on a deadline.

Every GET of an actor, key, object, outbox, WebFinger or NodeInfo document and
every delivery POST goes through a ``Fetcher``. Its transport resolves each host
itself, refuses unless every address is public (``allow_private`` is the
development switch), and then connects to the vetted address while the Host
header and TLS SNI keep the name, so a DNS answer that changes between check
and connect (rebinding) has nothing to change.
"""
from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import orjson

from federation.addresses import is_public_address, normalise_host

AS_PROFILE = "https://www.w3.org/ns/activitystreams"
AP_ACCEPT = f'application/activity+json, application/ld+json; profile="{AS_PROFILE}"'
JRD_ACCEPT = "application/jrd+json, application/json"
USER_AGENT = "Grassroots/0.1"

MAX_URL_LENGTH = 2048
MAX_JSON_DEPTH = 64
_POST_BODY_KEPT = 4096
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_WEBFINGER_USER = re.compile(r"[A-Za-z0-9._~-]{1,64}")

Resolver = Callable[[str, int], Awaitable[list[str]]]
T = TypeVar("T")


class FetchError(Exception):
    """A remote document or delivery that could not be had, with a one-line reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BlockedAddress(FetchError):
    """The host is, or resolves to, an address this node may not reach."""


class TooLarge(FetchError):
    """The response body is over the size cap."""


class Timeout(FetchError):
    """The whole exchange ran past its deadline."""


class Unreachable(FetchError):
    """Nothing answered: the connection was refused or could not be made."""


class BadContentType(FetchError):
    """The response is not one of the media types asked for."""


class IdMismatch(FetchError):
    """An ActivityStreams document whose id is not the URL it was served from."""


class TooManyRedirects(FetchError):
    """More redirects than allowed, or a redirect loop."""


class BadStatus(FetchError):
    """A final response that is not 2xx."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


@dataclass(frozen=True)
class FetchedDocument:
    final_url: str
    document: dict[str, Any]
    content_type: str


@dataclass(frozen=True)
class PostResponse:
    status: int
    headers: httpx.Headers
    body: bytes  # the first few KiB only


def validate_url(url: str | httpx.URL, allow_private: bool) -> httpx.URL:
    """Parse a remote URL and refuse anything but http(s) to a plain host (http only in dev)."""
    text = str(url)
    if len(text) > MAX_URL_LENGTH:
        raise FetchError(f"URL longer than {MAX_URL_LENGTH} characters")
    try:
        parsed = httpx.URL(text)
    except httpx.InvalidURL as error:
        raise FetchError(f"invalid URL: {error}") from None
    allowed_schemes = ("https", "http") if allow_private else ("https",)
    if parsed.scheme not in allowed_schemes:
        raise FetchError(f"scheme {parsed.scheme or '(none)'!r} not allowed")
    if parsed.userinfo:
        raise FetchError("credentials in URL not allowed")
    if not parsed.host:
        raise FetchError("URL has no host")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise FetchError(f"port {parsed.port} out of range")
    try:
        host = normalise_host(parsed.host)
    except ValueError as error:
        raise FetchError(str(error)) from None
    _check_literal(host, allow_private)
    return parsed.copy_with(host=host)


def same_document(a: str | httpx.URL, b: str | httpx.URL) -> bool:
    """Whether two URLs name one document: host normalised, default port and fragment ignored."""
    try:
        first, second = httpx.URL(str(a)), httpx.URL(str(b))
        return (first.scheme, normalise_host(first.host), first.port, first.raw_path) == (
            second.scheme, normalise_host(second.host), second.port, second.raw_path)
    except (httpx.InvalidURL, ValueError):
        return False


def parse_webfinger_handle(handle: str) -> tuple[str, str]:
    """``slug@host`` (or ``@slug@host``, ``acct:slug@host``) -> (user, normalised host)."""
    text = handle.removeprefix("acct:").removeprefix("@")
    user, at, host = text.partition("@")
    if not at or not _WEBFINGER_USER.fullmatch(user) or any(c in host for c in ":/?#[]@%\\ "):
        raise FetchError(f"not a WebFinger handle: {handle[:100]!r}")
    try:
        return user, normalise_host(host)
    except ValueError as error:
        raise FetchError(str(error)) from None


def webfinger_url(user: str, host: str) -> str:
    return str(httpx.URL(f"https://{host}/.well-known/webfinger",
                         params={"resource": f"acct:{user}@{host}"}))


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [info[4][0] for info in infos]


def _check_literal(host: str, allow_private: bool) -> None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return
    if not (allow_private or is_public_address(address)):
        raise BlockedAddress(f"address {address} is not public")


class GuardedTransport(httpx.AsyncBaseTransport):
    """Resolves the host, refuses unless every address is allowed, connects to the vetted one.

    Without an ``inner`` transport, httpx's own is made at the first request: its TLS
    context (~2.5 MB with the CA certificates) is not held by a node that never federates.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport | None, resolver: Resolver,
                 allow_private: bool) -> None:
        self._inner = inner
        self._resolver = resolver
        self._allow_private = allow_private

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.raw_host.decode("ascii")  # .host would undo the IDNA encoding
        address = await self._vetted_address(host, request.url.port or _default_port(request.url))
        extensions = dict(request.extensions)
        if request.url.scheme == "https" and not _is_ip_literal(host):
            extensions["sni_hostname"] = host
        # The Host header was set from the name when the request was built, and is kept.
        connect_to = httpx.Request(request.method, request.url.copy_with(host=address),
                                   headers=request.headers, stream=request.stream,
                                   extensions=extensions)
        if self._inner is None:
            self._inner = httpx.AsyncHTTPTransport()
        return await self._inner.handle_async_request(connect_to)

    async def _vetted_address(self, host: str, port: int) -> str:
        if _is_ip_literal(host):
            _check_literal(host, self._allow_private)
            return host
        try:
            answers = await self._resolver(host, port)
            addresses = [ipaddress.ip_address(answer) for answer in answers]
        except (OSError, ValueError) as error:
            raise FetchError(f"cannot resolve {host}: {error}") from None
        if not addresses:
            raise FetchError(f"cannot resolve {host}: no addresses")
        for address in addresses:
            if not (self._allow_private or is_public_address(address)):
                raise BlockedAddress(f"{host} resolves to {address}, which is not public")
        return str(addresses[0])

    async def aclose(self) -> None:
        if self._inner is not None:
            await self._inner.aclose()


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _default_port(url: httpx.URL) -> int:
    return 443 if url.scheme == "https" else 80


class Fetcher:
    """An HTTP client for remote servers; one per process, closed with ``aclose``."""

    def __init__(self, *, allow_private: bool = False, resolver: Resolver = system_resolver,
                 transport: httpx.AsyncBaseTransport | None = None,
                 max_bytes: int = 1_000_000, deadline: float = 10.0,
                 max_redirects: int = 3) -> None:
        self.allow_private = allow_private
        self.max_bytes = max_bytes
        self.deadline = deadline
        self.max_redirects = max_redirects
        guarded = GuardedTransport(transport, resolver, allow_private)
        self._client = httpx.AsyncClient(
            transport=guarded, follow_redirects=False, trust_env=False,
            timeout=httpx.Timeout(deadline),
            # identity, so the size cap counts the bytes that reach memory
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
        )

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def get_json(self, url: str, *, accept: str = AP_ACCEPT, auth: httpx.Auth | None = None,
                       require_id: bool = True) -> FetchedDocument:
        """GET a JSON document, following at most ``max_redirects`` redirects, each re-checked.

        The response must have one of the media types named in ``accept``; an
        ActivityStreams document must carry the final URL as its ``id`` unless
        ``require_id`` is False.
        """
        return await self._on_deadline(url, self._get_json(url, accept, auth, require_id))

    async def post(self, url: str, body: bytes, headers: dict[str, str], *,
                   auth: httpx.Auth | None = None) -> PostResponse:
        """POST ``body``; redirects are returned, not followed. Any status is a result."""
        return await self._on_deadline(url, self._post(url, body, headers, auth))

    async def _on_deadline(self, url: str, exchange: Awaitable[T]) -> T:
        """Run one whole exchange (connect, redirects, body) within the total deadline."""
        try:
            async with asyncio.timeout(self.deadline):
                return await exchange
        except (TimeoutError, httpx.TimeoutException):
            raise Timeout(f"no complete answer from {host_of(url)} "
                          f"within {self.deadline:g} s") from None
        except httpx.ConnectError as error:
            raise Unreachable(f"{type(error).__name__} from {host_of(url)}: {error}") from None
        except (httpx.HTTPError, httpx.InvalidURL) as error:  # InvalidURL: from a bad Location
            raise FetchError(f"{type(error).__name__} from {host_of(url)}: {error}") from None

    async def _post(self, url: str, body: bytes, headers: dict[str, str],
                    auth: httpx.Auth | None) -> PostResponse:
        target = validate_url(url, self.allow_private)
        request = self._client.build_request("POST", target, content=body, headers=headers)
        response = await self._client.send(request, auth=auth, stream=True)
        try:
            kept = await _read_up_to(response, _POST_BODY_KEPT) if _is_identity(response) else b""
        finally:
            await response.aclose()
        return PostResponse(response.status_code, response.headers, kept)

    async def _get_json(self, url: str, accept: str, auth: httpx.Auth | None,
                        require_id: bool) -> FetchedDocument:
        current = validate_url(url, self.allow_private)
        visited = {str(current.copy_with(fragment=None))}
        while True:
            request = self._client.build_request("GET", current, headers={"Accept": accept})
            response = await self._client.send(request, auth=auth, stream=True)
            try:
                if response.status_code in _REDIRECTS:
                    current = self._next_hop(current, response, visited)
                    continue
                if not 200 <= response.status_code < 300:
                    raise BadStatus(response.status_code)
                content_type = response.headers.get("content-type", "")
                if not _accepts(accept, content_type):
                    raise BadContentType(f"content type {content_type[:100]!r} not asked for")
                body = await self._read_body(response)
            finally:
                await response.aclose()
            document = parse_json_document(body)
            final_url = str(current.copy_with(fragment=None))
            if require_id and _is_activitystreams(content_type) and not same_document(
                    str(document.get("id", "")), final_url):
                claimed = str(document.get("id"))[:200]
                raise IdMismatch(f"document id {claimed!r} is not {final_url}")
            return FetchedDocument(final_url, document, content_type)

    def _next_hop(self, current: httpx.URL, response: httpx.Response,
                  visited: set[str]) -> httpx.URL:
        location = response.headers.get("location")
        if not location:
            raise FetchError(f"HTTP {response.status_code} redirect without Location")
        if len(visited) > self.max_redirects:  # visited holds the first URL and each redirect
            raise TooManyRedirects(f"more than {self.max_redirects} redirects")
        try:
            target = validate_url(current.join(location), self.allow_private)
        except httpx.InvalidURL as error:
            raise FetchError(f"invalid redirect: {error}") from None
        key = str(target.copy_with(fragment=None))
        if key in visited:
            raise TooManyRedirects(f"redirect loop at {key[:200]}")
        visited.add(key)
        return target

    async def _read_body(self, response: httpx.Response) -> bytes:
        if not _is_identity(response):
            encoding = response.headers["content-encoding"]
            raise FetchError(f"content encoding {encoding[:50]!r} not asked for")
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise TooLarge(f"body of {declared} bytes is over {self.max_bytes}")
        body = await _read_up_to(response, self.max_bytes + 1)
        if len(body) > self.max_bytes:
            raise TooLarge(f"body is over {self.max_bytes} bytes")
        return body


def _is_identity(response: httpx.Response) -> bool:
    """Whether the body is sent as is, so the bytes counted are the bytes kept."""
    return response.headers.get("content-encoding", "identity").strip().lower() in ("", "identity")


async def _read_up_to(response: httpx.Response, limit: int) -> bytes:
    """At most ``limit`` bytes of an identity-encoded body; reading stops there."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]


def host_of(url: str) -> str:
    """The host name of a URL for log lines (never the path), or '?'."""
    try:
        return httpx.URL(url).host or "?"
    except httpx.InvalidURL:
        return "?"


def _media_type(value: str) -> tuple[str, dict[str, str]]:
    kind, *params = value.split(";")
    parsed = {}
    for param in params:
        name, _, val = param.partition("=")
        parsed[name.strip().lower()] = val.strip().strip('"')
    return kind.strip().lower(), parsed


def _accepts(accept: str, content_type: str) -> bool:
    """Whether ``content_type`` is one of the types in ``accept``, with its profile if named."""
    kind, params = _media_type(content_type)
    for wanted in accept.split(","):
        wanted_kind, wanted_params = _media_type(wanted)
        profile = wanted_params.get("profile")
        profiles = params.get("profile", "").split()
        if kind == wanted_kind and (profile is None or profile in profiles):
            return True
    return False


def _is_activitystreams(content_type: str) -> bool:
    return _accepts(AP_ACCEPT, content_type)


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def parse_json_document(body: bytes) -> dict[str, Any]:
    """A JSON object from UTF-8 bytes, refusing nesting deeper than MAX_JSON_DEPTH."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise FetchError("body is not UTF-8") from None
    # Depth is measured before parsing so a deep document never reaches the recursive parser;
    # a document with no more opening brackets than that (strings included) cannot be deeper.
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH:
        depth = 0
        for bracket in _NOT_BRACKET.sub("", _JSON_STRING.sub("", text)):
            depth += 1 if bracket in "[{" else -1
            if depth > MAX_JSON_DEPTH:
                raise FetchError(f"JSON nested deeper than {MAX_JSON_DEPTH}")
    try:  # orjson: strict RFC 8259 (no NaN or Infinity, no lone surrogates), and fast
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise FetchError(f"invalid JSON: {str(error)[:200]}") from None
    if not isinstance(document, dict):
        raise FetchError("JSON document is not an object")
    return document
