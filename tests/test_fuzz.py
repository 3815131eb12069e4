"""Fuzzing with hypothesis: parsers answer with their own error or a value, pages never 500.

The signature header parser, the activity and object parsers, the JSON
reader, the Markdown/HTML path, and the real app in-process (arbitrary bodies
to /inbox, arbitrary query strings to /groups). Runs are derandomized, so a
failure here is the same failure on every machine.
"""
from __future__ import annotations

import base64
import itertools
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from federation.fetch import MAX_JSON_DEPTH, FetchError, parse_json_document
from federation.objects import ObjectError, parse_event, parse_group, plain_text
from federation.signatures import (
    SignatureError,
    SignatureParams,
    parse_signature_header,
)
from node.app import create_app
from node.cli import initialise
from node.config import load_config
from node.text import render_markdown, sanitize_html
from tests.html_safety import assert_safe_html

FUZZ = settings(derandomize=True, deadline=None, max_examples=400,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# JSON values as a peer might send them (keys from the shapes we read, and anything else).
KEYS = st.sampled_from([
    "id", "type", "name", "summary", "content", "agreements", "preferredUsername", "url",
    "to", "cc", "tag", "topics", "languages", "audiences", "accessibility", "format", "cost",
    "area", "joinPolicy", "location", "address", "streetAddress", "addressLocality",
    "startTime", "endTime", "timezone", "recurrence", "dtstart", "durationMinutes", "rrule",
    "cancelled", "moved", "original", "start", "isOnline", "maximumAttendeeCapacity",
    "ical:status", "attributedTo", "Hashtag", "x",
]) | st.text(max_size=10)
SCALARS = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
           | st.text(max_size=40)
           | st.sampled_from(["Group", "Event", "Hashtag", "Place", "CANCELLED", "UTC",
                              "Europe/London", "2026-05-01T18:00", "2026-05-01T18:00:00Z",
                              "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00",
                              "FREQ=WEEKLY;BYDAY=TU", "FREQ=SECONDLY", "FREQ=DAILY;COUNT=99999",
                              "in_person", "online", "#grief", "en", "<b>x</b>"]))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=5)
                    | st.dictionaries(KEYS, inner, max_size=8), max_leaves=40)
DOCUMENTS = st.dictionaries(KEYS, JSON, max_size=14)


INSTANTS = st.datetimes(timezones=st.timezones()).map(lambda moment: moment.isoformat())
LOCAL_TIMES = st.datetimes().map(lambda moment: moment.strftime("%Y-%m-%dT%H:%M"))
HASHTAGS = st.lists(st.fixed_dictionaries({"type": st.just("Hashtag")}, optional={"name": JSON}),
                    max_size=3)
RECURRENCES = st.fixed_dictionaries({"dtstart": LOCAL_TIMES}, optional={
    "timezone": JSON, "durationMinutes": JSON, "rrule": JSON,
    "cancelled": JSON | st.lists(LOCAL_TIMES, max_size=3),
    "moved": JSON | st.lists(st.fixed_dictionaries(
        {"original": LOCAL_TIMES, "start": LOCAL_TIMES}, optional={"durationMinutes": JSON}),
        max_size=2)})


def shaped(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    """Documents of ``kind`` whose fields have the shapes read, with any values inside."""
    fields = {"type": st.just(kind), "preferredUsername": st.just("tea"),
              "name": st.just("Tea") | JSON}
    optional = {"tag": HASHTAGS | JSON, "startTime": INSTANTS | JSON,
                "endTime": INSTANTS | JSON, "recurrence": RECURRENCES | JSON,
                "timezone": st.timezone_keys() | JSON, "location": JSON,
                "topics": JSON, "languages": JSON, "summary": JSON, "content": JSON}
    return st.fixed_dictionaries(fields, optional=optional)


# --- parsers ---------------------------------------------------------------------------


VALID_HEADER = ('keyId="https://peer.example/actor#main-key",algorithm="rsa-sha256",'
                'headers="(request-target) host date digest",signature="c2lnbmF0dXJl"')


@given(st.lists(st.tuples(st.integers(0, len(VALID_HEADER)),
                          st.integers(0, 8),
                          st.text(',="\\ \tkeyIdsgnatur()-=0aA\x00\x7f\u00e9', max_size=6)),
                max_size=6))
@FUZZ
def test_a_mutated_signature_header_parses_or_raises_signature_error(edits) -> None:
    value = VALID_HEADER
    for position, length, text in edits:
        value = value[:position] + text + value[position + length:]
    try:
        params = parse_signature_header(value)
    except SignatureError as error:
        assert "\n" not in str(error)
        return
    assert isinstance(params, SignatureParams) and params.key_id


QUOTABLE = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FFF,
                                 blacklist_categories=("Cs", "Cc")), min_size=1, max_size=60)


