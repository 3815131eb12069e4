"""HTTP Signatures: real RSA keys, our signer, our verifier, httpsig as a cross-check."""
from __future__ import annotations

import base64
import itertools
import re
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpsig
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from federation.keys import generate_key, load_private_key, load_public_key, public_pem
from federation.signatures import (
    HeaderMap,
    SignatureError,
    SignatureParams,
    SignedAuth,
    check,
    digest_header,
    parse_signature_header,
    sign_headers,
    verify_request,
)

PRIVATE = generate_key()
PUBLIC = public_pem(PRIVATE)
OTHER_PUBLIC = public_pem(generate_key())

KEY_ID = "https://a.example/actor#main-key"
INBOX = "https://b.example/inbox"
ACTIVITY_JSON = "application/activity+json"
BODY = b'{"type": "Follow", "actor": "https://a.example/actor"}'
POST_HEADERS = ["(request-target)", "host", "date", "digest", "content-type"]
NOW = datetime(2025, 3, 4, 12, 0, tzinfo=UTC)


def http_date(moment: datetime) -> str:
    return format_datetime(moment, usegmt=True)


def lowered(headers) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def signed_post(body: bytes = BODY, url: str = INBOX, **extra: str) -> dict:
    """A POST to b.example's inbox as our delivery code would send it."""
    headers = {"Content-Type": ACTIVITY_JSON, "Date": http_date(NOW), **extra}
    signed = lowered(headers) | lowered(sign_headers("POST", url, headers, body, KEY_ID, PRIVATE))
    return {"method": "POST", "path": "/inbox", "query": None, "headers": signed, "body": body}


def signed_get(url: str = "https://b.example/groups/tuesday?page=2") -> dict:
    headers = {"Accept": ACTIVITY_JSON, "Date": http_date(NOW)}
    signed = lowered(headers) | lowered(sign_headers("GET", url, headers, None, KEY_ID, PRIVATE))
    path, _, query = url.removeprefix("https://b.example").partition("?")
    return {"method": "GET", "path": path, "query": query or None, "headers": signed, "body": None}


def verify(request: dict, public: str = PUBLIC, now: datetime = NOW):
    return verify_request(
        request["method"], request["path"], request["query"], request["headers"], request["body"],
        public, now=now,
    )


def httpsig_signed(names: list[str], headers: dict, method: str = "POST", path: str = "/inbox",
                   secret: str = PRIVATE, algorithm: str = "rsa-sha256") -> dict:
    """Sign with httpsig's own signer: an independent implementation, any header list."""
    signer = httpsig.HeaderSigner(KEY_ID, secret, algorithm=algorithm, headers=names, sign_header="signature")
    return lowered(signer.sign(headers, host=headers.get("host"), method=method, path=path))


def with_signature_param(headers: dict, name: str, value: str | None) -> dict:
    """The same request with one Signature parameter replaced (or removed when value is None)."""
    pattern = rf',?{name}="[^"]*"'
    replacement = "" if value is None else f',{name}="{value}"'
    signature = re.sub(pattern, replacement, headers["signature"]).lstrip(",")
    return headers | {"signature": signature}


def sign_pseudo(lines: list[tuple[str, str]], parameters: str) -> str:
    """A Signature header over a hand-built signing string (for (created)/(expires))."""
    message = "\n".join(f"{name}: {value}" for name, value in lines).encode()
    signature = load_private_key(PRIVATE).sign(message, padding.PKCS1v15(), hashes.SHA256())
    names = " ".join(name for name, _ in lines)
    return f'keyId="{KEY_ID}",{parameters},headers="{names}",signature="{base64.b64encode(signature).decode()}"'


# Keys


def test_generated_key_is_rsa_2048_with_a_published_spki_pem():
    assert PUBLIC.startswith("-----BEGIN PUBLIC KEY-----")
    assert load_public_key(PUBLIC).key_size == 2048


