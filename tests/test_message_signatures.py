"""RFC 9421 HTTP Message Signatures, inbound: facts for requests signed here with
`cryptography` alone (tests/helpers.py) and for the RFC's own ed25519 example."""
from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.keys import generate_key, load_multikey, public_pem
from federation.message_signatures import (
    MAX_COMPONENTS,
    MAX_MEMBERS,
    parse_dictionary,
    parse_message_signature,
    verify_message,
)
from federation.signatures import SignatureError, check
from tests.helpers import content_digest, multikey, sign_rfc9421

RSA_PRIVATE = generate_key()
RSA_PUBLIC = public_pem(RSA_PRIVATE)
ED_PRIVATE = ed25519.Ed25519PrivateKey.generate()
ED_PUBLIC = multikey(ED_PRIVATE.public_key())
OTHER_ED_PUBLIC = multikey(ed25519.Ed25519PrivateKey.generate().public_key())

ORIGIN = "https://b.example"
INBOX = f"{ORIGIN}/inbox"
KEY_ID = "https://a.example/actor#main-key"
BODY = b'{"type": "Create", "actor": "https://a.example/actor"}'
NOW = datetime(2025, 3, 4, 12, 0, tzinfo=UTC)
AP = "application/activity+json"


def signed(private=RSA_PRIVATE, url: str = INBOX, body: bytes | None = BODY,
           method: str = "POST", **options) -> dict:
    headers = {"Content-Type": AP, **options.pop("headers", {})}
    options.setdefault("created", int(NOW.timestamp()))
    headers = {name.lower(): value for name, value in headers.items()}
    headers |= sign_rfc9421(method, url, headers, body, KEY_ID, private, **options)
    path, _, query = url.removeprefix(ORIGIN).partition("?")
    return {"method": method, "path": path, "query": query or None, "headers": headers,
            "body": body}


def verify(request: dict, public: str = RSA_PUBLIC, now: datetime = NOW, origin: str = ORIGIN):
    return verify_message(request["method"], request["path"], request["query"],
                          request["headers"], request["body"], public, now, origin=origin)


# Valid signatures


@pytest.mark.parametrize("private,public", [(RSA_PRIVATE, RSA_PUBLIC), (ED_PRIVATE, ED_PUBLIC)],
                         ids=["rsa-v1_5-sha256", "ed25519"])
def test_a_signed_post_has_every_fact(private, public):
    facts = verify(signed(private), public)
    assert facts.key_id == KEY_ID
    assert facts.signed_headers == ("@method", "@target-uri", "@authority", "host", "date",
                                    "content-digest")
    assert (facts.signature_valid, facts.digest_matches, facts.date_in_window,
            facts.required_headers_signed, facts.host_matches) == (True,) * 5
    assert facts.reason is None
    check(facts)


@pytest.mark.parametrize("private,public", [(RSA_PRIVATE, RSA_PUBLIC), (ED_PRIVATE, ED_PUBLIC)],
                         ids=["rsa", "ed25519"])
def test_without_alg_the_key_decides_the_algorithm(private, public):
    check(verify(signed(private, alg=None), public))


def test_the_rfc_9421_ed25519_example_verifies_though_it_covers_too_little_for_us():
    """RFC 9421, appendix B.2.6, with the test key of B.1.4."""
    raw = base64.urlsafe_b64decode("JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs=")
    key = multikey(ed25519.Ed25519PublicKey.from_public_bytes(raw))
    headers = {
        "host": "example.com", "date": "Tue, 20 Apr 2021 02:07:55 GMT",
        "content-type": "application/json", "content-length": "18",
        "content-digest": "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrI"
                          "iYllu7BNNyealdVLvRwEmTHWXvJwew==:",
        "signature-input": 'sig-b26=("date" "@method" "@path" "@authority" "content-type" '
                           '"content-length");created=1618884473;keyid="test-key-ed25519"',
        "signature": "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPi"
                     "u4A0w6vuQv5lIp5WPpBKRCw==:",
    }
    facts = verify_message("POST", "/foo", "param=Value&Pet=dog", headers, b'{"hello": "world"}',
                           key, datetime.fromtimestamp(1618884473, UTC),
                           origin="https://example.com")
    assert facts.signature_valid and facts.digest_matches and facts.host_matches
    assert not facts.required_headers_signed  # no @query, no content-digest
    assert facts.reason == "neither @target-uri nor @authority, @path and @query are covered"