@given(QUOTABLE)
@FUZZ
def test_any_key_id_quoted_with_escapes_reads_back_unchanged(key_id: str) -> None:
    quoted = key_id.replace("\\", "\\\\").replace('"', '\\"')
    params = parse_signature_header(f'keyId="{quoted}",signature="c2ln"')
    assert params.key_id == key_id


@pytest.mark.parametrize("value", [
    '"' * 8000, 'a="' + "\\" * 7990, "a=" + "b" * 8000, ("a=b," * 2000)[:8000],
    'keyId="' + "\\x" * 3995 + '"', " \t" * 4000,
])
def test_the_signature_parser_is_linear_on_long_adversarial_headers(value: str) -> None:
    started = time.perf_counter()
    with pytest.raises(SignatureError):
        parse_signature_header(value)
    assert time.perf_counter() - started < 0.2


@given(shaped("Group") | DOCUMENTS)
@example({"type": "Group", "preferredUsername": "tea", "tag": [{"type": "Hashtag", "name": 5}]})
@FUZZ
def test_parse_group_returns_a_listing_or_raises_object_error(document) -> None:
    try:
        username, draft = parse_group(document)
    except ObjectError:
        return
    assert re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", username)
    for text in (draft.name, draft.summary, draft.description, draft.agreements, draft.area):
        assert "<script" not in text.lower() or "&lt;" in json.dumps(document)


@given(shaped("Event") | DOCUMENTS)
@example({"type": "Event", "name": "x", "startTime": "0001-01-01T00:00:00+14:00"})
@example({"type": "Event", "name": "x", "recurrence": {"dtstart": "2026-01-01T10:00",
                                                      "timezone": ["Europe/London"]}})
@example({"type": "Event", "name": "x", "recurrence": {"dtstart": "2026-01-01T10:00",
                                                      "cancelled": 5}})
@FUZZ
def test_parse_event_returns_a_meeting_or_raises_object_error(document) -> None:
    try:
        draft, changes, cancelled = parse_event(document)
    except ObjectError:
        return
    assert draft.online_url == "" and 0 < draft.duration_minutes <= 24 * 60
    assert isinstance(cancelled, bool) and isinstance(changes, list)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


@given(st.binary(max_size=300) | JSON.map(lambda v: json.dumps(v).encode())
       | st.dictionaries(KEYS, JSON).map(lambda v: json.dumps(v, ensure_ascii=False).encode()))
@FUZZ
def test_parse_json_document_returns_an_object_or_raises_fetch_error(body: bytes) -> None:
    try:
        document = parse_json_document(body)
    except FetchError as error:
        assert "\n" not in error.reason
        return
    assert isinstance(document, dict) and _depth(document) <= MAX_JSON_DEPTH
    assert document == _wide_ints_as_floats(json.loads(body.decode("utf-8")))