def test_parsed_public_keys_are_cached():
    assert load_public_key(PUBLIC) is load_public_key(PUBLIC)


def test_pkcs1_public_pem_is_accepted():
    pkcs1 = load_public_key(PUBLIC).public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    assert load_public_key(pkcs1.decode()).public_numbers() == load_public_key(PUBLIC).public_numbers()


@pytest.mark.parametrize("pem", [
    ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode(),
    "-----BEGIN PUBLIC KEY-----\nnonsense\n-----END PUBLIC KEY-----\n",
    "",
    "é" * 20,
])
def test_non_rsa_or_garbage_public_key_is_refused(pem):
    with pytest.raises(ValueError):
        load_public_key(pem)
    result = verify(signed_post(), public=pem)
    assert not result.signature_valid
    assert result.reason.startswith("unusable public key")


# Signing and verifying our own requests


def test_digest_header_is_base64_sha256_of_the_body():
    assert digest_header(b"") == "SHA-256=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="


def test_signed_post_verifies():
    request = signed_post()
    assert request["headers"]["digest"] == digest_header(BODY)
    result = verify(request)
    assert result.reason is None
    assert result.key_id == KEY_ID
    assert result.signed_headers == tuple(POST_HEADERS)
    assert result.signature_valid and result.digest_matches and result.date_in_window
    assert result.required_headers_signed
    check(result)


def test_signed_get_verifies_and_has_no_digest_fact():
    request = signed_get()
    result = verify(request)
    assert result.signed_headers == ("(request-target)", "host", "date", "accept")
    assert result.digest_matches is None
    assert result.reason is None
    check(result)