def test_authority_path_and_query_may_stand_for_the_target_uri():
    request = signed(url=f"{INBOX}?page=2",
                     components=("@method", "@authority", "@path", "@query", "content-digest"))
    check(verify(request))


def test_a_multikey_is_parsed_from_its_multibase_form():
    assert load_multikey(ED_PUBLIC).public_bytes_raw() == ED_PRIVATE.public_key().public_bytes_raw()
    for bad in ("", ED_PUBLIC[1:], "z" + ED_PUBLIC[2:], "f" + ED_PUBLIC[1:], ED_PUBLIC + "1",
                multikey(ED_PRIVATE.public_key())[:-1] + "0"):
        with pytest.raises(ValueError):
            load_multikey(bad)


def test_content_digest_may_be_sha_512_or_both():
    check(verify(signed(headers={"Content-Digest": content_digest(BODY, "sha-512")})))
    both = f"{content_digest(BODY, 'sha-512')}, {content_digest(BODY)}"
    check(verify(signed(headers={"Content-Digest": both})))


def test_the_first_signature_is_the_one_verified_whatever_the_order_of_signature():
    request = signed(label="first")
    other = signed(ED_PRIVATE, label="second")
    headers = request["headers"]
    headers["signature-input"] += ", " + other["headers"]["signature-input"]
    headers["signature"] = f'{other["headers"]["signature"]}, {headers["signature"]}'
    check(verify(request))
    chosen = parse_message_signature(headers["signature-input"], headers["signature"])
    assert chosen.label == "first"


def test_signature_parameters_are_serialised_again_as_rfc_8941_writes_them():
    request = signed()
    headers = request["headers"]
    label, _, value = headers["signature-input"].partition("=")
    spaced = value.replace('" "', '"   "').replace(";", ";  ", 1)
    headers["signature-input"] = f"{label}={spaced}"
    check(verify(request))


# Refused


def test_a_tampered_body_fails_the_content_digest():
    request = signed()
    request["body"] = BODY.replace(b"Create", b"Delete")
    facts = verify(request)
    assert facts.digest_matches is False and facts.signature_valid
    assert facts.reason == "Content-Digest does not match the body"


def test_a_tampered_body_with_its_digest_recomputed_fails_the_signature():
    request = signed()
    request["body"] = BODY.replace(b"Create", b"Delete")
    request["headers"]["content-digest"] = content_digest(request["body"])
    facts = verify(request)
    assert facts.digest_matches and not facts.signature_valid
    assert facts.reason == "signature does not match"


@pytest.mark.parametrize("digest,reason", [
    (content_digest(b"other"), "does not match"),
    (f"{content_digest(BODY)}, {content_digest(b'other', 'sha-512')}", "does not match"),
    ("sha-256=:AAAA:", "does not match"),
    ("sha-256=abc", "does not match"),
    ("md5=:AAAA:", "neither sha-256 nor sha-512"),
    ("sha-256=:AAAA", "malformed"),
    ("SHA-256=:AAAA:", "malformed"),
])
def test_a_wrong_content_digest_is_refused(digest, reason):
    facts = verify(signed(headers={"Content-Digest": digest}))
    assert facts.digest_matches is False
    assert reason in facts.reason


def test_a_missing_content_digest_is_refused():
    request = signed()
    del request["headers"]["content-digest"]
    facts = verify(request)
    assert facts.digest_matches is False
    assert facts.reason == "Content-Digest header is missing"


