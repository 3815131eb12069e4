"""The mail outbox: messages committed with the change that caused them, sent by node.mailer.

A row moves ``pending -> sending`` when a worker claims it (committed
before anything is sent), then ``sending -> sent`` on the server's 250, back
to ``pending`` with a later ``next_attempt_at`` on a transient failure, or to
``dead`` on a permanent one or after a day of failures. A claim is a lease:
``next_attempt_at`` moves ``MAIL_LEASE`` ahead, and a row still ``sending`` past
it (its worker was killed) is claimed again, with the same Message-ID. A node
that is the only process on its database releases them as it starts.

What this cannot do: between the SMTP server's 250 and the commit of
``sent`` (one local SQLite commit), a SIGKILL or power cut leaves a message
the server took still ``sending``, and it is sent a second time after the
restart. SMTP has no way to ask a server whether it already has a message;
the repeated Message-ID lets a mailbox that deduplicates by it show the copy
once. A kill at any other moment loses nothing and repeats nothing.
"""
from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from node.db import Database, Row, Writing, stamp, timestamp
from node.mail import Attachment, OutgoingMail

# How long a claimed message is its worker's: SMTP timeouts bound each of the few it claims.
MAIL_LEASE = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class QueuedMail:
    id: int
    token: str  # the Message-ID's left part, fixed at enqueue
    mail: OutgoingMail
    attempts: int  # tries so far, this one included
    created_at: str


@dataclass(frozen=True, slots=True)
class MailBacklog:
    waiting: int  # pending or being sent
    oldest_created_at: str | None


async def enqueue_mail(conn: Writing, mail: OutgoingMail) -> str:
    """Inside the caller's write transaction: the message commits, or not, with the change.

    Returns the message's token (its Message-ID is ``<token@sender's domain>``).
    """
    token = secrets.token_hex(16)
    now = timestamp()
    attachments = [{"filename": a.filename, "content_type": a.content_type,
                    "data": base64.b64encode(a.data).decode("ascii")}
                   for a in mail.attachments]
    await conn.execute(
        "INSERT INTO mail_outbox (account_id, to_address, kind, message_id, subject, body_text,"
        " body_html, attachments, unsubscribe_url, state, attempts, next_attempt_at,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?)",
        (mail.account_id, mail.to_address, mail.kind, token, mail.subject, mail.text,
         mail.html, json.dumps(attachments), mail.unsubscribe_url, now, now),
    )
    return token


def _queued(row: Row) -> QueuedMail:
    attachments = tuple(Attachment(a["filename"], a["content_type"], base64.b64decode(a["data"]))
                        for a in json.loads(row["attachments"]))
    return QueuedMail(
        id=row["id"],
        token=row["message_id"],
        mail=OutgoingMail(
            to_address=row["to_address"], kind=row["kind"], subject=row["subject"],
            text=row["body_text"], html=row["body_html"], account_id=row["account_id"],
            attachments=attachments, unsubscribe_url=row["unsubscribe_url"]),
        attempts=row["attempts"],
        created_at=row["created_at"],
    )


async def claim_due_mail(db: Database, limit: int = 10) -> list[QueuedMail]:
    """Due messages, oldest first, marked ``sending`` (and committed) before any is sent,
    leased for ``MAIL_LEASE``."""
    now = datetime.now(UTC)
    rows = await db.write(
        "UPDATE mail_outbox SET state = 'sending', attempts = attempts + 1,"
        " next_attempt_at = ? WHERE id IN (SELECT id FROM mail_outbox"
        " WHERE state IN ('pending', 'sending') AND next_attempt_at <= ?"
        f" ORDER BY next_attempt_at, id LIMIT ? {db.dialect.skip_locked}) RETURNING *",
        (stamp(now + MAIL_LEASE), stamp(now), limit),
    )
    return sorted(map(_queued, rows), key=lambda queued: queued.id)


async def mark_mail_sent(db: Database, mail_id: int) -> None:
    """Sent: what it said is the recipient's now, and is not kept here."""
    await db.write("UPDATE mail_outbox SET state = 'sent', sent_at = ?, last_error = NULL,"
                   " body_text = '', body_html = '', attachments = '[]' WHERE id = ?",
                   (timestamp(), mail_id))


async def prune_mail(db: Database, before: str) -> int:
    """Forget messages sent or given up before ``before``; how many."""
    rows = await db.write("DELETE FROM mail_outbox WHERE state IN ('sent', 'dead')"
                          " AND created_at < ? RETURNING id", (before,))
    return len(rows)


async def mark_mail_failed(db: Database, mail_id: int, error: str,
                           retry_at: str | None) -> None:
    """Pending again from ``retry_at``, or ``dead`` when it is None."""
    await db.write(
        "UPDATE mail_outbox SET state = ?, next_attempt_at = coalesce(?, next_attempt_at),"
        " last_error = ? WHERE id = ?",
        ("pending" if retry_at else "dead", retry_at, error, mail_id),
    )


async def release_sending_mail(db: Database) -> int:
    """Rows a stopped or killed worker left ``sending`` are due again; how many."""
    rows = await db.write("UPDATE mail_outbox SET state = 'pending', next_attempt_at = ?"
                          " WHERE state = 'sending' RETURNING id", (timestamp(),))
    return len(rows)


async def mail_backlog(db: Database) -> MailBacklog:
    row = await db.fetchone("SELECT count(*), min(created_at) FROM mail_outbox"
                            " WHERE state IN ('pending', 'sending')")
    assert row is not None
    return MailBacklog(row[0], row[1])


async def delete_account_mail(conn: Writing, account_id: int) -> None:
    """Inside the caller's write transaction: every message kept for the account, gone."""
    await conn.execute("DELETE FROM mail_outbox WHERE account_id = ?", (account_id,))
