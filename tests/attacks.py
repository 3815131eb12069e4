"""The attack suite's world: a victim node process, hostile peers on loopback, and a tally.

The victim is a real `grassroots serve` process. Each hostile peer is a
uvicorn server on its own loopback address (127.0.0.5, 127.0.0.6, ...) with
its own RSA key: it serves whatever documents a case puts up, answers every
Follow with a signed Accept, and can page its outbox forever. Every request
goes to 127.0.0.0/8 only.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from federation.addresses import url_host
from federation.keys import generate_key, public_pem
from federation.signatures import sign_headers
from tests.helpers import free_port, wait_for

AP = "application/activity+json"
AS = "https://www.w3.org/ns/activitystreams"
PUBLIC = f"{AS}#Public"


# --- hostile peers -----------------------------------------------------------------------


class Stub:
    """A hostile peer: an ActivityPub server on its own loopback address with its own key."""

    def __init__(self, ip: str, name: str) -> None:
        self.port = free_port(ip)
        self.base = f"http://{ip}:{self.port}"
        self.host = f"{ip}:{self.port}"
        self.key = generate_key()
        self.actor = f"{self.base}/actor"
        self.key_id = f"{self.actor}#main-key"
        self.documents: dict[str, tuple[int, bytes, dict[str, str]]] = {}
        self.hits: Counter[str] = Counter()
        self.received: list[dict[str, Any]] = []
        self.endless_outbox = False
        self._tasks: set[asyncio.Task] = set()
        self.serve(self.actor_document(self.actor, name))
        self.app = Starlette(routes=[Route("/{path:path}", self._answer,
                                           methods=["GET", "POST"])])

    def url(self, path: str) -> str:
        return self.base + path

    def actor_document(self, url: str, name: str, key: str | None = None,
                       **overrides: Any) -> dict[str, Any]:
        document = {
            "@context": [AS, "https://w3id.org/security/v1"],
            "id": url, "type": "Application", "preferredUsername": name,
            "inbox": f"{self.base}/inbox", "outbox": f"{self.base}/outbox",
            "endpoints": {"sharedInbox": f"{self.base}/inbox"},
            "publicKey": {"id": f"{url}#main-key", "owner": url,
                          "publicKeyPem": public_pem(key or self.key)},
        }
        document.update(overrides)
        return document

    def serve(self, document: dict[str, Any], url: str | None = None, *,
              content_type: str = AP) -> None:
        self.documents[url or document["id"]] = (200, json.dumps(document).encode(),
                                                 {"content-type": content_type})

    def redirect(self, url: str, location: str) -> None:
        self.documents[url] = (302, b"", {"location": location})

    def sign(self, activity: dict[str, Any] | bytes, url: str, *, key_id: str | None = None,
             key: str | None = None, method: str = "POST", date: datetime | str | None = None,
             content_type: str = AP) -> tuple[bytes, dict[str, str]]:
        """The body and headers of a request to ``url`` signed as this peer (or as told)."""
        body = activity if isinstance(activity, bytes) else json.dumps(activity).encode()
        headers = {"Content-Type": content_type}
        if date is not None:
            headers["Date"] = date if isinstance(date, str) else format_datetime(date,
                                                                                 usegmt=True)
        headers |= sign_headers(method, url, headers, body, key_id or self.key_id,
                                key or self.key)
        return body, headers

    async def _answer(self, request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        self.hits[target] += 1
        if request.method == "POST":
            activity = json.loads(await request.body())
            self.received.append(activity)
            if activity.get("type") == "Follow":
                task = asyncio.create_task(self._accept(activity))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            return Response(status_code=202)
        if request.url.path == "/outbox":
            return self._outbox(request.query_params.get("page"))
        status, body, headers = self.documents.get(self.base + target, (404, b"", {}))
        return Response(body, status_code=status, headers=headers)

    async def _accept(self, follow: dict[str, Any]) -> None:
        inbox = follow["actor"].rsplit("/actor", 1)[0] + "/inbox"
        accept = {"@context": AS, "id": self.url(f"/accepts/{uuid.uuid4()}"), "type": "Accept",
                  "actor": self.actor, "object": follow}
        body, headers = self.sign(accept, inbox)
        async with httpx.AsyncClient() as client:
            await client.post(inbox, content=body, headers=headers, timeout=10)

    def _outbox(self, page: str | None) -> Response:
        outbox = self.url("/outbox")
        if page is None or not page.isdigit():
            document = {"@context": AS, "id": outbox, "type": "OrderedCollection",
                        "totalItems": 0, "first": f"{outbox}?page=1"}
        else:
            document = {"@context": AS, "id": f"{outbox}?page={page}",
                        "type": "OrderedCollectionPage", "partOf": outbox, "orderedItems": []}
            if self.endless_outbox:
                document["next"] = f"{outbox}?page={int(page) + 1}"
        return Response(json.dumps(document), media_type=AP)


# --- the victim ---------------------------------------------------------------------------


@dataclass
class Victim:
    """A running node, read through a read-only SQLite connection and plain HTTP."""

    data: Path
    url: str
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

    @property
    def host(self) -> str:
        return url_host(self.url)

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        conn = sqlite3.connect(f"file:{self.data / 'grassroots.db'}?mode=ro", uri=True)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def cli(self, *args: str) -> str:
        result = subprocess.run([sys.executable, "-m", "node.cli", *args, "--data",
                                 str(self.data)], capture_output=True, text=True, timeout=60,
                                check=False)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def post(self, path: str, body: bytes | Any, headers: dict[str, str]) -> httpx.Response:
        return self.client.post(self.url + path, content=body, headers=headers)

    def serving(self) -> bool:
        return self.client.get(self.url + "/").status_code == 200

    def snapshot(self) -> tuple:
        """What an attack must leave as it was: the inbox, listings, meetings, peers."""
        digest = hashlib.sha256()
        for table, columns in (("groups", ("id, name, summary, description, agreements, area,"
                                          " visibility, origin, ap_id, url")),
                               ("events", "id, group_id, title, description, cancelled"),
                               ("peers", "host, following, follower")):
            for row in self.query(f"SELECT {columns} FROM {table} ORDER BY 1"):
                digest.update(repr(row).encode())
        inbox = self.query("SELECT count(*) FROM inbox_items")[0][0]
        return inbox, digest.hexdigest()

    def item_state(self, activity_id: str) -> str | None:
        rows = self.query("SELECT state FROM inbox_items WHERE activity_id = ?", (activity_id,))
        return rows[0][0] if rows else None

    def settled(self, activity_id: str) -> str:
        """The state the runner leaves an accepted activity in (applied or ignored)."""
        return wait_for(lambda: (state := self.item_state(activity_id)) not in
                        (None, "received") and state, f"{activity_id} to be processed")


# --- attacks and the tally -----------------------------------------------------------------


@dataclass
class Tally:
    """Every attack tried, by kind, and how it ended."""

    cases: list[tuple[str, str, str]] = field(default_factory=list)
    let_through: list[str] = field(default_factory=list)

    @property
    def tried(self) -> int:
        return len(self.cases) + len(self.let_through)

    @contextmanager
    def trying(self, kind: str, *names: str, outcome: str) -> Iterator[None]:
        """Attacks checked by the block: refused with ``outcome`` if it passes, else let through."""
        try:
            yield
        except BaseException:
            self.let_through += [f"{kind}: {name}" for name in names]
            raise
        self.cases += [(kind, name, outcome) for name in names]

    def summary(self) -> str:
        kinds = Counter(kind for kind, _, _ in self.cases)
        outcomes = Counter(outcome for _, _, outcome in self.cases)
        lines = [(f"attacks tried: {self.tried}, refused or neutralised: {len(self.cases)}, "
                  f"let through: {len(self.let_through)}")]
        lines.append("  by kind: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
        lines.append("  by answer: " + ", ".join(f"{k} {n}" for k, n in sorted(outcomes.items())))
        lines += [f"  let through: {name}" for name in self.let_through]
        return "\n".join(lines)


TALLY = Tally()


_reported: list[bool] = []


def report_tally(config: pytest.Config) -> None:
    """Print the tally once, when the test session ends (whichever attack modules ran)."""
    if _reported:
        return
    _reported.append(True)

    def report() -> None:
        capture = config.pluginmanager.get_plugin("capturemanager")
        if capture is None:
            print("\n" + TALLY.summary())
            return
        with capture.global_and_fixture_disabled():
            print("\n" + TALLY.summary())

    config.add_cleanup(report)


def refused(victim: Victim, kind: str, name: str, status: int,
            send: Callable[[], httpx.Response], reason: str = "") -> httpx.Response:
    """Send one attack; it must get ``status`` with a one-line reason and change nothing."""
    with TALLY.trying(kind, name, outcome=str(status)):
        before = victim.snapshot()
        response = send()
        assert response.status_code == status, (name, response.status_code, response.text)
        assert reason in response.text, (name, response.text)
        assert response.headers["content-type"].startswith("text/plain"), name
        assert "\n" not in response.text.strip(), name
        assert victim.snapshot() == before, f"{name}: something was stored"
        assert victim.serving(), f"{name}: the node stopped serving"
    return response


def neutralised(victim: Victim, kind: str, name: str, activity_id: str,
                send: Callable[[], httpx.Response]) -> None:
    """Send one attack that is well-formed: taken once (202), ignored, nothing it names changes."""
    with TALLY.trying(kind, name, outcome="202 ignored"):
        _, listings = victim.snapshot()
        response = send()
        assert response.status_code == 202, (name, response.status_code, response.text)
        assert victim.settled(activity_id) == "ignored", name
        assert victim.snapshot()[1] == listings, f"{name}: a listing changed"
        assert victim.serving(), f"{name}: the node stopped serving"


def activity(stub: Stub, kind: str, obj: Any, actor: str | None = None) -> dict[str, Any]:
    return {"@context": AS, "id": stub.url(f"/activities/{uuid.uuid4()}"), "type": kind,
            "actor": actor or stub.actor, "object": obj, "to": [PUBLIC]}


def group(stub: Stub, slug: str, **fields: Any) -> dict[str, Any]:
    """A Group listing. Sent by the peer's node actor rather than by the group itself, it
    is fetched from its id, so the first version made is also served there."""
    document = {"id": stub.url(f"/groups/{slug}"), "type": "Group", "preferredUsername": slug,
                "name": slug.replace("-", " ").title(), "summary": "A peer group.",
                "to": [PUBLIC], **fields}
    if document["id"] not in stub.documents:
        stub.serve({"@context": AS, **document})
    return document


def note(stub: Stub) -> dict[str, Any]:
    return {"id": stub.url(f"/notes/{uuid.uuid4()}"), "type": "Note", "content": "hello"}