def _wide_ints_as_floats(value: Any) -> Any:
    """The parser (orjson) reads an integer outside 64 bits as a float; so does this."""
    if isinstance(value, dict):
        return {k: _wide_ints_as_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_wide_ints_as_floats(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) \
            and not -2**63 <= value < 2**64:
        return float(value)
    return value


@given(st.integers(1, 200), st.sampled_from(["[", '{"a":']),
       st.text('[]{}"\\ ab', max_size=30))
@FUZZ
def test_json_depth_is_counted_outside_strings_only(depth: int, opener: str, text: str) -> None:
    inside = json.dumps(text)  # brackets and escapes inside a string never count
    closer = "]" if opener == "[" else "}"
    body = ('{"s": ' + inside + ', "v": ' + opener * depth + "1" + closer * depth + "}").encode()
    if depth + 1 > MAX_JSON_DEPTH:
        with pytest.raises(FetchError, match="nested"):
            parse_json_document(body)
    else:
        assert parse_json_document(body)["s"] == text


def test_a_megabyte_of_brackets_is_refused_quickly() -> None:
    started = time.perf_counter()
    with pytest.raises(FetchError):
        parse_json_document(b"[" * 1_000_000)
    with pytest.raises(FetchError):
        parse_json_document(b'{"a": "' + b"\\\"" * 500_000 + b'"')
    assert time.perf_counter() - started < 2


# --- the Markdown/HTML path --------------------------------------------------------------


HOSTILE_PIECES = st.sampled_from([
    "<script>alert(1)</script>", "<SCRIPT SRC=//x>", "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">x</a>', "[x](javascript:alert(1))", "[x](JaVaScRiPt:a)",
    "[x](java\tscript:a)", "[x](&#106;avascript:a)", "[x](data:text/html,<script>)",
    "[x](vbscript:a)", "<svg/onload=alert(1)>", "<style>*{}</style>", '<p style="x">',
    "<iframe src=x>", "<a href='  javascript:a'>", "![i](javascript:a)", "<!--", "-->",
    "<![CDATA[", "`<script>`", "```\n<script>\n```", "&lt;script&gt;", "<", ">", "&",
    '"', "'", "\\", "*", "_", "[", "]", "(", ")", "\n", "\n\n", "    ", "|", "---", "#",
    "<http://x>", "<javascript:alert(1)>", "<mailto:a@b>", "<a href=x onclick=y>",
])
MARKDOWNISH = st.lists(HOSTILE_PIECES | st.text(max_size=12), max_size=25).map("".join)


@given(MARKDOWNISH | st.text(max_size=300))
@FUZZ
def test_rendered_markdown_never_carries_script_handlers_or_javascript_links(source) -> None:
    assert_safe_html(str(render_markdown(source)))


@given(MARKDOWNISH | st.text(max_size=300))
@FUZZ
def test_sanitized_html_never_carries_script_handlers_or_javascript_links(html) -> None:
    assert_safe_html(str(sanitize_html(html)))


@pytest.mark.parametrize("source", [
    "<br" + " " * 100_000 + "x", "<" * 100_000, "[" * 50_000 + "](" * 50_000,
    "*" * 100_000, "_a" * 50_000, "> " * 50_000, "`" * 100_000, "<!--" * 25_000,
    "![" * 30_000, "&#" * 50_000, "| a " * 25_000 + "\n|---" * 10,
])
def test_markdown_and_plain_text_stay_fast_on_backtracking_input(source: str) -> None:
    started = time.perf_counter()
    render_markdown(source)
    plain_text(source, 20_000)
    assert time.perf_counter() - started < 5, source[:20]


# --- the app in-process ------------------------------------------------------------------


@pytest.fixture(scope="module")
def app_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    data = tmp_path_factory.mktemp("fuzz") / "node"
    initialise(data, "https://ours.example")  # not --dev: nothing private is ever fetched
    with TestClient(create_app(load_config(data)), base_url="https://ours.example",
                    raise_server_exceptions=False) as client:
        yield client


# keyIds on documentation addresses: refused before any lookup or connection. The host
# comes from a counter, not from hypothesis, so each request has a rate-limit bucket of
# its own and the fuzz reaches the parsers instead of the limiter.
_KEY_HOSTS = itertools.cycle(f"{net}.{n}" for net in ("192.0.2", "198.51.100", "203.0.113")
                             for n in range(256))
SIGNATURES = st.builds(
    lambda rest: f'keyId="https://{next(_KEY_HOSTS)}/actor#main-key",algorithm="rsa-sha256",'
                 f'headers="(request-target) host date digest",signature="{rest}"',
    st.binary(min_size=1, max_size=16).map(lambda raw: base64.b64encode(raw).decode()))
ACTIVITIES = st.fixed_dictionaries(
    {"id": st.just("https://peer.example/a/1") | st.text(max_size=20),
     "type": st.sampled_from(["Create", "Update", "Delete", "Follow", "Undo", "Announce",
                              "Accept", "Flag"]) | st.text(max_size=10),
     "actor": st.just("https://peer.example/actor") | st.text(max_size=20),
     "object": JSON}, optional={"to": JSON, "@context": JSON})
BODIES = (st.binary(max_size=200) | ACTIVITIES.map(lambda a: json.dumps(a).encode())
          | JSON.map(lambda v: json.dumps(v).encode()))


# Mostly well-formed signatures (each keyId its own bucket), sometimes none or junk after one.
SIGNATURE_HEADERS = st.integers(0, 9).flatmap(
    lambda n: st.none() if n == 0 else SIGNATURES.map(lambda v: v + "x,=") if n == 1
    else SIGNATURES)


@given(body=BODIES, signature=SIGNATURE_HEADERS,
       content_type=st.sampled_from(["application/activity+json", "application/ld+json",
                                     'application/ld+json; profile="x"', "application/json",
                                     "text/plain", ""]),
       path=st.sampled_from(["/inbox", "/actor/inbox", "/groups/x/inbox"]))
@settings(FUZZ, max_examples=250)
def test_any_post_to_an_inbox_is_answered_without_a_500(app_client, body, signature,
                                                        content_type, path) -> None:
    headers = {"Content-Type": content_type}
    if signature:
        headers["Signature"] = signature
    response = app_client.post(path, content=body, headers=headers)
    event(f"HTTP {response.status_code}")
    assert response.status_code < 500, (response.status_code, response.text[:200])
    assert response.status_code != 202  # nothing unsigned or unverifiable is taken


PARAM_NAMES = st.sampled_from(["q", "topic", "language", "format", "accessibility", "cost",
                               "area", "origin", "from", "to", "page"]) | st.text(max_size=6)
PARAM_VALUES = (st.text(max_size=30) | st.text(st.characters(categories=["Nd", "No"]), max_size=4)
                | st.sampled_from(["1", "0", "-1", "99999999999999999999", "²", "١٢", "1" * 5000,
                                   "2026-01-01", "9999-99-99", "0000-00-00", "٢٠٢٦-٠١-٠١",
                                   '"', "*", "NEAR(a b)", "a OR b", "^", "local", "federated",
                                   "online", "free", "step_free", "%00", "\x00", "\ud7ff"]))


@given(st.lists(st.tuples(PARAM_NAMES, PARAM_VALUES), max_size=6))
@example([("page", "²")])
@example([("page", "1" * 5000)])
@settings(FUZZ, max_examples=300)
def test_any_directory_query_is_answered_without_a_500(app_client, params) -> None:
    query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params)
    response = app_client.get(f"/groups?{query}")
    assert response.status_code in (200, 400), (params, response.status_code)
    assert "Traceback" not in response.text


