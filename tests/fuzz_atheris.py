"""Coverage-guided fuzzing with atheris (libFuzzer) of the parsers a peer's bytes reach first.

Run one target: `python tests/fuzz_atheris.py TARGET -runs=N -max_total_time=S`.
A target may only answer with its own error; anything else is a crash that
libFuzzer reports with the input that caused it. tests/test_fuzz.py runs each
target for a bounded time when atheris is installed.
"""
from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from federation.fetch import FetchError, parse_json_document
    from federation.signatures import SignatureError, parse_signature_header
    from node.text import render_markdown, sanitize_html
    from tests.html_safety import assert_safe_html


def signature_header(data: bytes) -> None:
    try:
        parse_signature_header(data.decode("latin-1"))
    except SignatureError:
        pass


def json_document(data: bytes) -> None:
    try:
        parse_json_document(data)
    except FetchError:
        pass


def markdown(data: bytes) -> None:
    text = atheris.FuzzedDataProvider(data).ConsumeUnicodeNoSurrogates(len(data))
    assert_safe_html(str(render_markdown(text)))
    assert_safe_html(str(sanitize_html(text)))


TARGETS = {"signature_header": signature_header, "json_document": json_document,
           "markdown": markdown}

if __name__ == "__main__":
    target = TARGETS[sys.argv.pop(1)]
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()
