"""A lean HTTP/1.1 load generator: pre-built requests over keep-alive connections.

Each of ``concurrency`` connections keeps one request in flight and sends the
next as soon as the answer is complete. Requests are raw bytes built (and
signed) beforehand, so the timed loop does no JSON, no signing and no header
building. Each request's latency runs from its write until its answer is
complete. Run as its own process, so it never shares a GIL with what it
measures: ``python -m bench.loadgen HOST PORT CONCURRENCY FILE [COUNT [RATE]]``
where FILE is a pickled list of requests (sent in order, each once, or
in turn COUNT times), at most RATE a second if given (the n-th request is
not sent before n / RATE seconds). Prints one JSON line: statuses, elapsed and
CPU time, and latency percentiles in milliseconds.
"""
from __future__ import annotations

import asyncio
import json
import pickle
import signal
import sys
import time
from collections import Counter

from bench.httpstub import take_message


class _Connection(asyncio.Protocol):
    def __init__(self, run: _Run) -> None:
        self._run = run
        self._buffer = bytearray()
        self._transport: asyncio.WriteTransport | None = None
        self._sent_at = 0.0
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def start(self) -> None:
        self._send_next()

    def _send_next(self) -> None:
        request = self._run.next_request()
        if request is None:
            self._transport.close()
            return
        early = self._run.early()
        if early > 0:
            asyncio.get_running_loop().call_later(early, self._write, request)
        else:
            self._write(request)

    def _write(self, request: bytes) -> None:
        self._sent_at = time.perf_counter()
        self._transport.write(request)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (message := take_message(self._buffer)) is not None:
            self._run.answered(int(message[0][0][9:12]), time.perf_counter() - self._sent_at)
            self._send_next()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class _Run:
    def __init__(self, requests: list[bytes], count: int, rate: float | None = None) -> None:
        self._requests = requests
        self._count = count
        self._rate = rate
        self._next = 0
        self.started = time.perf_counter()
        self.statuses: Counter[int] = Counter()
        self.latencies: list[float] = []

    def finish(self) -> None:
        """Send no more requests; those in flight are still awaited."""
        self._count = self._next

    def early(self) -> float:
        """How long before its time the request just taken is (0 when not paced)."""
        if self._rate is None:
            return 0.0
        return self.started + (self._next - 1) / self._rate - time.perf_counter()

    def next_request(self) -> bytes | None:
        if self._next >= self._count:
            return None
        request = self._requests[self._next % len(self._requests)]
        self._next += 1
        return request

    def answered(self, status: int, latency: float) -> None:
        self.statuses[status] += 1
        self.latencies.append(latency)


async def run(host: str, port: int, concurrency: int, requests: list[bytes],
              count: int, rate: float | None = None) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    job = _Run(requests, count, rate)
    connections = []
    for _ in range(min(concurrency, count)):
        _, protocol = await loop.create_connection(lambda: _Connection(job), host, port)
        connections.append(protocol)
    loop.add_signal_handler(signal.SIGTERM, job.finish)
    started, cpu = time.perf_counter(), time.process_time()
    job.started = started
    for connection in connections:
        connection.start()
    await asyncio.gather(*(c.closed for c in connections))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    answered = sum(job.statuses.values())
    ordered = sorted(job.latencies)

    def ms(p: float) -> float:  # nearest rank
        return ordered[max(0, -(-len(ordered) * p // 100) - 1)] * 1000 if ordered else 0.0

    return {"answered": answered, "statuses": {str(k): v for k, v in job.statuses.items()},
            "elapsed": elapsed, "cpu": cpu, "rate": answered / elapsed,
            "p50_ms": ms(50), "p95_ms": ms(95), "p99_ms": ms(99), "max_ms": ms(100)}


def main() -> None:
    host, port, concurrency, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    with open(path, "rb") as file:
        requests = pickle.load(file)
    count = int(sys.argv[5]) if len(sys.argv) > 5 else len(requests)
    rate = float(sys.argv[6]) if len(sys.argv) > 6 else None
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(run(host, port, concurrency, requests, count, rate))),
          flush=True)


if __name__ == "__main__":
    main()
