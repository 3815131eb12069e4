"""HTTP Signatures (draft-cavage-12) as Mastodon sends and checks them.

Pure and transport-free: callers hand in method, path, headers and body.
Verification returns named facts; `check` is the small policy over them.
The RSA maths is always RSASSA-PKCS1-v1_5 with SHA-256, fixed by the key
type; the client's `algorithm` parameter only decides whether we refuse.
RFC 9421 signatures (inbound only) are in federation.message_signatures,
which shares the facts, the policy, the time window and the host check.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import time
from collections.abc import Generator, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import NamedTuple
from urllib.parse import urlsplit

import httpx

from federation.addresses import url_host
from federation.keys import sign, signed_digest

MAX_HEADER_LENGTH = 8192
MAX_PARAMETERS = 16
MAX_SIGNED_HEADERS = 32
MAX_SIGNATURE_BYTES = 1024  # an RSA-8192 signature

# Mastodon's SignedRequest window: a signature lives 5 minutes past its date
# (or until its signed `expires`, capped at 12 hours), with 1 hour of clock
# skew either way. For a plain Date that is "at most 1 h ahead, at most
# 1 h 5 min old", the issue's "about 1 h", so the two agree. All in seconds.
CLOCK_SKEW = 3600
DEFAULT_LIFETIME = 300
MAX_LIFETIME = 12 * 3600
LATEST_TIME = 253402300799  # 9999-12-31T23:59:59Z, the last second a datetime can hold

ACCEPTED_ALGORITHMS = frozenset({"rsa-sha256", "hs2019"})
_SAFE_METHODS = frozenset({"GET", "HEAD"})
_TIME_PSEUDO_HEADERS = frozenset({"(created)", "(expires)"})

_TOKEN = r"[A-Za-z0-9!#$%&'*+.^_`|~-]+"
# The quoted string is unrolled ([^"\\]*(\\.[^"\\]*)*): one step per run, not per character.
_PARAMETER = re.compile(
    rf'[ \t]*({_TOKEN})[ \t]*=[ \t]*(?:"([^"\\]*(?:\\.[^"\\]*)*)"|({_TOKEN}))[ \t]*(,|\Z)')
_QUOTED_PAIR = re.compile(r"\\(.)")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_CONTROL_BYTES = bytes([*range(0x09), *range(0x0a, 0x20), 0x7f])  # what _CONTROL matches
_HEADER_NAME = r"(?:[a-z0-9!#$%&'*+.^_`|~-]+|\((?:request-target|created|expires)\))"
_HEADER_NAMES = re.compile(rf"{_HEADER_NAME}(?: {_HEADER_NAME})*")
_UNIX_TIME = re.compile(r"[0-9]{1,12}")
# A Host header's value as a sender writes it: a name or an IP literal, maybe a port.
_AUTHORITY = re.compile(r"(?:[A-Za-z0-9._~-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")


class SignatureError(ValueError):
    """A signature is malformed or refused; the message is a one-line reason."""


class SignatureParams(NamedTuple):
    key_id: str
    algorithm: str | None
    headers: tuple[str, ...]
    signature: bytes
    created: int | None
    expires: int | None


class Verification(NamedTuple):
    """What is true of one request's signature; `check` decides what it means."""

    key_id: str | None
    signed_headers: tuple[str, ...]
    signature_valid: bool
    digest_matches: bool | None  # None: a GET or HEAD that signs no digest
    date_in_window: bool
    required_headers_signed: bool
    # The signed Host is this node's host. None: the caller gave no origin to compare with.
    host_matches: bool | None
    reason: str | None  # the first failing fact, None when all hold

    @classmethod
    def unverified(cls, reason: str) -> Verification:
        """A request whose signature could not even be read."""
        return cls(key_id=None, signed_headers=(), signature_valid=False, digest_matches=None,
                   date_in_window=False, required_headers_signed=False, host_matches=None,
                   reason=reason)


class HeaderMap(dict[str, str]):
    """A request's headers as `verify_request` reads them, folded once.

    Names in lower case; a repeated header's values joined with ", " as the draft says.
    """

    @classmethod
    def fold(cls, items: Iterable[tuple[str, str]]) -> HeaderMap:
        """From (name, value) pairs in any case, names possibly repeated."""
        headers = cls()
        for name, value in items:
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        return headers

    @classmethod
    def from_raw(cls, raw: Iterable[tuple[bytes, bytes]]) -> HeaderMap:
        """From the latin-1 (name, value) pairs an HTTP server hands over (ASGI's scope)."""
        return cls.fold((name.decode("latin-1"), value.decode("latin-1")) for name, value in raw)


# Signing


