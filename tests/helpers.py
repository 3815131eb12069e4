"""Small builders shared by tests."""
from __future__ import annotations

import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette

from node.domain import Cost, Format, GroupDraft, JoinPolicy, Visibility


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


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


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
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, "".join(output) + "".join(lines.queue)
            assert time.monotonic() < deadline, "the node did not start"
            time.sleep(0.1)
        while not lines.empty():
            output.append(lines.get())
        yield url, output
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