def test_signer_adds_host_and_current_date_when_missing():
    added = sign_headers("POST", "https://b.example:8443/inbox", {}, BODY, KEY_ID, PRIVATE)
    assert added["Host"] == "b.example:8443"
    sent = datetime.strptime(added["Date"], "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=UTC)
    assert abs(datetime.now(UTC) - sent) < timedelta(minutes=1)
    assert 'headers="(request-target) host date digest"' in added["Signature"]
    request = {"method": "POST", "path": "/inbox", "query": None, "headers": lowered(added), "body": BODY}
    check(verify(request, now=datetime.now(UTC)))


def test_signer_refuses_a_key_id_that_cannot_be_quoted():
    with pytest.raises(SignatureError):
        sign_headers("GET", INBOX, {}, None, 'https://a.example/"actor', PRIVATE)


def test_signer_refuses_header_values_with_line_breaks():
    with pytest.raises(SignatureError):
        sign_headers("GET", INBOX, {"Accept": "a\r\nb"}, None, KEY_ID, PRIVATE)


def test_our_post_signature_verifies_with_httpsig_pinned_to_rsa_sha256():
    request = signed_post()
    verifier = httpsig.HeaderVerifier(
        request["headers"], PUBLIC, required_headers=POST_HEADERS,
        method="POST", path="/inbox", host="b.example", sign_header="signature",
    )
    assert verifier.algorithm == "rsa-sha256"
    assert verifier.verify()


def test_our_get_signature_verifies_with_httpsig_pinned_to_rsa_sha256():
    request = signed_get()
    verifier = httpsig.HeaderVerifier(
        request["headers"], PUBLIC, required_headers=["(request-target)", "host", "date", "accept"],
        method="GET", path="/groups/tuesday?page=2", host="b.example", sign_header="signature",
    )
    assert verifier.algorithm == "rsa-sha256"
    assert verifier.verify()


def tampered(request: dict, **changes) -> dict:
    headers = request["headers"] | changes.pop("headers", {})
    return request | {"headers": headers} | changes


@pytest.mark.parametrize("change, reason", [
    (lambda r: tampered(r, method="PUT"), "signature does not match"),
    (lambda r: tampered(r, path="/groups/other/inbox"), "signature does not match"),
    (lambda r: tampered(r, headers={"host": "c.example"}), "signature does not match"),
    (lambda r: tampered(r, headers={"date": http_date(NOW - timedelta(minutes=1))}), "signature does not match"),
    (lambda r: tampered(r, headers={"content-type": "text/html"}), "signature does not match"),
    (lambda r: tampered(r, headers={"digest": digest_header(b"{}")}), "Digest does not match the body"),
    (lambda r: tampered(r, body=b'{"type": "Delete"}'), "Digest does not match the body"),
], ids=["method", "path", "host", "date", "content-type", "digest-header", "body"])
def test_tampered_post_is_refused_with_a_reason(change, reason):
    result = verify(change(signed_post()))
    assert result.reason == reason
    with pytest.raises(SignatureError, match=reason):
        check(result)


def test_tampered_body_fails_the_digest_not_the_signature():
    result = verify(tampered(signed_post(), body=b"{}"))
    assert result.signature_valid
    assert result.digest_matches is False


def test_tampered_query_is_refused():
    result = verify(tampered(signed_get(), query="page=3"))
    assert result.reason == "signature does not match"


def test_signature_over_the_path_alone_still_verifies_when_a_query_is_sent():
    request = tampered(signed_get("https://b.example/groups/tuesday"), query="page=2")
    assert verify(request).reason is None


def test_signature_without_its_leading_zero_byte_is_refused():
    """An RSA signature is exactly as long as the modulus; a shortened one is not the same signature."""
    requests = (signed_post(body=BODY + b" " * n) for n in itertools.count())
    request = next(r for r in requests if parse_signature_header(r["headers"]["signature"]).signature[0] == 0)
    assert verify(request).reason is None
    shortened = parse_signature_header(request["headers"]["signature"]).signature[1:]
    request["headers"] = with_signature_param(request["headers"], "signature", base64.b64encode(shortened).decode())
    assert verify(request).reason == "signature does not match"


@pytest.mark.parametrize("change, culprit", [
    (lambda r: tampered(r, headers={"content-type": "application/json\nx: y"}), "content-type"),
    (lambda r: tampered(r, headers={"content-type": "application/json\x01"}), "content-type"),
    (lambda r: tampered(r, headers={"host": "b.example\x7f"}), "host"),
    (lambda r: tampered(r, path="/in\nbox"), "(request-target)"),
], ids=["line-feed", "control", "delete", "request-target"])
def test_signed_value_with_a_control_character_is_refused_by_name(change, culprit):
    assert verify(change(signed_post())).reason == f"signed header {culprit} contains control characters"


def test_tab_in_a_signed_value_is_no_control_character():
    result = verify(tampered(signed_post(), headers={"content-type": "application/json\tx"}))
    assert result.reason == "signature does not match"


def test_signature_over_no_headers_at_all_is_refused_with_a_reason():
    request = signed_post()
    request["headers"] = with_signature_param(request["headers"], "headers", "")
    result = verify(request)
    assert result.signed_headers == ()
    assert not result.signature_valid
    assert result.reason == "(request-target) is not signed"


# Header mappings


def raw_pairs(headers: dict[str, str], *repeated: tuple[str, str]) -> list[tuple[bytes, bytes]]:
    """Headers as an ASGI server hands them over: raw latin-1 pairs, names possibly repeated."""
    pairs = [*headers.items(), *repeated]
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in pairs]


def as_starlette(headers: dict[str, str], *repeated: tuple[str, str]) -> Headers:
    return Headers(raw=raw_pairs(headers, *repeated))


WIRE_FORMS = pytest.mark.parametrize("wire", [
    as_starlette, lambda *args: HeaderMap.from_raw(raw_pairs(*args))],
    ids=["starlette", "header-map"])