def digest_header(body: bytes) -> str:
    return "SHA-256=" + _sha256_base64(body).decode("ascii")


def _sha256_base64(body: bytes) -> bytes:
    return base64.b64encode(hashlib.sha256(body).digest())


def sign_headers(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes | None,
    key_id: str,
    private_pem: str,
) -> dict[str, str]:
    """The headers to set (replacing any of the same name) to sign a request.

    Host and Date are kept when given. Every method but GET and HEAD gets a
    Digest of the body and signs `(request-target) host date digest
    content-type`; GET and HEAD sign `(request-target) host date accept`
    (content-type and accept only when present).
    """
    if '"' in key_id or "\\" in key_id or _CONTROL.search(key_id):
        raise SignatureError("key id cannot be quoted in a Signature header")
    method = method.upper()
    parts = urlsplit(url)
    given = HeaderMap.fold(headers.items())
    added = {
        "Host": given.get("host") or parts.netloc.rpartition("@")[2],
        "Date": given.get("date") or format_datetime(datetime.now(UTC), usegmt=True),
    }
    names = ["(request-target)", "host", "date"]
    if method in _SAFE_METHODS:
        optional = "accept"
    else:
        added["Digest"] = digest_header(body or b"")
        names.append("digest")
        optional = "content-type"
    if optional in given:
        names.append(optional)
    values = given | {name.lower(): value for name, value in added.items()}
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    message = _signing_string(names, method, target, values, created=None, expires=None)
    signature = sign(private_pem, message)
    added["Signature"] = (
        f'keyId="{key_id}",algorithm="rsa-sha256",headers="{" ".join(names)}",'
        f'signature="{base64.b64encode(signature).decode("ascii")}"'
    )
    return added


class SignedAuth(httpx.Auth):
    """Signs every outgoing httpx request as the actor owning `key_id`."""

    requires_request_body = True

    def __init__(self, key_id: str, private_pem: str) -> None:
        self.key_id = key_id
        self.private_pem = private_pem

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers.update(
            sign_headers(
                request.method, str(request.url), request.headers, request.content,
                self.key_id, self.private_pem,
            )
        )
        yield request


# Parsing


@functools.lru_cache(maxsize=512)
def parse_signature_header(value: str) -> SignatureParams:
    """Parse a Signature header; SignatureError on anything malformed.

    Cached: the rate limiter, the inbox and the verifier each read the same header.
    """
    if len(value) > MAX_HEADER_LENGTH:
        raise SignatureError("Signature header is too long")
    if not value.isprintable() and _CONTROL.search(value):  # the regex only when in doubt
        raise SignatureError("Signature header contains control characters")
    # old node-http-signature adds the "Signature " prefix; Mastodon accepts it
    text = value.strip(" \t").removeprefix("Signature ")
    parameters: dict[str, str] = {}
    position = 0
    while position < len(text):
        match = _PARAMETER.match(text, position)
        if match is None:
            raise SignatureError("Signature header is malformed")
        name, quoted, token, separator = match.groups()
        if name in parameters:
            raise SignatureError(f"Signature header repeats {name[:32]}")
        if len(parameters) == MAX_PARAMETERS:
            raise SignatureError("Signature header has too many parameters")
        if quoted is None:
            parameters[name] = token
        else:
            parameters[name] = _QUOTED_PAIR.sub(r"\1", quoted) if "\\" in quoted else quoted
        position = match.end()
        if separator == "," and position == len(text):
            raise SignatureError("Signature header ends with a comma")

    key_id = parameters.get("keyId")
    if not key_id:
        raise SignatureError("Signature header has no keyId")
    encoded = parameters.get("signature")
    if not encoded:
        raise SignatureError("Signature header has no signature")
    algorithm = parameters.get("algorithm")
    names = parameters.get("headers")
    if names is None:  # draft-cavage-12 defaults, as Mastodon reads them
        names = "(created)" if algorithm in (None, "hs2019") else "date"
    signed = tuple(names.lower().split())
    if len(signed) > MAX_SIGNED_HEADERS:
        raise SignatureError("Signature header signs too many headers")
    if signed and not _HEADER_NAMES.fullmatch(" ".join(signed)):
        raise SignatureError("Signature headers parameter names an unknown field")
    return SignatureParams(
        key_id=key_id,
        algorithm=algorithm,
        headers=signed,
        signature=_decode_signature(encoded),
        created=_unix_time_parameter(parameters, "created"),
        expires=_unix_time_parameter(parameters, "expires"),
    )