@pytest.mark.parametrize("components,reason", [
    (("@target-uri", "content-digest"), "@method is not covered"),
    (("@method", "content-digest"), "neither @target-uri nor @authority, @path are covered"),
    (("@method", "@authority", "content-digest"), "neither @target-uri"),
    (("@method", "@path", "content-digest"), "neither @target-uri"),
    (("@method", "@target-uri", "date"), "content-digest is not covered"),
])
def test_missing_covered_components_are_refused(components, reason):
    facts = verify(signed(components=components))
    assert facts.signature_valid and not facts.required_headers_signed
    assert facts.reason.startswith(reason)
    with pytest.raises(SignatureError):
        check(facts)


def test_a_query_must_be_covered_when_the_target_uri_is_not():
    request = signed(url=f"{INBOX}?page=2",
                     components=("@method", "@authority", "@path", "content-digest"))
    facts = verify(request)
    assert not facts.required_headers_signed
    assert facts.reason == "neither @target-uri nor @authority, @path and @query are covered"


@pytest.mark.parametrize("age,reason", [
    (timedelta(hours=1, minutes=6), "signature date is too old"),
    (-timedelta(hours=1, minutes=1), "signature date is more than 1 hour ahead"),
])
def test_created_outside_the_window_is_refused(age, reason):
    facts = verify(signed(created=int((NOW - age).timestamp())))
    assert facts.signature_valid and not facts.date_in_window
    assert facts.reason == reason


def test_created_within_the_window_is_accepted():
    check(verify(signed(created=int((NOW - timedelta(hours=1, minutes=4)).timestamp()))))


def test_a_past_expires_is_refused_and_a_later_one_lasts_at_most_12_hours():
    created = int((NOW - timedelta(hours=2)).timestamp())
    past = verify(signed(created=created, expires=created + 60))
    assert past.reason == "signature date is too old"
    check(verify(signed(created=created, expires=created + 6 * 3600)))
    long_ago = int((NOW - timedelta(hours=14)).timestamp())
    capped = verify(signed(created=long_ago, expires=long_ago + 48 * 3600))
    assert capped.reason == "signature date is too old"


@pytest.mark.parametrize("origin", ["https://c.example", "https://b.example:8443",
                                    "https://b.example.evil"])
def test_a_signature_for_another_host_is_refused(origin):
    facts = verify(signed(), origin=origin)
    assert facts.signature_valid and facts.host_matches is False
    assert facts.reason == "signature is for another host"


def test_the_authority_is_compared_as_url_host_writes_it():
    request = signed(url="https://B.Example:443/inbox", headers={"Host": "B.Example:443"})
    request["path"] = "/inbox"
    facts = verify(request)
    assert facts.host_matches
    # the sender signed its own spelling of the target URI, which is not ours
    assert facts.reason == "signature does not match"
    request = signed(components=("@method", "@authority", "@path", "content-digest"),
                     headers={"Host": "B.EXAMPLE"})
    assert verify(request).host_matches


def test_a_host_rewritten_after_signing_fails_the_signature():
    request = signed()
    request["headers"]["host"] = "c.example"
    facts = verify(request)
    assert not facts.signature_valid and facts.host_matches is False
    assert facts.reason == "signature does not match"


def test_an_uncovered_authority_is_refused_even_with_a_valid_signature():
    facts = verify(signed(components=("@method", "@path", "content-digest")))
    assert facts.host_matches is False


@pytest.mark.parametrize("alg,public,reason", [
    ("ed25519", RSA_PUBLIC, "does not fit the key"),
    ("rsa-v1_5-sha256", ED_PUBLIC, "does not fit the key"),
    ("rsa-pss-sha512", RSA_PUBLIC, "unsupported signature algorithm"),
    ("hmac-sha256", RSA_PUBLIC, "unsupported signature algorithm"),
], ids=["ed25519-rsa-key", "rsa-ed25519-key", "rsa-pss", "hmac"])
def test_an_algorithm_that_is_unsupported_or_does_not_fit_the_key_is_refused(alg, public, reason):
    facts = verify(signed(alg=alg), public)
    assert not facts.signature_valid
    assert reason in facts.reason


@pytest.mark.parametrize("private,public", [(RSA_PRIVATE, public_pem(generate_key())),
                                            (ED_PRIVATE, OTHER_ED_PUBLIC)], ids=["rsa", "ed25519"])
