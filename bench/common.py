"""What every benchmark needs: processes on loopback, readiness, memory, requests, statistics."""
from __future__ import annotations

import json
import os
import pickle
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from federation.keys import generate_key
from federation.signatures import sign_headers

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
AP = "application/activity+json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def spawn(args: Sequence[str], log: Path | None = None) -> subprocess.Popen:
    """A Python module or script of this project in its own process (stdout to ``log``)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if log is None:
        return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    with open(log, "ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def get_status(port: int, path: str = "/", host: str = HOST,
               timeout: float = 5.0) -> int | None:
    """The status of one GET on a fresh connection; None when nothing answers."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                      "Connection: close\r\n\r\n".encode())
            head = s.recv(64)
        return int(head[9:12]) if head.startswith(b"HTTP/1.1 ") else None
    except OSError:
        return None


def wait_until_serving(port: int, proc: subprocess.Popen, timeout: float = 60.0,
                       interval: float = 0.01) -> float:
    """Poll until GET / answers 200; the monotonic time it first did."""
    deadline = time.monotonic() + timeout
    while get_status(port) != 200:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before serving")
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing answered 200 on port {port} within {timeout:g} s")
        time.sleep(interval)
    return time.monotonic()


def wait_until(check: Callable[[], bool], what: str, timeout: float,
               interval: float = 0.02) -> float:
    """Poll ``check`` until true; the seconds it took."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)
    return time.monotonic() - start


def memory_mb(pid: int, field: str = "VmRSS") -> float:
    """VmRSS (now) or VmHWM (peak) of a process, in MB (10^6 bytes)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024 / 1e6
    raise LookupError(field)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def node_process(data: Path, port: int, *extra: str) -> Iterator[subprocess.Popen]:
    """``grassroots serve --dev`` on loopback until the block ends; its output goes to data/node.log."""
    proc = spawn(["-m", "node.cli", "serve", "--data", str(data), "--host", HOST,
                  "--port", str(port), "--dev", *extra], log=data / "node.log")
    try:
        wait_until_serving(port, proc)
        yield proc
    finally:
        stop(proc)


@contextmanager
def scratch(name: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=f"grassroots-bench-{name}-") as tmp:
        yield Path(tmp)


def query(where: Path | str, sql: str, params: tuple = ()) -> list[tuple]:
    """A read of the node's database (a SQLite file, or a postgresql:// URL) from outside,
    as an operator would."""
    if isinstance(where, str):
        import asyncio

        from node.postgres import PostgresDatabase

        async def read() -> list[tuple]:
            db = PostgresDatabase(where, pool_size=1)
            await db.open()
            try:
                return [tuple(row) for row in await db.fetchall(sql, params)]
            finally:
                await db.close()
        return asyncio.run(read())
    import sqlite3
    conn = sqlite3.connect(f"file:{where}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


# Keys and signed requests ------------------------------------------------------

def generate_keys(count: int) -> list[str]:
    """``count`` RSA-2048 private PEMs, made on every core."""
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return list(pool.map(_generate, range(count)))


def _generate(_: int) -> str:
    return generate_key()


def signed_post(port: int, path: str, body: bytes, key_id: str, private_pem: str) -> bytes:
    """A POST as Mastodon sends it: Digest, Date and a draft-cavage Signature, as raw bytes."""
    headers = {"Host": f"{HOST}:{port}", "Content-Type": AP}
    headers |= sign_headers("POST", f"http://{HOST}:{port}{path}", headers, body, key_id,
                            private_pem)
    lines = [f"POST {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items()),
             "User-Agent: grassroots-bench", f"Content-Length: {len(body)}", "", ""]
    return "\r\n".join(lines).encode("latin-1") + body


def sign_all(jobs: list[tuple[int, str, bytes, str, str]]) -> list[bytes]:
    """Sign many (port, path, body, key_id, pem) POSTs on every core, in order."""
    workers = os.cpu_count() or 1
    chunk = -(-len(jobs) // workers) if jobs else 1
    with ProcessPoolExecutor(max_workers=workers) as pool:
        parts = pool.map(_sign_chunk, [jobs[i:i + chunk] for i in range(0, len(jobs), chunk)])
        return [request for part in parts for request in part]


def _sign_chunk(jobs: list[tuple[int, str, bytes, str, str]]) -> list[bytes]:
    return [signed_post(*job) for job in jobs]


def load(port: int, concurrency: int, requests: list[bytes], count: int | None = None,
         workdir: Path | None = None) -> dict[str, Any]:
    """Send pre-built requests from the load generator's own process; its JSON report."""
    with tempfile.NamedTemporaryFile(suffix=".pickle", dir=workdir, delete=False) as file:
        pickle.dump(requests, file)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "bench.loadgen", HOST, str(port), str(concurrency), file.name,
             *([str(count)] if count else [])],
            cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True,
            text=True, timeout=600, check=False)
    finally:
        os.unlink(file.name)
    if result.returncode != 0:
        raise RuntimeError(f"load generator failed: {result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def get_request(path: str) -> bytes:
    """A GET as a browser's keep-alive connection sends it, as raw bytes."""
    return f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nAccept: text/html\r\n\r\n".encode()


def browsed(slug: str) -> list[str]:
    """What people browse while a node works: the directory, a group, the calendar's month
    and agenda. (A calendar feed is fetched by calendar programs, hourly: ``bench.pages``
    measures it under load.)"""
    return ["/groups", f"/groups/{slug}", "/events", "/events?view=agenda"]


@contextmanager
def browsing(port: int, paths: Sequence[str], rate: float, workdir: Path,
             concurrency: int = 4, most_seconds: float = 600) -> Iterator[dict[str, Any]]:
    """People browsing ``paths`` (in turn) at ``rate`` requests a second while the block runs.

    Yields a dict that holds, once the block has ended, the load generator's
    report: statuses, rate and latency percentiles (``p95_ms``).
    """
    requests = [get_request(path) for path in paths]
    with tempfile.NamedTemporaryFile(suffix=".pickle", dir=workdir, delete=False) as file:
        pickle.dump(requests, file)
    report: dict[str, Any] = {}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.loadgen", HOST, str(port), str(concurrency), file.name,
         str(int(rate * most_seconds)), str(rate)],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        yield report
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=60)
        os.unlink(file.name)
    if proc.returncode != 0:
        raise RuntimeError(f"load generator failed: {err[-2000:]}")
    report.update(json.loads(out.strip().splitlines()[-1]))


