"""HTTP Message Signatures (RFC 9421), inbound: `Signature-Input` and `Signature`.

Mastodon 4.5 and Fedify send these besides draft-cavage; this node accepts
them and sends draft-cavage only (federation.signatures). Pure and
transport-free like that module, with the same facts (`Verification`), the
same policy (`check`), time window and host check. The headers are
Structured Fields (RFC 8941), parsed strictly and within caps; the first
signature in `Signature-Input` is the one verified. Required, as Mastodon
requires: `@method`; `@target-uri`, or `@authority` and `@path` (and
`@query` when there is one); `content-digest` (RFC 9530) when there is a
body; a `created` time. Algorithms: `rsa-v1_5-sha256` with an actor's RSA
`publicKeyPem`, `ed25519` with a FEP-521a Multikey's `publicKeyMultibase`;
without `alg`, the key decides.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple

from federation.keys import signed_digest, verify_ed25519
from federation.signatures import (
    LATEST_TIME,
    MAX_HEADER_LENGTH,
    MAX_SIGNATURE_BYTES,
    HeaderMap,
    SignatureError,
    Verification,
    host_reason,
    request_authority,
    window_reason,
)

if TYPE_CHECKING:
    from decimal import Decimal

MAX_MEMBERS = 8       # signatures in one header, digests in Content-Digest
MAX_COMPONENTS = 32   # covered components of one signature
MAX_PARAMETERS = 16   # parameters of one item
MAX_KEY_LENGTH = 64

ALGORITHMS = frozenset({"rsa-v1_5-sha256", "ed25519"})
DERIVED_COMPONENTS = frozenset({"@method", "@target-uri", "@authority", "@scheme",
                                "@request-target", "@path", "@query"})
DIGESTS = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}
_SAFE_METHODS = frozenset({"GET", "HEAD"})
_AUTHORITY_COMPONENTS = frozenset({"@target-uri", "@authority", "host"})
_STRING_PARAMETERS = ("keyid", "alg", "nonce", "tag")

_KEY = re.compile(r"[a-z*][a-z0-9_.*-]*")
_NUMBER = re.compile(r"-?([0-9]+)(?:\.([0-9]+))?")
_STRING = re.compile(r'"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"')
_TOKEN = re.compile(r"[A-Za-z*][!#$%&'*+.^_`|~0-9A-Za-z:/-]*")
_BYTES = re.compile(r":([A-Za-z0-9+/=]*):")
_ESCAPE = re.compile(r'\\(["\\])')
_FIELD_NAME = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+")
_UNSAFE = re.compile(r"[^\x20-\x7e\t]")  # a signature base is ASCII; no line breaks


class Token(str):
    """A Structured Fields token (as opposed to a string)."""


class Item(NamedTuple):
    """A Structured Fields item or inner list (then `value` is a tuple of Items)."""

    value: object
    parameters: dict[str, object]


class MessageSignature(NamedTuple):
    label: str
    components: tuple[str, ...]
    key_id: str
    algorithm: str | None
    created: int
    expires: int | None
    signature: bytes
    parameters: str  # the value of "@signature-params": the inner list serialised again


# Parsing


@functools.lru_cache(maxsize=128)
def parse_message_signature(signature_input: str, signature: str) -> MessageSignature:
    """The first signature of a request; SignatureError (a one-line reason) if malformed.

    Cached: the inbox reads the key id first and the verifier the rest.
    """
    inputs = parse_dictionary(signature_input, "Signature-Input")
    if not inputs:
        raise SignatureError("Signature-Input names no signature")
    label, covered = next(iter(inputs.items()))
    if not isinstance(covered.value, tuple):
        raise SignatureError(f"Signature-Input {label} is not a list of components")
    components = tuple(_component(item) for item in covered.value)
    if len(set(components)) != len(components):
        raise SignatureError(f"Signature-Input {label} covers a component twice")
    params = covered.parameters
    for name in _STRING_PARAMETERS:
        if name in params and (type(params[name]) is not str or not params[name]):
            raise SignatureError(f"Signature-Input {name} is not a string")
    if "keyid" not in params:
        raise SignatureError("Signature-Input has no keyid")
    created = _time_parameter(params, "created")
    if created is None:
        raise SignatureError("Signature-Input has no created")
    signed = parse_dictionary(signature, "Signature").get(label)
    if signed is None:
        raise SignatureError(f"Signature has no {label}")
    if not isinstance(signed.value, bytes) or not signed.value:
        raise SignatureError(f"Signature {label} is not a byte sequence")
    if len(signed.value) > MAX_SIGNATURE_BYTES:
        raise SignatureError("signature is too long")
    return MessageSignature(
        label=label,
        components=components,
        key_id=params["keyid"],
        algorithm=params.get("alg"),
        created=created,
        expires=_time_parameter(params, "expires"),
        signature=signed.value,
        parameters=_serialise_inner_list(covered),
    )


def _component(item: Item) -> str:
    name = item.value
    if type(name) is not str:
        raise SignatureError("a covered component is not a string")
    if item.parameters:
        raise SignatureError(f"covered component {name[:32]} has parameters, not supported")
    if name.startswith("@"):
        if name not in DERIVED_COMPONENTS:
            raise SignatureError(f"covered component {name[:32]} is not supported")
    elif not _FIELD_NAME.fullmatch(name):
        raise SignatureError(f"covered component {name[:32]} is not a lower-case field name")
    return name


def _time_parameter(params: Mapping[str, object], name: str) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if type(value) is not int or value < 0:
        raise SignatureError(f"Signature-Input {name} is not a Unix time")
    if value > LATEST_TIME:
        raise SignatureError(f"Signature-Input {name} is out of range")
    return value


def parse_dictionary(text: str, name: str) -> dict[str, Item]:
    """A Structured Fields Dictionary (RFC 8941, 4.2.2), strictly, at most `MAX_MEMBERS`.

    Unlike the RFC, a repeated key is refused rather than overwritten.
    """
    if len(text) > MAX_HEADER_LENGTH:
        raise SignatureError(f"{name} header is too long")
    if not text.isascii():
        raise SignatureError(f"{name} header is not ASCII")
    return _Parser(text.strip(" "), name).dictionary()


class _Parser:
    def __init__(self, text: str, name: str) -> None:
        self.text = text
        self.name = name
        self.at = 0

    def fail(self, what: str) -> SignatureError:
        return SignatureError(f"{self.name} header is malformed: {what}")

    def peek(self) -> str:
        return self.text[self.at:self.at + 1]

    def dictionary(self) -> dict[str, Item]:
        members: dict[str, Item] = {}
        while self.at < len(self.text):
            key = self.key()
            if key in members:
                raise self.fail(f"{key} repeated")
            if len(members) == MAX_MEMBERS:
                raise self.fail("too many members")
            if self.peek() == "=":
                self.at += 1
                members[key] = self.inner_list() if self.peek() == "(" else self.item()
            else:
                members[key] = Item(True, self.parameters())
            self.skip(" \t")
            if self.at == len(self.text):
                break
            if self.peek() != ",":
                raise self.fail("members must be separated by commas")
            self.at += 1
            self.skip(" \t")
            if self.at == len(self.text):
                raise self.fail("it ends with a comma")
        return members

    def inner_list(self) -> Item:
        self.at += 1  # "("
        items: list[Item] = []
        while self.at < len(self.text):
            self.skip(" ")
            if self.peek() == ")":
                self.at += 1
                return Item(tuple(items), self.parameters())
            if len(items) == MAX_COMPONENTS:
                raise self.fail("too many items in a list")
            items.append(self.item())
            if self.peek() not in (" ", ")", ""):
                raise self.fail("list items must be separated by spaces")
        raise self.fail("a list is not closed")

    def item(self) -> Item:
        return Item(self.bare_item(), self.parameters())

    def parameters(self) -> dict[str, object]:
        parameters: dict[str, object] = {}
        while self.peek() == ";":
            self.at += 1
            self.skip(" ")
            key = self.key()
            if key in parameters:
                raise self.fail(f"parameter {key} repeated")
            if len(parameters) == MAX_PARAMETERS:
                raise self.fail("too many parameters")
            value: object = True
            if self.peek() == "=":
                self.at += 1
                value = self.bare_item()
            parameters[key] = value
        return parameters

    def key(self) -> str:
        match = _KEY.match(self.text, self.at)
        if match is None:
            raise self.fail("a key is expected")
        if len(match.group()) > MAX_KEY_LENGTH:
            raise self.fail("a key is too long")
        self.at = match.end()
        return match.group()

    def bare_item(self) -> object:
        start = self.peek()
        if start == "-" or start.isdigit():
            return self.number()
        if start == '"':
            match = self.expect(_STRING, "a string")
            return _ESCAPE.sub(r"\1", match.group(1))
        if start == ":":
            return _base64(self.expect(_BYTES, "a byte sequence").group(1), self)
        if start == "?":
            value = self.text[self.at + 1:self.at + 2]
            if value not in ("0", "1"):
                raise self.fail("a boolean must be ?0 or ?1")
            self.at += 2
            return value == "1"
        return Token(self.expect(_TOKEN, "an item").group())

    def number(self) -> int | Decimal:
        match = self.expect(_NUMBER, "a number")
        whole, fraction = match.groups()
        if fraction is None:
            if len(whole) > 15:
                raise self.fail("an integer has more than 15 digits")
            return int(match.group())
        if len(whole) > 12 or len(fraction) > 3:
            raise self.fail("a decimal has too many digits")
        # Rare in signatures: the decimal module (~0.4 MB) loads with the first one.
        from decimal import Decimal

        return Decimal(match.group())

    def expect(self, pattern: re.Pattern[str], what: str) -> re.Match[str]:
        match = pattern.match(self.text, self.at)
        if match is None:
            raise self.fail(f"{what} is expected")
        self.at = match.end()
        return match

    def skip(self, characters: str) -> None:
        while self.peek() and self.peek() in characters:
            self.at += 1


def _base64(text: str, parser: _Parser) -> bytes:
    """RFC 8941 asks parsers to accept a byte sequence without its "=" padding."""
    unpadded = text.rstrip("=")
    if len(text) - len(unpadded) > 2 or "=" in unpadded or len(unpadded) % 4 == 1:
        raise parser.fail("a byte sequence is not base64")
    return base64.b64decode(unpadded + "=" * (-len(unpadded) % 4))


def _serialise_inner_list(item: Item) -> str:
    assert isinstance(item.value, tuple)
    members = " ".join(_serialise_bare(member.value) for member in item.value)
    return f"({members}){_serialise_parameters(item.parameters)}"


def _serialise_parameters(parameters: Mapping[str, object]) -> str:
    return "".join(f";{key}" if value is True else f";{key}={_serialise_bare(value)}"
                   for key, value in parameters.items())


def _serialise_bare(value: object) -> str:
    """RFC 8941, 4.1.3 (what `_Parser.bare_item` reads, written back canonically)."""
    if isinstance(value, bool):
        return "?1" if value else "?0"
    if isinstance(value, Token):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, int):
        return str(value)
    from decimal import Decimal

    if isinstance(value, Decimal):
        whole, _, fraction = f"{value:f}".partition(".")
        return f"{whole}.{fraction.rstrip('0') or '0'}"
    assert isinstance(value, bytes)
    return f":{base64.b64encode(value).decode('ascii')}:"


# Verification


def verify_message(
    method: str,
    path: str,
    query: str | None,
    headers: Mapping[str, str],
    body: bytes | None,
    public_key: str,
    now: datetime | None = None,
    *,
    origin: str,
) -> Verification:
    """Establish the facts about a request's RFC 9421 signature against one public key.

    ``public_key`` is an RSA `publicKeyPem` or an Ed25519 `publicKeyMultibase`;
    ``origin`` is this node's public URL: its scheme makes `@target-uri`, and
    the signed authority must be its host. Other arguments as for
    `federation.signatures.verify_request`.
    """
    method = method.upper()
    received = headers if isinstance(headers, HeaderMap) else HeaderMap.fold(headers.items())
    signature_input, signature_header = received.get("signature-input"), received.get("signature")
    if signature_input is None or signature_header is None:
        return Verification.unverified("request is not signed")
    try:
        signed = parse_message_signature(signature_input, signature_header)
    except SignatureError as error:
        return Verification.unverified(str(error))
    has_body = bool(body) or method not in _SAFE_METHODS
    has_digest_fact = has_body or "content-digest" in signed.components
    scheme = origin.partition("://")[0].lower()
    authority = request_authority(received.get("host", ""), scheme)
    required = _required_reason(signed.components, query, has_body)
    window = window_reason(signed.created, signed.expires,
                           time.time() if now is None else now.timestamp())
    digest = (_content_digest_reason(received.get("content-digest"), body or b"")
              if has_digest_fact else None)
    signature = _signature_reason(signed, method, path, query, scheme, authority, received,
                                  public_key)
    host = ("the authority is not covered" if _AUTHORITY_COMPONENTS.isdisjoint(signed.components)
            else host_reason(received.get("host"), origin))
    return Verification(
        key_id=signed.key_id,
        signed_headers=signed.components,
        signature_valid=signature is None,
        digest_matches=digest is None if has_digest_fact else None,
        date_in_window=window is None,
        required_headers_signed=required is None,
        host_matches=host is None,
        reason=required or window or digest or signature or host,
    )


def _required_reason(components: tuple[str, ...], query: str | None,
                     has_body: bool) -> str | None:
    covered = set(components)
    if "@method" not in covered:
        return "@method is not covered"
    if "@target-uri" not in covered and not (
            {"@authority", "@path"} <= covered and ("@query" in covered or not query)):
        return ("neither @target-uri nor @authority, @path"
                + (" and @query are" if query else " are") + " covered")
    if has_body and "content-digest" not in covered:
        return "content-digest is not covered"
    return None


def _content_digest_reason(value: str | None, body: bytes) -> str | None:
    """Every SHA-256 and SHA-512 digest offered must match; one of them must be offered."""
    if value is None:
        return "Content-Digest header is missing"
    try:
        digests = parse_dictionary(value, "Content-Digest")
    except SignatureError as error:
        return str(error)
    offered = [(DIGESTS[name], item.value) for name, item in digests.items() if name in DIGESTS]
    if not offered:
        return "Content-Digest has neither sha-256 nor sha-512"
    for digest, given in offered:
        if not (isinstance(given, bytes) and hmac.compare_digest(given, digest(body).digest())):
            return "Content-Digest does not match the body"
    return None


def _signature_reason(signed: MessageSignature, method: str, path: str, query: str | None,
                      scheme: str, authority: str | None, headers: Mapping[str, str],
                      public_key: str) -> str | None:
    multikey = public_key.startswith("z")
    algorithm = signed.algorithm or ("ed25519" if multikey else "rsa-v1_5-sha256")
    if algorithm not in ALGORITHMS:
        return f"unsupported signature algorithm {algorithm[:32]}"
    if multikey != (algorithm == "ed25519"):
        return f"signature algorithm {algorithm} does not fit the key"
    try:
        base = _signature_base(signed, method, path, query, scheme, authority, headers)
    except SignatureError as error:
        return str(error)
    try:
        if multikey:
            valid = verify_ed25519(public_key, signed.signature, base)
        else:
            recovered = signed_digest(public_key, signed.signature)
            valid = recovered is not None and hmac.compare_digest(
                recovered, hashlib.sha256(base).digest())
    except ValueError as error:
        return f"unusable public key: {error}"
    return None if valid else "signature does not match"


def _signature_base(signed: MessageSignature, method: str, path: str, query: str | None,
                    scheme: str, authority: str | None, headers: Mapping[str, str]) -> bytes:
    """RFC 9421, 2.5: one line per covered component, then "@signature-params"."""
    target = path or "/"
    derived = {
        "@method": method,
        "@scheme": scheme,
        "@authority": authority,
        "@target-uri": None if authority is None else f"{scheme}://{authority}{target}"
                                                      + (f"?{query}" if query else ""),
        "@request-target": target + (f"?{query}" if query else ""),
        "@path": target,
        "@query": f"?{query or ''}",
    }
    lines = []
    for name in signed.components:
        value = derived[name] if name in derived else headers.get(name)
        if value is None:
            raise SignatureError(f"covered component {name} is missing")
        value = value.strip(" \t")
        if _UNSAFE.search(value):
            raise SignatureError(f"covered component {name} is not printable ASCII")
        lines.append(f'"{name}": {value}')
    lines.append(f'"@signature-params": {signed.parameters}')
    return "\n".join(lines).encode("ascii")