@pytest.mark.parametrize("change", [
    lambda r: r,
    lambda r: tampered(r, headers={"date": http_date(NOW - timedelta(hours=2))}),
    lambda r: tampered(r, body=b"{}"),
    lambda r: tampered(r, headers={"host": "c.example"}),
], ids=["valid", "old", "body", "host"])
@WIRE_FORMS
def test_headers_off_the_wire_give_the_same_facts_as_a_plain_dict(change, wire):
    request = change(signed_post())
    from_wire = verify(request | {"headers": wire(request["headers"])})
    assert from_wire == verify(request)
    assert from_wire.key_id == KEY_ID


@WIRE_FORMS
def test_repeated_header_is_joined_with_a_comma_off_the_wire_and_from_a_mapping(wire):
    request = signed_post(**{"Content-Type": "application/activity+json, text/plain"})
    headers = request["headers"] | {"content-type": "application/activity+json"}
    repeated = wire(headers, ("content-type", "text/plain"))
    assert verify(request | {"headers": repeated}).reason is None
    mixed_case = headers | {"Content-Type": "text/plain"}
    assert verify(request | {"headers": mixed_case}).reason is None
    assert verify(request | {"headers": headers}).reason == "signature does not match"


def test_header_names_from_starlette_are_folded_to_lower_case():
    request = signed_post()
    shouting = {name.upper(): value for name, value in request["headers"].items()}
    assert verify(request | {"headers": as_starlette(shouting)}).reason is None


# Clock


@pytest.mark.parametrize("date, reason", [
    ("yesterday", "Date header is not an HTTP date"),
    (http_date(NOW - timedelta(hours=2)), "signature date is too old"),
    (http_date(NOW + timedelta(hours=2)), "signature date is more than 1 hour ahead"),
], ids=["unparsable", "2h-old", "2h-ahead"])
def test_date_outside_mastodons_window_is_refused(date, reason):
    result = verify(signed_post(Date=date))
    assert result.signature_valid
    assert not result.date_in_window
    assert result.reason == reason


@pytest.mark.parametrize("offset", [timedelta(minutes=-64), timedelta(minutes=59)], ids=["64min-old", "59min-ahead"])
def test_date_inside_mastodons_window_is_accepted(offset):
    assert verify(signed_post(Date=http_date(NOW + offset))).reason is None


@pytest.mark.parametrize("date", [
    "Tue, 04 Mar 2025 12:00:00 GMT",
    "Tue, 04 Mar 2025 13:00:00 +0100",
    "Tue, 04 Mar 2025 12:00:00 -0000",
], ids=["gmt", "offset", "no-zone"])
def test_date_window_edges_are_exact_to_the_microsecond_in_any_zone(date):
    request = signed_post(Date=date)
    last, first = NOW + timedelta(minutes=65), NOW - timedelta(hours=1)
    tick = timedelta(microseconds=1)
    assert verify(request, now=last).reason is None
    assert verify(request, now=last + tick).reason == "signature date is too old"
    assert verify(request, now=first).reason is None
    assert verify(request, now=first - tick).reason == "signature date is more than 1 hour ahead"


def test_each_date_keeps_its_own_time_when_dates_repeat():
    """Parsed dates are cached; requests alternating between two dates still get their own window."""
    fresh, stale = signed_post(), signed_post(Date=http_date(NOW - timedelta(hours=2)))
    for _ in range(3):
        assert verify(fresh).reason is None
        assert verify(stale).reason == "signature date is too old"
        assert verify(tampered(fresh, headers={"date": "yesterday"})).reason == "Date header is not an HTTP date"


def test_date_at_the_end_of_the_calendar_is_refused_not_an_error():
    result = verify(signed_post(Date="Fri, 31 Dec 9999 23:59:59 GMT"))
    assert result.signature_valid
    assert result.reason == "signature date is more than 1 hour ahead"


# What must be signed


def plain_post_headers() -> dict:
    return {"host": "b.example", "date": http_date(NOW), "digest": digest_header(BODY), "content-type": ACTIVITY_JSON}