def test_a_signature_by_another_key_is_refused(private, public):
    facts = verify(signed(private, alg=None), public)
    assert not facts.signature_valid
    assert facts.reason == "signature does not match"


@pytest.mark.parametrize("change", ["method", "path", "query", "date"])
def test_a_tampered_request_fails_the_signature(change):
    request = signed(url=f"{INBOX}?page=1")
    if change == "method":
        request["method"] = "PUT"
    elif change == "path":
        request["path"] = "/groups/x/inbox"
    elif change == "query":
        request["query"] = "page=2"
    else:
        request["headers"]["date"] = "Tue, 04 Mar 2025 12:00:01 GMT"
    assert verify(request).reason == "signature does not match"


def test_a_covered_header_that_is_missing_or_holds_a_line_break_is_refused():
    request = signed(components=("@method", "@target-uri", "content-digest", "accept"),
                     headers={"Accept": AP})
    del request["headers"]["accept"]
    assert verify(request).reason == "covered component accept is missing"
    request["headers"]["accept"] = 'x\n"@method": GET'
    assert verify(request).reason == "covered component accept is not printable ASCII"


def test_an_unusable_key_is_refused():
    facts = verify(signed(), "-----BEGIN PUBLIC KEY-----\nnonsense\n-----END PUBLIC KEY-----")
    assert facts.reason.startswith("unusable public key")


# Malformed headers

VALID_INPUT = 'sig1=("@method" "@target-uri" "content-digest");created=1741089600;keyid="k"'
VALID_SIGNATURE = "sig1=:AAAA:"


@pytest.mark.parametrize("signature_input,signature,reason", [
    ("", VALID_SIGNATURE, "names no signature"),
    ('sig1="@method"', VALID_SIGNATURE, "is not a list of components"),
    ('sig1=("@method" "@method");created=1;keyid="k"', VALID_SIGNATURE, "covers a component twice"),
    ('sig1=("@method");created=1', VALID_SIGNATURE, "has no keyid"),
    ('sig1=("@method");keyid="k"', VALID_SIGNATURE, "has no created"),
    ('sig1=("@method");created=1;keyid=k', VALID_SIGNATURE, "keyid is not a string"),
    ('sig1=("@method");created="1";keyid="k"', VALID_SIGNATURE, "created is not a Unix time"),
    ('sig1=("@method");created=-1;keyid="k"', VALID_SIGNATURE, "created is not a Unix time"),
    ('sig1=("@method");created=1.5;keyid="k"', VALID_SIGNATURE, "created is not a Unix time"),
    ('sig1=("@method");created=999999999999999;keyid="k"', VALID_SIGNATURE, "out of range"),
    ('sig1=("@method");created=1;expires=?1;keyid="k"', VALID_SIGNATURE, "expires is not"),
    ('sig1=("@method");created=1;keyid="k";alg=""', VALID_SIGNATURE, "alg is not a string"),
    ('sig1=("@status");created=1;keyid="k"', VALID_SIGNATURE, "@status is not supported"),
    ('sig1=("@query-param";name="a");created=1;keyid="k"', VALID_SIGNATURE, "has parameters"),
    ('sig1=("Host");created=1;keyid="k"', VALID_SIGNATURE, "not a lower-case field name"),
    ('sig1=(host);created=1;keyid="k"', VALID_SIGNATURE, "is not a string"),
    ('sig1=("@method"', VALID_SIGNATURE, "a list is not closed"),
    ('sig1=("@method""host");created=1;keyid="k"', VALID_SIGNATURE, "separated by spaces"),
    (VALID_INPUT + ",", VALID_SIGNATURE, "ends with a comma"),
    (VALID_INPUT + " sig2=()", VALID_SIGNATURE, "separated by commas"),
    (VALID_INPUT + ", sig1=()", VALID_SIGNATURE, "sig1 repeated"),
    ('Sig1=("@method");created=1;keyid="k"', VALID_SIGNATURE, "a key is expected"),
    ('sig1=("@method");created=1;created=2;keyid="k"', VALID_SIGNATURE, "created repeated"),
    ('sig1=("@method");created=1;keyid="k\\n"', VALID_SIGNATURE, "a string is expected"),
    ('sig1=("@method");created=1;keyid="kéy"', VALID_SIGNATURE, "not ASCII"),
    ("x" * 9000, VALID_SIGNATURE, "too long"),
    (VALID_INPUT, "", "Signature has no sig1"),
    (VALID_INPUT, "sig2=:AAAA:", "Signature has no sig1"),
    (VALID_INPUT, 'sig1="AAAA"', "is not a byte sequence"),
    (VALID_INPUT, "sig1=::", "is not a byte sequence"),
    (VALID_INPUT, "sig1=:AA=A:", "is not base64"),
    (VALID_INPUT, "sig1=:A:", "is not base64"),
    (VALID_INPUT, "sig1=:" + "A" * 2000 + ":", "signature is too long"),
    (VALID_INPUT, 'keyId="k",signature="AAAA"', "Signature header is malformed"),
])
def test_a_malformed_signature_is_a_one_line_reason(signature_input, signature, reason):
    with pytest.raises(SignatureError, match=reason) as raised:
        parse_message_signature(signature_input, signature)
    assert "\n" not in str(raised.value)
    facts = verify_message("POST", "/inbox", None, {"signature-input": signature_input,
                                                   "signature": signature, "host": "b.example"},
                           BODY, RSA_PUBLIC, NOW, origin=ORIGIN)
    assert not facts.signature_valid and reason in facts.reason


