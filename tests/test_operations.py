"""Operating a node: /healthz, /readyz, /metrics and the request and federation log lines.

The real app on a real data directory: through TestClient (its client address
set to loopback, or to a documentation address for "remote", which sends nothing
anywhere) and as `grassroots serve` processes on 127.0.0.1.
"""
from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from federation import store
from node.app import create_app
from node.background import STEP_LIMIT_SECONDS, Beat
from node.cli import initialise
from node.config import load_config
from node.db import stamp
from node.logs import JsonFormatter, RequestIdFilter, TextFormatter
from node.web import health
from tests.helpers import free_port, group_form, run_on, started, wait_for

LOOPBACK = ("127.0.0.1", 50000)
REMOTE = ("203.0.113.7", 50000)  # TEST-NET-3: a client address only, nothing is sent to it
TOKEN = "metrics-token-0123456789"
MEMBERS = {"Fay Quietly": "fay@example.org", "Noor Halloran": "noor.halloran@example.net"}
AP = "application/activity+json"


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    """The node, its visitors coming from loopback (as a scraper on the machine would)."""
    with TestClient(app, base_url="http://testserver", client=LOOPBACK) as c:
        yield c


def node_with(tmp_path: Path, name: str, config_lines: str = "") -> Path:
    data = tmp_path / name
    initialise(data, "http://testserver")
    with open(data / "config.toml", "a", encoding="utf-8") as f:
        f.write(config_lines)
    return data


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition: (name, sorted labels) -> value."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


def not_admitted_create(actor_host: str = "peer.example") -> bytes:
    return json.dumps({
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"https://{actor_host}/activities/1", "type": "Create",
        "actor": f"https://{actor_host}/actor",
        "object": {"id": f"https://{actor_host}/groups/g", "type": "Group"}}).encode()


# Health and readiness --------------------------------------------------------------

@contextmanager
def write_held(data_dir: Path) -> Iterator[None]:
    """A write transaction open on the node's database, as another process would hold it,
    until the block ends."""
    held, release = threading.Event(), threading.Event()

    async def hold(db) -> None:
        async with db.transaction():
            held.set()
            await asyncio.to_thread(release.wait)

    holder = threading.Thread(target=run_on, args=(data_dir, hold))
    holder.start()
    try:
        assert held.wait(15), "the other writer did not begin"
        yield
    finally:
        release.set()
        holder.join()


