"""A second reference for benchmark 1: the least any inbox that verifies signatures must do.

Each POST is read, parsed as JSON, its Digest checked against the body's
SHA-256, the string its Signature header names rebuilt and verified with
RSA (the key parsed beforehand, found by keyId), and answered 202. Nothing
else: no policy, no origin checks, no storage, no durability. It runs on the
uvicorn settings the node ships, like ``bench.hello``, so ``floor ÷ hello``
bounds what a Python inbox on this machine can reach.
Run: ``python -m bench.floor PORT KEYS`` where KEYS is a JSON file {keyId: public PEM}.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import sys

import orjson
import uvicorn
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from starlette.types import ASGIApp, Receive, Scope, Send

PARAMETER = re.compile(r'(\w+)="([^"]*)"')
PKCS1V15, SHA256 = padding.PKCS1v15(), hashes.SHA256()


def app_for(keys: dict[str, str]) -> ASGIApp:
    parsed = {key_id: load_pem_public_key(pem.encode()) for key_id, pem in keys.items()}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if scope["method"] != "POST":
            status = 200
        else:
            status = 202 if _verified(scope, body, parsed) else 401
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})

    return app


def _verified(scope: Scope, body: bytes, keys: dict) -> bool:
    orjson.loads(body)
    headers = {name.decode(): value.decode() for name, value in scope["headers"]}
    params = dict(PARAMETER.findall(headers["signature"]))
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    if headers["digest"] != f"SHA-256={digest}":
        return False
    lines = [f"(request-target): post {scope['path']}" if name == "(request-target)"
             else f"{name}: {headers[name]}" for name in params["headers"].split()]
    try:
        keys[params["keyId"]].verify(base64.b64decode(params["signature"]),
                                     "\n".join(lines).encode(), PKCS1V15, SHA256)
    except Exception:  # noqa: BLE001 - any failure is a refusal here
        return False
    return True


if __name__ == "__main__":
    with open(sys.argv[2]) as file:
        application = app_for(json.load(file))
    uvicorn.run(application, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
                access_log=False, proxy_headers=False, ws="none")