def test_the_caps_on_members_and_components_hold():
    members = ", ".join(f"s{i}=:AAAA:" for i in range(MAX_MEMBERS + 1))
    with pytest.raises(SignatureError, match="too many members"):
        parse_dictionary(members, "Signature")
    components = " ".join(f'"h{i}"' for i in range(MAX_COMPONENTS + 1))
    with pytest.raises(SignatureError, match="too many items"):
        parse_message_signature(f'sig1=({components});created=1;keyid="k"', VALID_SIGNATURE)
    with pytest.raises(SignatureError, match="key is too long"):
        parse_dictionary("k" * 65 + "=1", "Signature")


def test_padding_may_be_left_off_a_byte_sequence():
    assert parse_message_signature(VALID_INPUT, "sig1=:AAAAAA:").signature == b"\0" * 4
    assert parse_dictionary("a=:AAAAAA==:", "x")["a"].value == b"\0" * 4


def test_structured_field_items_of_every_kind_are_read():
    parsed = parse_dictionary('a=1, b=-2.50, c="x\\"y", d=tok/en:1, e=?0, f, g=(1 2);p', "x")
    assert [item.value for item in parsed.values()][:6] == [1, -2.5, 'x"y', "tok/en:1", False,
                                                           True]
    assert parsed["g"].parameters == {"p": True}


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300), st.text(max_size=100))
def test_any_text_raises_nothing_but_signature_error(signature_input, signature):
    try:
        parse_message_signature(signature_input, signature)
    except SignatureError as error:
        assert "\n" not in str(error)
    facts = verify_message("POST", "/inbox", None, {"signature-input": signature_input,
                                                   "signature": signature}, BODY, RSA_PUBLIC,
                           NOW, origin=ORIGIN)
    assert not facts.signature_valid


_ITEM = st.one_of(st.integers(-10**15 + 1, 10**15 - 1).map(str),
                  st.from_regex(r'"[ -!#-\[\]-~]{0,8}"', fullmatch=True),
                  st.from_regex(r"[a-z*][a-z0-9_.*-]{0,6}", fullmatch=True),
                  st.just("?1"), st.just(":AAAA:"), st.just("("), st.just(")"), st.just(";"),
                  st.just("="), st.just(", "), st.just(" "), st.just('"@method"'))


@settings(max_examples=400, deadline=None)
@given(st.lists(_ITEM, max_size=30).map("".join), st.lists(_ITEM, max_size=10).map("".join))
def test_structured_field_shaped_text_raises_nothing_but_signature_error(signature_input,
                                                                         signature):
    try:
        parse_message_signature(signature_input, signature)
    except SignatureError:
        pass