def test_healthz_says_the_process_answers(client):
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz_names_each_check_and_is_ready_on_a_running_node(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    assert {"database", "disk", "worker:delivery", "worker:inbox", "worker:publisher",
            "worker:freshness", "worker:mail", "worker:notice"} <= set(body["checks"])
    assert all(check == {"state": "ok"} for check in body["checks"].values())


def test_readyz_is_503_while_the_database_takes_no_write(client, data_dir, monkeypatch):
    monkeypatch.setattr(health, "PROBE_WAIT_SECONDS", 1.0)
    monkeypatch.setattr(health, "PROBE_EVERY_SECONDS", 0.0)
    with write_held(data_dir):  # another process holding the write lock
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["status"] == "not ready"
        assert response.json()["checks"]["database"]["state"] == "failing"
    wait_for(lambda: client.get("/readyz").status_code == 200, "ready again", timeout=15)


def test_readyz_is_503_once_a_worker_stops(client):
    client.portal.call(client.app_state["mailer"].stop)
    response = client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["worker:mail"]["state"] == "stopped"
    assert checks["worker:delivery"] == checks["database"] == {"state": "ok"}


def test_a_loop_is_stale_after_three_pauses_and_a_margin_or_a_step_over_the_limit():
    idle = Beat(poll_seconds=1.0, moved_at=100.0)
    assert idle.state(105.0) == "ok" and idle.state(110.0) == "stale"
    stepping = Beat(poll_seconds=1.0, moved_at=100.0, stepping=True)
    assert stepping.state(110.0) == "ok"
    assert stepping.state(100.0 + STEP_LIMIT_SECONDS + 1) == "stale"


def test_readyz_is_503_when_free_disk_is_under_the_threshold(tmp_path):
    data = node_with(tmp_path, "full", "min_free_disk_mb = 1000000000\n")
    with TestClient(create_app(load_config(data)), client=LOOPBACK) as c:
        response = c.get("/readyz")
    assert response.status_code == 503
    disk = response.json()["checks"]["disk"]
    assert disk["state"] == "low" and "min_free_disk_mb" in disk["detail"]


# Metrics ------------------------------------------------------------------------

def test_metrics_count_requests_by_route_template_and_status(client):
    before = client.get("/metrics").text
    for slug in ("no-such-group", "another-missing-one"):
        assert client.get(f"/groups/{slug}").status_code == 404
    assert client.get("/groups?topic=grief").status_code == 200
    after = client.get("/metrics")
    assert after.status_code == 200 and after.headers["content-type"].startswith("text/plain")
    missing = {"method": "GET", "route": "/groups/{slug}", "status": "404"}
    assert value(after.text, "grassroots_http_requests_total", **missing) == \
        value(before, "grassroots_http_requests_total", **missing) + 2
    assert value(after.text, "grassroots_http_request_duration_seconds_count",
                 method="GET", route="/groups") >= 1
    assert "no-such-group" not in after.text and "grief" not in after.text


def test_an_inbox_refusal_is_counted_by_its_reason(client):
    refused = {"status": "403", "reason": "not_admitted"}
    before = value(client.get("/metrics").text, "grassroots_inbox_refused_total", **refused)
    response = client.post("/inbox", content=not_admitted_create(),
                           headers={"Content-Type": AP})
    assert response.status_code == 403
    assert client.post("/inbox", content=b"{}", headers={"Content-Type": "text/plain"}
                       ).status_code == 415
    text = client.get("/metrics").text
    assert value(text, "grassroots_inbox_refused_total", **refused) == before + 1
    assert value(text, "grassroots_inbox_refused_total", status="415",
                 reason="media_type") == 1
    assert value(text, "grassroots_http_requests_total", method="POST", route="/inbox",
                 status="403") == 1


def test_a_delivery_waiting_for_a_down_peer_shows_its_host_depth_and_age(client, run_db):
    down = f"127.0.0.1:{free_port()}"  # nothing listens; the node refuses private addresses
    activity = {"@context": "https://www.w3.org/ns/activitystreams",
                "id": "http://testserver/activities/ops-1", "type": "Update",
                "actor": "http://testserver/actor", "object": "http://testserver/actor"}
    run_db(lambda db: store.publish(db, activity, "node", [f"http://{down}/inbox"]))
    wait_for(lambda: value(client.get("/metrics").text, "grassroots_deliveries_total",
                           outcome="retry") >= 1, "the delivery to be tried")
    hour_ago = stamp(datetime.now(UTC) - timedelta(hours=1))
    run_db(lambda db: db.write("UPDATE deliveries SET created_at = ?", (hour_ago,)))
    text = client.get("/metrics").text
    assert value(text, "grassroots_delivery_queue_depth", host=down) == 1
    assert 3500 < value(text, "grassroots_delivery_queue_oldest_age_seconds", host=down) < 3700
    assert "/inbox" not in text and "ops-1" not in text


def test_metrics_are_refused_to_a_remote_client_without_the_token(tmp_path):
    data = node_with(tmp_path, "tokened", f'metrics_token = "{TOKEN}"\n')
    app = create_app(load_config(data))
    with TestClient(app, client=REMOTE) as remote:
        assert remote.get("/metrics").status_code == 403
        assert remote.get("/metrics", headers={"Authorization": "Bearer wrong-token-000000000"}
                          ).status_code == 403
        served = remote.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert served.status_code == 200 and "grassroots_http_requests_total" in served.text
        assert remote.get("/healthz").status_code == 200  # health is public
        assert remote.get("/readyz").status_code == 200


def test_metrics_are_refused_without_a_token_configured_or_through_a_proxy(tmp_path):
    app = create_app(load_config(node_with(tmp_path, "plain")))
    with TestClient(app, client=REMOTE) as remote:
        assert remote.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 403
    with TestClient(app, client=LOOPBACK) as local:
        assert local.get("/metrics").status_code == 200
        # From loopback, but for someone outside: a proxy on the machine passed it on.
        assert local.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"}
                         ).status_code == 403
        assert local.get("/metrics", headers={"Forwarded": "for=198.51.100.2"}
                         ).status_code == 403


def test_metrics_hold_no_member_data(client, visitor, open_registration):
    people = []
    for name, email in MEMBERS.items():
        person = visitor()
        person.register(name, email)
        people.append(person)
    slug = "quiet-harbour"
    assert people[0].post("/groups/new", group_form(name="Quiet Harbour"),
                          page="/groups/new").status_code == 303
    assert people[1].post(f"/groups/{slug}/join", {"accept_agreements": "yes"},
                          page=f"/groups/{slug}").status_code == 303
    assert "Noor Halloran" in people[0].get(f"/groups/{slug}/members").text
    for email in MEMBERS.values():
        client.get("/groups", params={"q": email})
        visitor().login(email)
    client.post("/inbox", content=not_admitted_create(), headers={"Content-Type": AP})
    text = client.get("/metrics").text.lower()
    assert "grassroots_http_requests_total" in text
    for name, email in MEMBERS.items():
        for part in (*name.lower().split(), email.lower(), email.split("@")[0].lower()):
            assert part not in text, part
    assert slug not in text