# --- coverage-guided, where atheris is installed -----------------------------------------

ATHERIS_SEEDS = {
    "signature_header": [VALID_HEADER.encode(), b'keyId="a",signature="YQ==",created=1,expires=2'],
    "json_document": [(b'{"id": "https://p.example/a", "type": "Create",'
                      b' "object": {"a": [1, 2.5, null, true, "\\u00e9\\"[{"]}}')],
    "markdown": [b"# T\n\n**b** [l](https://x.example) <b>x</b> `c`\n\n- a\n> q\n",
                 b'<a href="javascript:x">y</a><img onerror=x>'],
}


@pytest.mark.parametrize("target", ATHERIS_SEEDS)
def test_coverage_guided_fuzzing_finds_no_crash(tmp_path: Path, target: str) -> None:
    pytest.importorskip("atheris")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for number, seed in enumerate(ATHERIS_SEEDS[target]):
        (corpus / str(number)).write_bytes(seed)
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, str(root / "tests" / "fuzz_atheris.py"), target, str(corpus),
         "-runs=20000", "-max_total_time=20", "-timeout=10",
         f"-artifact_prefix={tmp_path}/"],
        check=False, capture_output=True, text=True, timeout=180, cwd=root,
        env=os.environ | {"PYTHONPATH": str(root)})
    assert result.returncode == 0, result.stderr[-4000:]
    assert "Done" in result.stderr
