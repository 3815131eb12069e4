"""A minimal HTTP/1.1 keep-alive server on asyncio, for the stubs the benchmarks talk to.

The peers' actor documents and the delivery sink must answer far faster than
the node they serve, so they are raw protocol handlers: no framework, one
``handler(method, path, headers, body)`` call per request. Loopback only.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable

Handler = Callable[[str, str, dict[str, str], bytes], tuple[int, str, bytes]]

_REASONS = {200: "OK", 202: "Accepted", 404: "Not Found", 500: "Internal Server Error"}


def take_message(buffer: bytearray) -> tuple[list[str], bytes] | None:
    """The first whole HTTP/1.1 message in ``buffer`` (head lines, body), removed from it.

    None while the message is incomplete. Bodies are framed by Content-Length only.
    """
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
    length = next((int(line.partition(":")[2]) for line in lines[1:]
                   if line[:15].lower() == "content-length:"), 0)
    if len(buffer) < end + 4 + length:
        return None
    body = bytes(buffer[end + 4:end + 4 + length])
    del buffer[:end + 4 + length]
    return lines, body


class _Protocol(asyncio.Protocol):
    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._buffer = bytearray()
        self._transport: asyncio.WriteTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (message := take_message(self._buffer)) is not None:
            lines, body = message
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            method, path, _ = lines[0].split(" ", 2)
            status, content_type, payload = self._handler(method, path, headers, body)
            self._transport.write(
                f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {len(payload)}\r\n\r\n"
                .encode("latin-1") + payload)


async def serve_addresses(handler: Handler, addresses: list[tuple[str, int]]) -> None:
    """Answer on every (loopback address, port) until cancelled."""
    loop = asyncio.get_running_loop()
    servers = [await loop.create_server(lambda: _Protocol(handler), host, port)
               for host, port in addresses]
    try:
        await asyncio.Future()
    finally:
        for server in servers:
            server.close()
