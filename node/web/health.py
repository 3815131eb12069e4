"""/healthz, /readyz and /metrics: how a supervisor and a scraper see a running node.

``/healthz`` says the process answers. ``/readyz`` says whether the database takes
a write, every background worker moves, and the data directory's disk has room:
200, or 503 naming what fails. Both are public and hold no member data.
``/metrics`` is Prometheus text, for loopback clients not behind a proxy and for
anyone with the configured bearer token.
"""
from __future__ import annotations

import asyncio
import hmac
import ipaddress
import shutil
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from federation import store
from federation.addresses import url_host
from node.background import Heartbeats
from node.config import Config
from node.db import Database, parse_stamp
from node.metrics import Figures, PeerQueue
from node.storage.health import write_probe
from node.storage.mail import mail_backlog

# Readiness is public: asking often must not mean writing often.
PROBE_EVERY_SECONDS = 2.0
PROBE_WAIT_SECONDS = 3.0  # a write waiting longer (a lock held elsewhere) counts as failing
# A request with any of these came through a proxy: not from loopback, whatever its address.
FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")
NO_STORE = {"Cache-Control": "no-store"}

Check = dict[str, str]  # {"state": "ok"} or {"state": ..., "detail": ...}


class Readiness:
    """The checks behind /readyz, for one running node."""

    def __init__(self, db: Database, config: Config, heartbeats: Heartbeats) -> None:
        self._db = db
        self._config = config
        self.heartbeats = heartbeats
        self._probe: asyncio.Task[str | None] | None = None
        self._probed_at = float("-inf")

    async def checks(self) -> dict[str, Check]:
        now = asyncio.get_running_loop().time()
        found = {"database": await self._database(), "disk": self._disk()}
        for name, beat in sorted(self.heartbeats.beats.items()):
            state = beat.state(now)
            found[f"worker:{name}"] = {"state": state} if state == "ok" else {
                "state": state, "detail": f"last moved {now - beat.moved_at:.0f} s ago"}
        return found

    async def _database(self) -> Check:
        """The last write's answer, made again once it is `PROBE_EVERY_SECONDS` old;
        callers meanwhile share it, or the write under way."""
        loop = asyncio.get_running_loop()
        if self._probe is None or (self._probe.done()
                                   and loop.time() - self._probed_at >= PROBE_EVERY_SECONDS):
            self._probe = asyncio.create_task(self._write())
        try:
            failure = await asyncio.wait_for(asyncio.shield(self._probe), PROBE_WAIT_SECONDS)
        except TimeoutError:
            failure = f"a write waited over {PROBE_WAIT_SECONDS:.0f} s (locked or slow)"
        return {"state": "ok"} if failure is None else {"state": "failing", "detail": failure}

    async def _write(self) -> str | None:
        try:
            await write_probe(self._db)
        except Exception as e:  # whatever stops a write is what readiness reports
            return f"a write failed: {type(e).__name__}: {e}"
        finally:
            self._probed_at = asyncio.get_running_loop().time()
        return None

    def _disk(self) -> Check:
        free_mb = shutil.disk_usage(self._config.data_dir).free // 1_000_000
        if free_mb >= self._config.min_free_disk_mb:
            return {"state": "ok"}
        return {"state": "low", "detail": f"{free_mb} MB free, under min_free_disk_mb"
                                          f" ({self._config.min_free_disk_mb})"}


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"}, headers=NO_STORE)


async def readyz(request: Request) -> Response:
    checks = await request.state.readiness.checks()
    ready = all(check["state"] == "ok" for check in checks.values())
    return JSONResponse({"status": "ready" if ready else "not ready", "checks": checks},
                        status_code=200 if ready else 503, headers=NO_STORE)


async def metrics(request: Request) -> Response:
    if not _may_scrape(request, request.state.config.metrics_token):
        return PlainTextResponse("metrics are served to loopback clients, or with the"
                                 " metrics token", status_code=403)
    figures = await _figures(request.state.db, request.state.config,
                             request.state.readiness.heartbeats)
    body, media_type = request.state.metrics.exposition(
        figures, request.headers.get("accept", ""))
    return Response(body, media_type=media_type, headers=NO_STORE)


def _may_scrape(request: Request, token: str | None) -> bool:
    if token is not None and hmac.compare_digest(
            request.headers.get("authorization", "").encode(), f"Bearer {token}".encode()):
        return True
    if request.client is None or any(name in request.headers for name in FORWARDING_HEADERS):
        return False
    try:
        return ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:  # a Unix socket or a test client's name
        return False


async def _figures(db: Database, config: Config, heartbeats: Heartbeats) -> Figures:
    now = datetime.now(UTC)
    mail = await mail_backlog(db)
    loop_now = asyncio.get_running_loop().time()
    return Figures(
        peers=_peer_queues(await store.delivery_queues(db), now),
        inbox_waiting=await store.inbox_backlog(db),
        mail_waiting=mail.waiting,
        mail_oldest_seconds=_age(mail.oldest_created_at, now),
        database_bytes=await db.sizes(),
        free_disk_bytes=shutil.disk_usage(config.data_dir).free,
        workers={name: beat.state(loop_now) == "ok"
                 for name, beat in heartbeats.beats.items()},
    )


def _peer_queues(queues: list[store.Queue], now: datetime) -> dict[str, PeerQueue]:
    """Each inbox's queue added into its host's (a host's inboxes are one peer)."""
    peers: dict[str, PeerQueue] = {}
    for queue in queues:
        try:
            host = url_host(queue.inbox)
        except ValueError:
            host = "unknown"
        was = peers.get(host, PeerQueue())
        peers[host] = PeerQueue(
            waiting=was.waiting + (queue.queued or 0),
            oldest_seconds=max(was.oldest_seconds, _age(queue.oldest, now)),
            failing_seconds=max(was.failing_seconds, _age(queue.failing_since, now)),
            given_up=was.given_up + (queue.failed or 0))
    return peers


def _age(moment: str | None, now: datetime) -> float:
    return 0.0 if moment is None else max((now - parse_stamp(moment)).total_seconds(), 0.0)
