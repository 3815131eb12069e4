"""Small builders shared by tests."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import fields, replace
from datetime import date, datetime, timedelta
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import uvicorn
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding
from starlette.applications import Starlette

from node.config import CONFIG_FILE, load_config
from node.db import Database, database_at
from node.domain import Cost, Format, GroupDraft, JoinPolicy, Visibility
from node.storage import accounts, events, groups


def group_form(**overrides: object) -> dict[str, object]:
    """A valid group form as a facilitator fills it in."""
    form: dict[str, object] = {
        "name": "Tuesday Grief Circle",
        "summary": "A gentle peer group for anyone grieving.",
        "description": "We meet **weekly**. Tea provided.",
        "agreements": "1. What is said here stays here.",
        "topics": "grief, bereavement",
        "audiences": "",
        "languages": "en",
        "format": "in_person",
        "area": "Leith",
        "address": "12 Kirkgate, Edinburgh",
        "cost": "free",
        "contact": "hello@grief-circle.example",
        "visibility": "public",
        "join_policy": "open",
        "accessibility": ["step_free", "quiet_space"],
    }
    form.update(overrides)
    return form


# A week on Tuesday-ish at 19:00, local: far enough ahead to be upcoming.
FIRST_MEETING = datetime.combine(date.today() + timedelta(days=8),
                                 datetime.min.time()).replace(hour=19)


def local_key(moment: datetime) -> str:
    """A local wall time as forms and occurrence keys write it."""
    return moment.strftime("%Y-%m-%dT%H:%M")


def meeting_form(**overrides: object) -> dict[str, object]:
    """A valid meeting form as a facilitator fills it in."""
    form: dict[str, object] = {
        "title": "Evening circle",
        "description": "Bring **tea** if you like.",
        "starts_at": local_key(FIRST_MEETING),
        "duration": "90",
        "timezone": "Europe/London",
        "repeat": "none",
        "format": "in_person",
        "place": "Upstairs room",
        "address": "12 Kirkgate, Edinburgh",
        "online_url": "",
        "capacity": "",
    }
    form.update(overrides)
    return form


def draft(**overrides: object) -> GroupDraft:
    values: dict[str, object] = dict(
        name="Anxiety Peer Support",
        summary="Share and listen.",
        description="",
        agreements="",
        visibility=Visibility.PUBLIC,
        join_policy=JoinPolicy.OPEN,
        format=Format.ONLINE,
        cost=Cost.FREE,
        topics=("anxiety",),
        languages=("en",),
    )
    values.update(overrides)
    return GroupDraft(**values)


# The engine the suite runs on: "sqlite" (the default) or "postgresql", when every node a
# test makes keeps its data on the session's throwaway PostgreSQL server (tests.postgres).
ENGINE = os.environ.get("GRASSROOTS_TEST_ENGINE", "sqlite")
NEW_POSTGRES_DATABASE: list[Callable[[], str]] = []  # set by conftest on PostgreSQL runs
_stand_ins: dict[Path, str] = {}


def where(path: Path) -> Path | str:
    """Where a test's database is on the engine under test. ``path`` is a data directory,
    its grassroots.db, or a file a test opens a Database on: a data directory's is the
    one its config names; a file is itself on SQLite and a fresh PostgreSQL database of
    its own (the same one each time) on PostgreSQL."""
    for directory in (path, path.parent):
        if (directory / CONFIG_FILE).is_file():
            return load_config(directory).database
    if ENGINE == "sqlite":
        return path
    if path.resolve() not in _stand_ins:
        _stand_ins[path.resolve()] = NEW_POSTGRES_DATABASE[0]()
    return _stand_ins[path.resolve()]


def database(path: Path) -> Database:
    """The (unopened) Database at ``where(path)``."""
    return database_at(where(path))


def run_on(path: Path, work: Callable[[Database], Any]) -> Any:
    """Run ``work(db)`` on the database at ``where(path)``, beside the node using it."""
    async def go() -> Any:
        db = database(path)
        await db.open()
        try:
            return await work(db)
        finally:
            await db.close()
    return asyncio.run(go())


async def publish_listing(db: Database, listing: GroupDraft,
                          *series: Any) -> tuple[int, list[int]]:
    """A local group by a new facilitator, with meeting series: (group id, series ids)."""
    host = await accounts.create_account(db, email=None, display_name="Host",
                                         password_hash=None)
    group = await groups.get_group(db, await groups.create_group(db, listing, host))
    return group.id, [await events.create_event(db, group.id, s) for s in series]


async def set_visibility(db: Database, group_id: int, visibility: Visibility) -> None:
    """A facilitator's edit of a group's visibility, and nothing else."""
    group = await groups.get_group_by_id(db, group_id)
    listing = GroupDraft(**{f.name: getattr(group, f.name) for f in fields(GroupDraft)})
    await groups.update_group(db, group_id, replace(listing, visibility=visibility))


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _until_it_answers(proc: subprocess.Popen, url: str, why_it_ended: Callable[[], str],
                      timeout: float = 30) -> None:
    """Poll ``url`` until it answers 200, while ``proc`` runs."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert proc.poll() is None, why_it_ended()
        assert time.monotonic() < deadline, "the node did not start"
        time.sleep(0.1)