@pytest.mark.parametrize("names, reason", [
    (["host", "date", "digest", "content-type"], "(request-target) is not signed"),
    (["(request-target)", "host", "digest", "content-type"], "neither date nor (created) is signed"),
    (["(request-target)", "host", "date", "content-type"], "digest is not signed"),
], ids=["no-request-target", "no-date", "digest-present-but-unsigned"])
def test_post_missing_a_required_signed_header_is_refused(names, reason):
    request = {"method": "POST", "path": "/inbox", "query": None, "body": BODY,
               "headers": httpsig_signed(names, plain_post_headers())}
    result = verify(request)
    assert not result.required_headers_signed
    assert result.reason == reason
    with pytest.raises(SignatureError, match=re.escape(reason)):
        check(result)


def test_get_without_signed_host_is_refused():
    headers = httpsig_signed(["(request-target)", "date"], {"host": "b.example", "date": http_date(NOW)},
                             method="GET", path="/actor")
    result = verify({"method": "GET", "path": "/actor", "query": None, "headers": headers, "body": None})
    assert result.signature_valid
    assert result.reason == "host is not signed"


def test_signed_header_absent_from_the_request_is_refused():
    request = signed_post()
    del request["headers"]["content-type"]
    assert verify(request).reason == "signed header content-type is missing"


def test_unsigned_request_is_refused():
    request = signed_post()
    del request["headers"]["signature"]
    result = verify(request)
    assert result.reason == "request is not signed"
    with pytest.raises(SignatureError):
        check(result)


# The signed host is this node's (when the caller names its origin)


def verify_for(request: dict, origin: str):
    return verify_request(request["method"], request["path"], request["query"],
                          request["headers"], request["body"], PUBLIC, now=NOW, origin=origin)


@pytest.mark.parametrize("origin,host", [
    ("https://b.example", None),
    ("https://b.example/", "B.Example"),
    ("https://b.example", "b.example:443"),
    ("http://b.example", "b.example:80"),
    ("https://b.example:8443", "b.example:8443"),
    ("http://127.0.0.2:8000", "127.0.0.2:8000"),
    ("http://[::1]:8000", "[0:0::1]:8000"),
])
def test_a_post_signed_for_this_nodes_host_has_the_host_fact(origin, host):
    result = verify_for(signed_post(**({"Host": host} if host else {})), origin)
    assert result.host_matches is True
    check(result)


@pytest.mark.parametrize("origin,host", [
    ("https://c.example", None),
    ("https://b.example:8443", None),
    ("https://b.example", "b.example:8443"),
    ("http://b.example", "b.example:443"),
    ("https://b.example", "b.example.c.example"),
    ("https://b.example", "c.example@b.example"),
    ("https://b.example", "b.example/"),
    ("https://b.example", "b.example:"),
])
def test_a_post_signed_for_another_host_is_refused(origin, host):
    result = verify_for(signed_post(**({"Host": host} if host is not None else {})), origin)
    assert result.signature_valid and result.host_matches is False
    assert result.reason == "signature is for another host"
    with pytest.raises(SignatureError, match="another host"):
        check(result)


def test_a_post_that_does_not_sign_host_is_refused_when_the_origin_is_known():
    names = ["(request-target)", "date", "digest", "content-type"]
    request = {"method": "POST", "path": "/inbox", "query": None, "body": BODY,
               "headers": httpsig_signed(names, plain_post_headers())}
    assert verify(request).host_matches is None  # no origin: no host fact
    check(verify(request))
    result = verify_for(request, "https://b.example")
    assert result.signature_valid and result.host_matches is False
    assert result.reason == "host is not signed"


def test_a_host_rewritten_after_signing_fails_the_signature_first():
    request = signed_post()
    request["headers"]["host"] = "c.example"
    result = verify_for(request, "https://c.example")
    assert result.host_matches and not result.signature_valid
    assert verify_for(request, "https://b.example").reason == "signature does not match"


# Digest header forms


