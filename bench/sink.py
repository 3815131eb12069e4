"""Peers' inboxes on loopback: a sink that checks each delivery's signature and counts it.

``POST /inbox/N`` is follower N's inbox. Each POST is verified with
``federation.signatures`` against the signer's key, fetched once from the
node by its keyId, and recorded by the object it carries. With failing on,
every tenth inbox (N divisible by 10) answers 500. Control, as GETs:
``/fail/on``, ``/fail/off``, and ``/stats?object=URL`` (JSON: inboxes
delivered, first and last arrival on the monotonic clock, bad signatures,
500s given). Run: ``python -m bench.sink PORT``.
"""
from __future__ import annotations

import asyncio
import json
import sys
import time
import urllib.request
from urllib.parse import parse_qs, urlsplit

from bench.httpstub import serve_addresses
from federation.signatures import (
    SignatureError,
    check,
    parse_signature_header,
    verify_request,
)


class Sink:
    def __init__(self) -> None:
        self.failing = False
        self.keys: dict[str, str] = {}
        self.objects: dict[str, dict] = {}

    def answer(self, method: str, path: str, headers: dict[str, str], body: bytes
               ) -> tuple[int, str, bytes]:
        if method == "GET":
            return self._control(path)
        number = int(path.rsplit("/", 1)[-1])
        document = json.loads(body)
        obj = document.get("object")
        record = self.objects.setdefault(obj.get("id") if isinstance(obj, dict) else obj, {
            "delivered": set(), "first": None, "last": None, "bad": 0, "refused": 0})
        if self.failing and number % 10 == 0:
            record["refused"] += 1
            return 500, "text/plain", b"failing on purpose"
        if not self._verified(path, headers, body):
            record["bad"] += 1
            return 401, "text/plain", b"bad signature"
        now = time.monotonic()
        record["first"] = record["first"] or now
        record["last"] = now
        record["delivered"].add(number)
        return 202, "text/plain", b""

    def _verified(self, path: str, headers: dict[str, str], body: bytes) -> bool:
        try:
            key_id = parse_signature_header(headers.get("signature", "")).key_id
            check(verify_request("POST", path, None, headers, body, self._key(key_id)))
        except (SignatureError, OSError, KeyError, ValueError):
            return False
        return True

    def _key(self, key_id: str) -> str:
        if key_id not in self.keys:
            request = urllib.request.Request(key_id.split("#")[0],
                                             headers={"Accept": "application/activity+json"})
            with urllib.request.urlopen(request, timeout=10) as response:
                self.keys[key_id] = json.load(response)["publicKey"]["publicKeyPem"]
        return self.keys[key_id]

    def _control(self, path: str) -> tuple[int, str, bytes]:
        parts = urlsplit(path)
        if parts.path in ("/fail/on", "/fail/off"):
            self.failing = parts.path == "/fail/on"
            return 200, "text/plain", b"ok"
        if parts.path == "/stats":
            record = self.objects.get(parse_qs(parts.query).get("object", [""])[0])
            stats = {"delivered": 0, "first": None, "last": None, "bad": 0, "refused": 0}
            if record:
                stats = {**record, "delivered": len(record["delivered"])}
            return 200, "application/json", json.dumps(stats).encode()
        return 404, "text/plain", b""


if __name__ == "__main__":
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve_addresses(Sink().answer, [("127.0.0.1", int(sys.argv[1]))]))