@contextmanager
def serving(data: Path, *extra: str, host: str = "127.0.0.1",
            port: int | None = None) -> Iterator[tuple[str, list[str]]]:
    """Run ``grassroots serve`` until it answers; yield its URL and output lines."""
    port = port or free_port(host)
    url = f"http://{host}:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "node.cli", "serve", "--data", str(data), "--host", host,
         "--port", str(port), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout],
                              daemon=True)
    reader.start()
    output: list[str] = []
    try:
        _until_it_answers(proc, url + "/", lambda: "".join(output) + "".join(lines.queue))
        while not lines.empty():
            output.append(lines.get())
        yield url, output
    finally:
        proc.terminate()
        proc.wait(timeout=15)


@contextmanager
def started(argv: list[str], url: str, stderr: Any = subprocess.DEVNULL,
            timeout: float = 30) -> Iterator[subprocess.Popen]:
    """A node process run by ``argv`` (from the checkout), once ``url`` answers /healthz."""
    proc = subprocess.Popen(argv, cwd=Path(__file__).resolve().parent.parent,
                            stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        _until_it_answers(proc, url + "/healthz", lambda: f"the node ended with {proc.returncode}",
                          timeout)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=15)


@contextmanager
def loopback_server(app: Starlette, port: int, host: str = "127.0.0.1") -> Iterator[None]:
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the loopback server did not start"
        time.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(10)


def wait_for(check: Callable[[], Any], what: str, timeout: float = 20) -> Any:
    """Poll until ``check()`` is truthy; its value."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


# RFC 9421 signatures made here with `cryptography` alone, as Fedify and Mastodon 4.5
# send them: an implementation independent of federation.message_signatures.

_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
RFC9421_COMPONENTS = ("@method", "@target-uri", "@authority", "host", "date")


def multikey(public_key: ed25519.Ed25519PublicKey) -> str:
    """The FEP-521a `publicKeyMultibase` of an Ed25519 public key: "z", base58btc of
    the ed25519-pub multicodec (0xed 0x01) and the 32 key bytes."""
    data = b"\xed\x01" + public_key.public_bytes(serialization.Encoding.Raw,
                                                 serialization.PublicFormat.Raw)
    number, digits = int.from_bytes(data, "big"), ""
    while number:
        number, digit = divmod(number, 58)
        digits = _BASE58[digit] + digits
    return "z" + "1" * (len(data) - len(data.lstrip(b"\0"))) + digits


def content_digest(body: bytes, algorithm: str = "sha-256") -> str:
    """An RFC 9530 Content-Digest value of ``body``."""
    digest = hashlib.new(algorithm.replace("-", ""), body).digest()
    return f"{algorithm}=:{base64.b64encode(digest).decode()}:"


def sign_rfc9421(method: str, url: str, headers: dict[str, str], body: bytes | None,
                 key_id: str, private_key: str | ed25519.Ed25519PrivateKey, *,
                 components: tuple[str, ...] | None = None, alg: str | None = "default",
                 created: int | None = None, expires: int | None = None,
                 label: str = "sig1") -> dict[str, str]:
    """The headers to add to sign a request per RFC 9421 (Host, Date, Content-Digest for a
    body, Signature-Input, Signature); ``private_key`` is an RSA PEM (rsa-v1_5-sha256) or
    an Ed25519PrivateKey. ``alg`` None leaves the parameter out; ``created`` None is now."""
    parts = urlsplit(url)
    given = {name.lower(): value for name, value in headers.items()}
    added = {"host": given.get("host", parts.netloc),
             "date": given.get("date", formatdate(usegmt=True))}
    if body is not None:
        added["content-digest"] = given.get("content-digest", content_digest(body))
    values = given | added
    if components is None:
        components = RFC9421_COMPONENTS + (("content-digest",) if body is not None else ())
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    derived = {"@method": method.upper(), "@target-uri": url,
               "@authority": parts.netloc.lower(), "@scheme": parts.scheme,
               "@path": parts.path or "/", "@query": f"?{parts.query}", "@request-target": target}
    if alg == "default":
        alg = "rsa-v1_5-sha256" if isinstance(private_key, str) else "ed25519"
    params = "(" + " ".join(f'"{name}"' for name in components) + ")"
    params += f";created={int(time.time()) if created is None else created}"
    params += f';keyid="{key_id}"' + (f';alg="{alg}"' if alg else "")
    params += f";expires={expires}" if expires is not None else ""
    lines = [f'"{name}": {derived[name] if name.startswith("@") else values[name]}'
             for name in components]
    base = "\n".join([*lines, f'"@signature-params": {params}']).encode()
    if isinstance(private_key, str):
        key = serialization.load_pem_private_key(private_key.encode(), password=None)
        signature = key.sign(base, padding.PKCS1v15(), hashes.SHA256())
    else:
        signature = private_key.sign(base)
    return added | {"signature-input": f"{label}={params}",
                    "signature": f"{label}=:{base64.b64encode(signature).decode()}:"}