# Statistics ---------------------------------------------------------------------

def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile by the nearest-rank method."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


# Profiles -------------------------------------------------------------------------

@contextmanager
def profiled(pid: int, out: Path | None | bool) -> Iterator[None]:
    """Sample ``pid`` with py-spy (``pip install py-spy``) while the block runs, if ``out`` is set.

    Writes collapsed stacks to ``out`` (one line per stack and its sample count).
    """
    if not out:
        yield
        return
    import signal
    proc = subprocess.Popen([py_spy(), "record", "-p", str(pid), "-r", "250", "--format", "raw",
                             "-o", str(out), "--nonblocking"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    time.sleep(0.5)  # attached before the work starts
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def py_spy() -> str:
    """The py-spy command: on the PATH or beside this Python; ``py-spy`` if neither."""
    import shutil
    beside = Path(sys.executable).parent / "py-spy"
    return shutil.which("py-spy") or (str(beside) if beside.exists() else "py-spy")


def hottest(collapsed: Path, top: int = 8) -> dict[str, list[tuple[float, str]]]:
    """Where the busy samples were: this project's functions (on the stack) and the leaves.

    Shares are of the samples where the process was working, not waiting for work.
    """
    own: dict[str, int] = {}
    leaves: dict[str, int] = {}
    busy = 0
    for line in collapsed.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = [_frame_name(f) for f in stack.split(";")]
        if frames[-1].startswith(_IDLE):
            continue
        busy += int(n)
        leaves[frames[-1]] = leaves.get(frames[-1], 0) + int(n)
        for name in {f for f in frames if f.startswith(("node/", "federation/"))
                     and not f.startswith("node/cli.py")}:
            own[name] = own.get(name, 0) + int(n)

    def ranked(counts: dict[str, int]) -> list[tuple[float, str]]:
        return [(n / busy, name) for name, n in sorted(counts.items(), key=lambda i: -i[1])[:top]]

    return {"project": ranked(own), "leaves": ranked(leaves)} if busy else {}


# A thread or the event loop waiting for work, as py-spy names the frame.
_IDLE = ("threading.py:wait", "aiosqlite/core.py:_connection_worker_thread",
         "asyncio/runners.py:run", "selectors.py:select", "concurrent/futures/thread.py:_worker")


def _frame_name(frame: str) -> str:
    """``function (/path/to/pkg/module.py:123)`` as ``pkg/module.py:function``."""
    function, _, where = frame.rpartition(" (")
    path = where.rsplit(":", 1)[0]
    parts = path.split("/")
    short = "/".join(parts[-2:]) if len(parts) > 1 else path
    return f"{short}:{function.split('.')[-1]}"