def _decode_signature(encoded: str) -> bytes:
    """Base64 with at most two "=" of padding, or none (validate=True checks the alphabet)."""
    unpadded = encoded.rstrip("=")
    if not unpadded or len(encoded) - len(unpadded) > 2:
        raise SignatureError("signature is not base64")
    try:
        decoded = base64.b64decode(unpadded + "=" * (-len(unpadded) % 4), validate=True)
    except ValueError:  # binascii.Error, or a character outside ASCII
        raise SignatureError("signature is not base64") from None
    if len(decoded) > MAX_SIGNATURE_BYTES:
        raise SignatureError("signature is too long")
    return decoded


def _unix_time_parameter(parameters: Mapping[str, str], name: str) -> int | None:
    value = parameters.get(name)
    if value is None:
        return None
    if not _UNIX_TIME.fullmatch(value):
        raise SignatureError(f"{name} is not a Unix time")
    return int(value)


# Verification


def verify_request(
    method: str,
    path: str,
    query: str | None,
    headers: Mapping[str, str],
    body: bytes | None,
    public_pem: str,
    now: datetime | None = None,
    *,
    origin: str | None = None,
) -> Verification:
    """Establish the facts about a request's signature against one public key.

    `path` is the path exactly as sent (still percent-encoded), `query` the
    query string without "?". `headers` may repeat names (Starlette's
    Headers); repeats are joined with ", " as the draft says. A `HeaderMap`
    is read as it is. With `origin`, this node's public URL, the signature
    must sign `host` and the signed Host must be the origin's host.
    """
    method = method.upper()
    received = headers if isinstance(headers, HeaderMap) else HeaderMap.fold(headers.items())
    raw = received.get("signature")
    if raw is None:
        return Verification.unverified("request is not signed")
    try:
        params = parse_signature_header(raw)
    except SignatureError as error:
        return Verification.unverified(str(error))
    # A GET or HEAD has no body to match unless its sender signed a digest anyway.
    has_digest_fact = method not in _SAFE_METHODS or "digest" in params.headers
    required = _required_headers_reason(method, params.headers)
    window = _date_window_reason(params, received, time.time() if now is None else now.timestamp())
    digest = _digest_reason(received.get("digest"), body or b"") if has_digest_fact else None
    signature = _signature_reason(params, method, path, query, received, public_pem)
    host = None
    if origin is not None:
        host = ("host is not signed" if "host" not in params.headers
                else host_reason(received.get("host"), origin))
    return Verification(
        key_id=params.key_id,
        signed_headers=params.headers,
        signature_valid=signature is None,
        digest_matches=digest is None if has_digest_fact else None,
        date_in_window=window is None,
        required_headers_signed=required is None,
        host_matches=host is None if origin is not None else None,
        # A tampered Host fails the signature first: that is the likelier story.
        reason=required or window or digest or signature or host,
    )


def check(verification: Verification) -> None:
    """The policy: every fact must hold (a GET or HEAD that signs no digest has no digest
    fact; a verification without an origin to compare with has no host fact)."""
    accepted = (
        verification.signature_valid
        and verification.required_headers_signed
        and verification.date_in_window
        and verification.digest_matches is not False
        and verification.host_matches is not False
    )
    if not accepted:
        raise SignatureError(verification.reason or "signature refused")


@functools.lru_cache(maxsize=64)
def host_reason(host: str | None, origin: str) -> str | None:
    """Why a signed Host value is not the host of ``origin`` (this node's public URL), if so.

    Both are compared as `url_host` writes them: lower case, a non-default port kept.
    Cached: an inbox is asked for the same host again and again.
    """
    scheme = origin.partition("://")[0].lower()
    if host is None or request_authority(host, scheme) != url_host(origin):
        return "signature is for another host"
    return None


@functools.lru_cache(maxsize=64)
def request_authority(host: str, scheme: str) -> str | None:
    """A Host header's value as `url_host` writes it for ``scheme``, None if it is no host."""
    value = host.strip(" \t")
    if not _AUTHORITY.fullmatch(value):
        return None
    try:
        return url_host(f"{scheme}://{value}/")
    except ValueError:
        return None


def _required_headers_reason(method: str, signed: tuple[str, ...]) -> str | None:
    if "(request-target)" not in signed:
        return "(request-target) is not signed"
    if "date" not in signed and "(created)" not in signed:
        return "neither date nor (created) is signed"
    if method in _SAFE_METHODS and "host" not in signed:
        return "host is not signed"
    if method == "POST" and "digest" not in signed:
        return "digest is not signed"
    return None


