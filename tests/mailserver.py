"""A real SMTP server on loopback (aiosmtpd) that keeps what it accepted, for tests.

``MailServer`` listens on 127.0.0.1 and a free port; ``configure(data_dir)``
points a node's config.toml at it. A message counts as received only when the
server has answered its DATA with 250: one whose client went away before
(``hold`` keeps it waiting) is in ``dropped`` instead.
"""
from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.helpers import free_port, wait_for


@dataclass(frozen=True, slots=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage

    @property
    def message_id(self) -> str:
        return self.message["Message-ID"]


class MailServer:
    def __init__(self, login: tuple[str, str] | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = free_port(self.host)
        self.login = login
        self.received: list[Received] = []
        # Recipient -> the reply to its RCPT TO, e.g. "550 5.1.1 <bob@x>: no such user".
        self.refuse: dict[str, str] = {}
        # A message's reply to DATA instead of 250 (e.g. "451 4.3.0 try later"), once each.
        self.data_replies: list[str] = []
        # Seconds to wait before answering DATA for a message (0: answer at once).
        self.hold: Callable[[EmailMessage], float] = lambda message: 0
        self.holding: queue.Queue[str] = queue.Queue()  # Message-IDs as their hold begins
        self.dropped: list[str] = []  # Message-IDs whose client left during the hold
        self._controller: Controller | None = None
        self._lock = threading.Lock()

    def start(self) -> Self:
        kwargs: dict[str, Any] = {}
        if self.login is not None:
            kwargs = {"authenticator": self._authenticate, "auth_required": True,
                      "auth_require_tls": False}
        self._controller = Controller(self, hostname=self.host, port=self.port, **kwargs)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def configure(self, data_dir: Path, **options: str | int) -> None:
        """Point the node in ``data_dir`` at this server (plain SMTP on loopback)."""
        values: dict[str, str | int] = {"smtp_host": self.host, "smtp_port": self.port,
                                        "smtp_security": "none"}
        values.update(options)
        lines = [f"{key} = {value}" if isinstance(value, int) else f'{key} = "{value}"'
                 for key, value in values.items()]
        with open(data_dir / "config.toml", "a", encoding="utf-8") as f:
            f.write("\n[mail]\n" + "\n".join(lines) + "\n")

    def wait_for(self, count: int, timeout: float = 20) -> list[Received]:
        """The first ``count`` messages received, once they are."""
        wait_for(lambda: len(self.received) >= count, f"{count} message(s)", timeout)
        return self.received[:count]

    # aiosmtpd handler hooks (run in the server's thread) -----------------------------

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        with self._lock:
            if self.data_replies:
                return self.data_replies.pop(0)
        seconds = self.hold(message)
        if seconds:
            self.holding.put(message["Message-ID"])
            try:
                await asyncio.sleep(seconds)
            except asyncio.CancelledError:  # aiosmtpd cancels us when the client goes
                self.dropped.append(message["Message-ID"])
                raise
        self.received.append(Received(envelope.mail_from, tuple(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                      auth_data: Any) -> AuthResult:
        given = (auth_data.login.decode(), auth_data.password.decode()) \
            if isinstance(auth_data, LoginPassword) else None
        return AuthResult(success=given == self.login)
