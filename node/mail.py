"""Mail messages and the transports that carry them: SMTP, or files in the data directory.

What to send is an ``OutgoingMail``; ``build_message`` makes the RFC 5322
message of one; a transport sends it and says where it went, or raises
``MailError`` saying whether trying again could help. Queueing and retrying
are ``node.storage.mail`` and ``node.mailer``.
"""
from __future__ import annotations

import asyncio
import logging
import os
import re
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import format_datetime
from pathlib import Path
from typing import Literal, Protocol

log = logging.getLogger(__name__)

SMTP_TIMEOUT_SECONDS = 30.0
SmtpSecurity = Literal["starttls", "tls", "none"]


def parse_address(value: str) -> Address:
    """One email address, with or without a display name; ValueError otherwise."""
    header = default_policy.header_factory("To", value)
    if header.defects or len(header.addresses) != 1 or not header.addresses[0].domain:
        raise ValueError(f"not one email address: {value!r}")
    return header.addresses[0]


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content_type: str  # e.g. "text/calendar"
    data: bytes


@dataclass(frozen=True, slots=True)
class OutgoingMail:
    """One message to one person, as the code that causes it writes it."""

    to_address: str
    kind: str  # 'verify', 'reset', 'join_request', 'meeting_changed'...
    subject: str
    text: str
    html: str
    account_id: int | None = None
    attachments: tuple[Attachment, ...] = ()
    unsubscribe_url: str | None = None  # set for every kind that is not account security

    def __post_init__(self) -> None:
        parse_address(self.to_address)
        if not self.kind or "\n" in self.subject or "\r" in self.subject:
            raise ValueError("a message needs a kind and a one-line subject")


def build_message(mail: OutgoingMail, token: str, created_at: datetime,
                  from_address: str) -> EmailMessage:
    """The message as sent; the same ``token`` gives the same Message-ID on every attempt."""
    message = EmailMessage()
    message["From"] = from_address
    message["To"] = mail.to_address
    message["Subject"] = mail.subject
    message["Date"] = format_datetime(created_at.astimezone(UTC))
    message["Message-ID"] = f"<{token}@{parse_address(from_address).domain}>"
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please
    if mail.unsubscribe_url:
        message["List-Unsubscribe"] = f"<{mail.unsubscribe_url}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"  # RFC 8058
    message.set_content(mail.text)
    message.add_alternative(mail.html, subtype="html")
    for attachment in mail.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        message.add_attachment(attachment.data, maintype=maintype, subtype=subtype,
                               filename=attachment.filename)
    return message


class MailError(Exception):
    """A message not sent; ``permanent`` when sending it again cannot succeed."""

    def __init__(self, reason: str, permanent: bool = False) -> None:
        super().__init__(reason)
        self.permanent = permanent


class Transport(Protocol):
    async def send(self, message: EmailMessage, kind: str) -> str:
        """Send ``message``; where it went ("sent to host:port", "written to path")."""


@dataclass(frozen=True, slots=True)
class SmtpTransport:
    host: str
    port: int = 587
    security: SmtpSecurity = "starttls"
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    async def send(self, message: EmailMessage, kind: str) -> str:
        await asyncio.to_thread(self._send, message)
        log.debug("%s mail to %s sent to %s:%d", kind, message["To"], self.host, self.port)
        return f"sent to {self.host}:{self.port}"

    def _send(self, message: EmailMessage) -> None:
        import smtplib  # only a node with an smtp_host sends through it

        try:
            if self.security == "tls":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=SMTP_TIMEOUT_SECONDS,
                    context=ssl.create_default_context())
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=SMTP_TIMEOUT_SECONDS)
            with smtp:
                if self.security == "starttls":
                    # Raises when the server does not offer it: never falls back to plain text.
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(message, to_addrs=[message["To"].addresses[0].addr_spec])
        except smtplib.SMTPRecipientsRefused as e:
            code, answer = next(iter(e.recipients.values()))
            raise MailError(_said(code, answer), permanent=code >= 500) from e
        except (smtplib.SMTPDataError, smtplib.SMTPSenderRefused) as e:
            # A 5xx to the message itself (too large, refused content) is final; a refused
            # sender is the node's configuration, so it is tried again until fixed.
            final = isinstance(e, smtplib.SMTPDataError) and e.smtp_code >= 500
            raise MailError(_said(e.smtp_code, e.smtp_error), permanent=final) from e
        except smtplib.SMTPResponseException as e:
            raise MailError(_said(e.smtp_code, e.smtp_error)) from e
        except (smtplib.SMTPException, OSError) as e:
            raise MailError(f"{type(e).__name__}: {e}") from e


def _said(code: int, answer: bytes | str) -> str:
    text = answer.decode("utf-8", "replace") if isinstance(answer, bytes) else answer
    return f"SMTP {code} {text}"[:300]


_UNSAFE = re.compile(r"[^A-Za-z0-9.-]")


@dataclass(frozen=True, slots=True)
class FileTransport:
    """Each message a ``.eml`` file, for a node without a mail server (and for reading)."""

    directory: Path

    async def send(self, message: EmailMessage, kind: str) -> str:
        name = _UNSAFE.sub("", message["Message-ID"].partition("@")[0])
        path = self.directory / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{name}.eml"
        try:
            await asyncio.to_thread(self._write, path, message.as_bytes())
        except OSError as e:
            raise MailError(f"{type(e).__name__}: {e}") from e
        # Addresses only at DEBUG: INFO logs are kept and read more widely.
        log.info("%s mail written to %s: %s", kind, path, message["Subject"])
        log.debug("%s mail to %s", kind, message["To"])
        return f"written to {path}"

    def _write(self, path: Path, data: bytes) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            os.fsync(f.fileno())


@dataclass(frozen=True, slots=True)
class MailSettings:
    """The ``[mail]`` table of config.toml, checked (see ``node.config``)."""

    from_address: str
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_security: SmtpSecurity = "starttls"
    smtp_username: str | None = None
    smtp_password: str | None = field(default=None, repr=False)

    def transport(self, data_dir: Path) -> Transport:
        """SMTP when a host is set, else ``.eml`` files in ``<data_dir>/mail``."""
        if self.smtp_host is None:
            return FileTransport(data_dir / "mail")
        return SmtpTransport(self.smtp_host, self.smtp_port, self.smtp_security,
                             self.smtp_username, self.smtp_password)