@pytest.mark.parametrize("digest", [
    f"SHA-512=AAAA,{digest_header(BODY)}",
    f"sha-256={digest_header(BODY).partition('=')[2]}",
    f"{digest_header(BODY)} , SHA-512=AAAA",
], ids=["sha512-first", "lower-case", "spaces"])
def test_digest_with_sha256_among_several_algorithms_matches(digest):
    headers = httpsig_signed(POST_HEADERS, plain_post_headers() | {"digest": digest})
    result = verify({"method": "POST", "path": "/inbox", "query": None, "headers": headers, "body": BODY})
    assert result.digest_matches
    assert result.reason is None


def test_digest_without_sha256_is_refused():
    headers = httpsig_signed(POST_HEADERS, plain_post_headers() | {"digest": "SHA-512=AAAA"})
    result = verify({"method": "POST", "path": "/inbox", "query": None, "headers": headers, "body": BODY})
    assert result.reason == "Digest header has no SHA-256"


# Algorithms


@pytest.mark.parametrize("algorithm", ["hs2019", None])
def test_hs2019_or_absent_algorithm_verifies_with_an_rsa_key(algorithm):
    request = signed_post()
    request["headers"] = with_signature_param(request["headers"], "algorithm", algorithm)
    assert verify(request).reason is None


def test_hmac_signature_keyed_with_the_public_pem_is_refused():
    """The algorithm-confusion forgery: anyone can fetch the public PEM and HMAC with it."""
    headers = httpsig_signed(POST_HEADERS, plain_post_headers(), secret=PUBLIC, algorithm="hmac-sha256")
    httpsig_says = httpsig.HeaderVerifier(
        headers, PUBLIC, required_headers=POST_HEADERS, method="POST", path="/inbox", sign_header="signature",
    ).verify()
    assert httpsig_says is True  # the trap this module exists to avoid
    result = verify({"method": "POST", "path": "/inbox", "query": None, "headers": headers, "body": BODY})
    assert not result.signature_valid
    assert result.reason == "unsupported signature algorithm hmac-sha256"
    with pytest.raises(SignatureError):
        check(result)


@pytest.mark.parametrize("label", ["rsa-sha256", "hs2019", None])
def test_hmac_forgery_relabelled_as_an_accepted_algorithm_is_refused(label):
    headers = httpsig_signed(POST_HEADERS, plain_post_headers(), secret=PUBLIC, algorithm="hmac-sha256")
    headers = with_signature_param(headers, "algorithm", label)
    result = verify({"method": "POST", "path": "/inbox", "query": None, "headers": headers, "body": BODY})
    assert result.reason == "signature does not match"


def test_signature_by_another_key_is_refused():
    result = verify(signed_post(), public=OTHER_PUBLIC)
    assert not result.signature_valid
    assert result.reason == "signature does not match"


# (created) and (expires), hs2019 only


def created_request(created: int, parameters: str, extra: list[tuple[str, str]] = ()) -> dict:
    lines = [("(request-target)", "post /inbox"), ("host", "b.example"), ("(created)", str(created)),
             *extra, ("digest", digest_header(BODY))]
    headers = {"host": "b.example", "digest": digest_header(BODY),
               "signature": sign_pseudo(lines, parameters)}
    return {"method": "POST", "path": "/inbox", "query": None, "headers": headers, "body": BODY}


def test_hs2019_with_created_instead_of_date_verifies():
    created = int(NOW.timestamp()) - 60
    result = verify(created_request(created, f'algorithm="hs2019",created={created}'))
    assert result.reason is None


def test_created_two_hours_old_is_refused():
    created = int((NOW - timedelta(hours=2)).timestamp())
    result = verify(created_request(created, f'algorithm="hs2019",created={created}'))
    assert result.reason == "signature date is too old"


def test_signed_expires_extends_the_window():
    created = int((NOW - timedelta(hours=3)).timestamp())
    expires = created + 6 * 3600
    parameters = f'algorithm="hs2019",created={created},expires={expires}'
    request = created_request(created, parameters, extra=[("(expires)", str(expires))])
    assert verify(request).reason is None