# Log lines ----------------------------------------------------------------------

def test_request_lines_carry_id_route_status_and_no_member_data(client, visitor,
                                                                open_registration, caplog):
    caplog.handler.addFilter(RequestIdFilter())
    with caplog.at_level(logging.INFO):
        for name, email in MEMBERS.items():
            visitor().register(name, email)
        response = client.get("/groups", params={"q": "fay@example.org"},
                              headers={"X-Request-ID": "req-42.abc"})
        forged = client.get("/healthz", headers={"X-Request-ID": "bad id\nINFO forged"})
        client.post("/inbox", content=not_admitted_create(), headers={"Content-Type": AP})
    assert response.headers["x-request-id"] == "req-42.abc"
    assert "\n" not in forged.headers["x-request-id"] and forged.headers["x-request-id"]
    lines = [r for r in caplog.records if r.name == "node.requests"]
    mine = [r for r in lines if r.request_id == "req-42.abc"]
    assert len(mine) == 1
    assert (mine[0].method, mine[0].route, mine[0].status) == ("GET", "/groups", 200)
    assert any(r.route == "/register" and r.method == "POST" for r in lines)
    inbox = [r for r in caplog.records if r.name == "federation.inbox"]
    assert inbox and inbox[-1].activity_type == "Create" and inbox[-1].peer == "peer.example"
    assert inbox[-1].outcome == "not_admitted" and inbox[-1].request_id
    formatted = "\n".join(TextFormatter().format(r) + JsonFormatter().format(r)
                          for r in caplog.records if r.levelno >= logging.INFO
                          and r.name.split(".")[0] in ("node", "federation", "uvicorn"))
    for name, email in MEMBERS.items():
        assert name not in formatted and email not in formatted
        assert email.split("@")[0] not in formatted


def test_text_lines_stay_one_line_whatever_a_message_holds():
    record = logging.LogRecord("federation.inbox", logging.INFO, __file__, 1,
                               "inbox %s", ("Create\nINFO forged line",), None)
    assert "\n" not in TextFormatter().format(record)
    assert json.loads(JsonFormatter().format(record))["message"] == \
        "inbox Create\nINFO forged line"


def test_a_served_node_is_ready_serves_metrics_to_loopback_and_logs_json(tmp_path):
    data = node_with(tmp_path, "served", 'log_format = "json"\n')
    log = tmp_path / "served.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log, "wb") as stderr, started(
            [sys.executable, "-m", "node.cli", "serve", "--data", str(data), "--port", str(port)],
            url, stderr):
        assert httpx.get(url + "/readyz").status_code == 200
        before = value(httpx.get(url + "/metrics").text, "grassroots_http_requests_total",
                       method="GET", route="/groups", status="200")
        response = httpx.get(url + "/groups", params={"q": "fay@example.org"},
                             headers={"X-Request-ID": "served-1"})
        assert response.headers["x-request-id"] == "served-1"
        httpx.post(url + "/inbox", content=not_admitted_create(), headers={"Content-Type": AP,
                                                                           "X-Request-ID": "in-1"})
        after = httpx.get(url + "/metrics").text
        assert value(after, "grassroots_http_requests_total", method="GET", route="/groups",
                     status="200") == before + 1
        assert value(after, "grassroots_inbox_refused_total", status="403",
                     reason="not_admitted") == 1
    lines = [line for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line one JSON object
    request = [e for e in entries if e.get("request_id") == "served-1"]
    assert len(request) == 1  # one line per request: the server's own access log is off
    assert request[0]["logger"] == "node.requests" and request[0]["route"] == "/groups"
    assert request[0]["status"] == 200 and request[0]["method"] == "GET"
    assert isinstance(request[0]["duration_ms"], float)
    inbox = [e for e in entries if e.get("request_id") == "in-1"]
    assert {e["logger"] for e in inbox} == {"federation.inbox", "node.requests"}
    event = next(e for e in inbox if e["logger"] == "federation.inbox")
    assert (event["activity_type"], event["peer"], event["outcome"]) == \
        ("Create", "peer.example", "not_admitted")
    assert "fay@example.org" not in log.read_text(encoding="utf-8")
    assert run_on(data / "grassroots.db", lambda db: db.fetchval(
        "SELECT count(*) FROM settings WHERE key = 'readiness_probe'")) == 1