def _date_window_reason(params: SignatureParams, headers: Mapping[str, str], now: float) -> str | None:
    # Only a signed time counts: an unsigned Date or created could be rewritten by anyone.
    try:
        if "(created)" in params.headers:
            created = _unix_time(params.created, "created")
        elif "date" in params.headers:
            created = _http_date(headers.get("date"))
        else:
            return "neither date nor (created) is signed"
        expires = _unix_time(params.expires, "expires") if "(expires)" in params.headers else None
    except SignatureError as error:
        return str(error)
    return window_reason(created, expires, now)


def window_reason(created: float, expires: float | None, now: float) -> str | None:
    """Why a signature made at ``created`` (lasting to ``expires``) is out of its window at
    ``now``, if it is: Mastodon's window, in Unix seconds."""
    deadline = min(created + DEFAULT_LIFETIME if expires is None else expires, created + MAX_LIFETIME)
    if created > now + CLOCK_SKEW:
        return "signature date is more than 1 hour ahead"
    if now > deadline + CLOCK_SKEW:
        return "signature date is too old"
    return None


def _unix_time(value: int | None, name: str) -> int:
    if value is None:
        raise SignatureError(f"({name}) is signed but the {name} parameter is missing")
    if value > LATEST_TIME:
        raise SignatureError(f"{name} is out of range")
    return value


@functools.lru_cache(maxsize=64)
def _http_date(value: str | None) -> float:
    """An HTTP Date as Unix time (UTC when it has no zone).

    Cached: an inbox gets many requests dated the same second, and parsing is slow.
    """
    if value is None:
        raise SignatureError("Date header is missing")
    try:
        parsed = parsedate_to_datetime(value) if len(value) <= 64 else None
    except (TypeError, ValueError, OverflowError, IndexError):
        parsed = None
    if parsed is None:
        raise SignatureError("Date header is not an HTTP date")
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def _digest_reason(value: str | None, body: bytes) -> str | None:
    """SHA-256 must be offered and match; other algorithms offered beside it are ignored."""
    if value is None:
        return "Digest header is missing"
    if len(value) > MAX_HEADER_LENGTH:
        return "Digest header is too long"
    for entry in value.split(","):
        algorithm, _, given = entry.partition("=")
        if algorithm.strip(" \t").lower() == "sha-256":
            if hmac.compare_digest(given.strip(" \t").encode("utf-8", "replace"), _sha256_base64(body)):
                return None
            return "Digest does not match the body"
    return "Digest header has no SHA-256"


def _signature_reason(
    params: SignatureParams,
    method: str,
    path: str,
    query: str | None,
    headers: Mapping[str, str],
    public_pem: str,
) -> str | None:
    if params.algorithm is not None and params.algorithm not in ACCEPTED_ALGORITHMS:
        return f"unsupported signature algorithm {params.algorithm[:32]}"
    if params.algorithm == "rsa-sha256" and not _TIME_PSEUDO_HEADERS.isdisjoint(params.headers):
        return "(created) and (expires) need algorithm hs2019"
    try:  # one RSA operation for every target
        signed = signed_digest(public_pem, params.signature)
    except ValueError as error:
        return f"unusable public key: {error}"
    # Mastodon before 4.3 signed the path without its query, so both are tried.
    targets = (f"{path}?{query}", path) if query else (path,)
    try:
        messages = [
            _signing_string(params.headers, method, target, headers, params.created, params.expires)
            for target in targets
        ]
    except SignatureError as error:
        return str(error)
    if signed is None:
        return "signature does not match"
    for message in messages:
        if hmac.compare_digest(signed, hashlib.sha256(message).digest()):
            return None
    return "signature does not match"


# Shared by signing and verifying


def _signing_string(
    names: Sequence[str],
    method: str,
    target: str,
    headers: Mapping[str, str],
    created: int | None,
    expires: int | None,
) -> bytes:
    lines = []
    for name in names:
        if name == "(request-target)":
            value = f"{method.lower()} {target}"
        elif name in _TIME_PSEUDO_HEADERS:
            number = created if name == "(created)" else expires
            if number is None:
                raise SignatureError(f"{name} is signed but has no value")
            value = str(number)
        else:
            header = headers.get(name)
            if header is None:
                raise SignatureError(f"signed header {name} is missing")
            value = header.strip(" \t")
        if len(value) > MAX_HEADER_LENGTH:
            raise SignatureError(f"signed header {name} is too long")
        lines.append(f"{name}: {value}")
    message = "\n".join(lines).encode("utf-8", "surrogatepass")
    # One pass over the whole message: its only control characters are the line feeds joining it.
    if len(message) - len(message.translate(None, _CONTROL_BYTES)) > max(len(lines) - 1, 0):
        culprit = next(name for name, line in zip(names, lines) if _CONTROL.search(line))
        raise SignatureError(f"signed header {culprit} contains control characters")
    return message