def test_created_with_rsa_sha256_is_refused():
    created = int(NOW.timestamp())
    result = verify(created_request(created, f'algorithm="rsa-sha256",created={created}'))
    assert result.reason == "(created) and (expires) need algorithm hs2019"


@pytest.mark.parametrize("created, reason", [
    (253402300799, "signature date is more than 1 hour ahead"),
    (253402300800, "created is out of range"),
], ids=["last-second-of-9999", "year-10000"])
def test_created_at_the_end_of_the_calendar_is_refused(created, reason):
    result = verify(created_request(created, f'algorithm="hs2019",created={created}'))
    assert result.signature_valid
    assert result.reason == reason


def test_signed_created_without_its_parameter_is_refused():
    created = int(NOW.timestamp())
    result = verify(created_request(created, 'algorithm="hs2019"'))
    assert not result.date_in_window
    assert result.reason == "(created) is signed but the created parameter is missing"


# Parsing


def test_parse_reads_mastodons_header():
    request = signed_post()
    params = parse_signature_header(request["headers"]["signature"])
    assert params.key_id == KEY_ID
    assert params.algorithm == "rsa-sha256"
    assert params.headers == tuple(POST_HEADERS)
    assert len(params.signature) == 256
    assert params.created is None and params.expires is None


def test_parse_accepts_legacy_prefix_spaces_tokens_escapes_and_unknown_parameters():
    value = 'Signature keyId = "https://a.example/\\"odd\\"#key" , algorithm=hs2019,  future="x",' \
            ' headers="(Request-Target) Host", created=1700000000, signature="AAAA"'
    assert parse_signature_header(value) == SignatureParams(
        key_id='https://a.example/"odd"#key', algorithm="hs2019", headers=("(request-target)", "host"),
        signature=b"\x00\x00\x00", created=1700000000, expires=None,
    )


@pytest.mark.parametrize("algorithm, default", [("rsa-sha256", ("date",)), ("hs2019", ("(created)",))])
def test_parse_defaults_signed_headers_by_algorithm(algorithm, default):
    params = parse_signature_header(f'keyId="k",algorithm="{algorithm}",signature="AAAA"')
    assert params.headers == default


@pytest.mark.parametrize("value", [
    "",
    'signature="AAAA"',
    'keyId="",signature="AAAA"',
    'keyId="k"',
    'keyId="k",signature="@@@@"',
    'keyId="k",signature="AAAAA"',
    'keyId="k",signature="' + "A" * 1400 + '"',
    'keyId="k",keyId="j",signature="AAAA"',
    'keyId="k",signature="AAAA",',
    'keyId="k,signature="AAAA"',
    'keyId="k"signature="AAAA"',
    'keyId="k\nx",signature="AAAA"',
    'keyId="k",headers="date (method)",signature="AAAA"',
    'keyId="k",created="soon",signature="AAAA"',
    'keyId="k",signature="AAAA",padding="' + "x" * 9000 + '"',
    ",".join(f'p{n}="v"' for n in range(20)) + ',keyId="k",signature="AAAA"',
], ids=["empty", "no-key-id", "empty-key-id", "no-signature", "bad-base64", "bad-base64-length",
        "signature-too-long", "duplicate", "trailing-comma", "unterminated-quote", "no-comma",
        "control-character", "unknown-pseudo-header", "created-not-a-number", "oversized",
        "too-many-parameters"])
def test_malformed_signature_header_is_refused(value):
    with pytest.raises(SignatureError):
        parse_signature_header(value)


# Outgoing requests through httpx, checked by a real ASGI inbox


async def inbox(request: Request) -> PlainTextResponse:
    result = verify_request(
        request.method, request.scope["raw_path"].decode(), request.url.query or None,
        request.headers, await request.body(), PUBLIC,
    )
    return PlainTextResponse(result.reason or "accepted", status_code=202 if result.reason is None else 401)


