"""Peer nodes on loopback, serving their actor documents for the node's key fetches.

Each peer is its own host (a loopback address, 127.0.x.y, and one shared
port), so the node sees many distinct senders. Documents are written by the
benchmark into a JSON file: ``{"addresses": [[ip, port], ...], "documents":
{"ip:port/path": text}}``. Run: ``python -m bench.peer_stub FILE``.
"""
from __future__ import annotations

import asyncio
import json
import sys

from bench.httpstub import serve_addresses

AP = "application/activity+json"


def main() -> None:
    with open(sys.argv[1]) as file:
        spec = json.load(file)
    documents = {key: text.encode() for key, text in spec["documents"].items()}

    def answer(method: str, path: str, headers: dict[str, str], body: bytes
               ) -> tuple[int, str, bytes]:
        document = documents.get(headers.get("host", "") + path)
        if method != "GET" or document is None:
            return 404, "text/plain", b"not here"
        return 200, AP, document

    asyncio.run(serve_addresses(answer, [tuple(a) for a in spec["addresses"]]))


if __name__ == "__main__":
    main()