@pytest.fixture
def peer() -> TestClient:
    app = Starlette(routes=[Route("/inbox", inbox, methods=["GET", "POST"])])
    with TestClient(app, base_url="https://b.example") as client:
        yield client


def test_signed_auth_signs_a_streamed_post(peer):
    response = peer.post(
        "/inbox", content=iter([b'{"type": ', b'"Follow"}']),
        headers={"Content-Type": ACTIVITY_JSON}, auth=SignedAuth(KEY_ID, PRIVATE),
    )
    assert (response.status_code, response.text) == (202, "accepted")
    assert 'headers="(request-target) host date digest content-type"' in response.request.headers["Signature"]


def test_signed_auth_signs_a_get_with_query(peer):
    response = peer.get("/inbox?page=1", headers={"Accept": ACTIVITY_JSON}, auth=SignedAuth(KEY_ID, PRIVATE))
    assert (response.status_code, response.text) == (202, "accepted")


def test_unsigned_post_reaches_the_inbox_as_refused(peer):
    response = peer.post("/inbox", content=BODY)
    assert (response.status_code, response.text) == (401, "request is not signed")


# Properties

PARAMETER_NAMES = st.sampled_from(["keyId", "algorithm", "headers", "signature", "created", "expires", "x"])
SIGNATURE_LIKE = st.lists(
    st.tuples(PARAMETER_NAMES | st.text(max_size=8), st.booleans(), st.text(max_size=40)),
    max_size=8,
).map(lambda params: ",".join(f'{n}="{v}"' if quoted else f"{n}={v}" for n, quoted, v in params))


@given(st.text(max_size=400) | SIGNATURE_LIKE)
@settings(max_examples=500)
def test_parsing_any_text_raises_only_signature_error(value):
    try:
        assert isinstance(parse_signature_header(value), SignatureParams)
    except SignatureError as error:
        assert "\n" not in str(error)


@given(st.text(max_size=400) | SIGNATURE_LIKE)
@settings(max_examples=200)
def test_verifying_any_signature_header_gives_facts_not_exceptions(value):
    request = signed_post()
    request["headers"]["signature"] = value
    result = verify(request)
    assert result.reason is not None and not result.signature_valid


HEADER_TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=60)
PATH = st.text("abcXYZ019-._~%!$&'()*+,;=:@/", max_size=40).map(lambda text: "/" + text)
QUERY = st.text("abcXYZ019-._~%!$&'()*+,;=:@/?", max_size=40)
HOST = st.from_regex(r"[a-z0-9-]{1,20}(\.[a-z]{2,6}){1,2}(:[0-9]{2,5})?", fullmatch=True)


@given(method=st.sampled_from(["GET", "POST"]), path=PATH, query=QUERY, host=HOST,
       media_type=HEADER_TEXT, body=st.binary(max_size=200))
@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
def test_any_signed_request_verifies(method, path, query, host, media_type, body):
    headers = {"Host": host, "Date": http_date(NOW), "Accept" if method == "GET" else "Content-Type": media_type}
    url = f"https://b.example{path}" + (f"?{query}" if query else "")
    sent_body = body if method == "POST" else None
    signed = lowered(headers) | lowered(sign_headers(method, url, headers, sent_body, KEY_ID, PRIVATE))
    result = verify({"method": method, "path": path, "query": query or None, "headers": signed, "body": sent_body})
    assert result.reason is None


@given(st.data())
@settings(max_examples=60)
def test_flipping_any_signature_byte_is_refused(data):
    request = signed_post()
    signature = bytearray(parse_signature_header(request["headers"]["signature"]).signature)
    index = data.draw(st.integers(0, len(signature) - 1))
    signature[index] ^= data.draw(st.integers(1, 255))
    flipped = base64.b64encode(bytes(signature)).decode()
    request["headers"] = with_signature_param(request["headers"], "signature", flipped)
    result = verify(request)
    assert not result.signature_valid
    assert result.reason == "signature does not match"
