"""Check-out pulses: how a meeting was for each member, kept so that no one can tell
whose answer is whose.

An answer row holds the scale and the word only: no account, no time, and a random
token as its key, so the rows keep no order of arrival. Who answered is kept apart in
``pulse_answered``, only to refuse a second answer, with nothing tying it to an answer.

Facilitators never read the answers themselves, only ``pulse_summaries``, and that is
written in whole batches of ``K_ANONYMITY`` answers. When an answer brings the count to
a multiple of K, the summary is recomputed from every answer in the same transaction;
between those moments it stays as it was. So nothing shows below K answers, K to 2K-1
answers show the summary of K, and so on: two looks at the page differ by K answers or
none, and no single answer can be read off by watching when a member answered.
"""
from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime

from node.db import Database, Writing, parse_stamp, stamp

K_ANONYMITY = 5  # the fewest answers a summary is ever made of
SCALE = range(1, 6)


@dataclass(frozen=True, slots=True)
class PulseSummary:
    answers: int
    counts: tuple[int, ...]  # how many answered each step of the scale, 1 first
    words: tuple[str, ...]  # alphabetical, so their order says nothing of who wrote them


def summarise(answers: list[tuple[int, str]]) -> PulseSummary:
    """The summary of (scale, word) answers."""
    counts = tuple(sum(1 for scale, _ in answers if scale == step) for step in SCALE)
    words = tuple(sorted((word for _, word in answers if word), key=str.casefold))
    return PulseSummary(answers=len(answers), counts=counts, words=words)


async def answer_pulse(db: Database, *, event_id: int, occurrence: str, group_id: int,
                       account_id: int, scale: int, word: str, erase_after: datetime) -> bool:
    """Store one member's answer; False (and nothing stored) if they already answered.

    ``erase_after`` is fixed by the meeting's first answer.
    """
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO pulse_meetings (event_id, occurrence, group_id, erase_after)"
            " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (event_id, occurrence, group_id, stamp(erase_after)))
        cursor = await conn.execute(
            "INSERT INTO pulse_answered (event_id, occurrence, account_id) VALUES (?, ?, ?)"
            " ON CONFLICT DO NOTHING", (event_id, occurrence, account_id))
        if cursor.rowcount == 0:
            return False
        await conn.execute(
            "INSERT INTO pulse_answers (event_id, occurrence, token, scale, word)"
            " VALUES (?, ?, ?, ?, ?)",
            (event_id, occurrence, secrets.token_hex(16), scale, word))
        await _summarise_whole_batch(conn, event_id, occurrence)
    return True


async def _summarise_whole_batch(conn: Writing, event_id: int,
                                 occurrence: str) -> None:
    cursor = await conn.execute(
        "SELECT scale, word FROM pulse_answers WHERE event_id = ? AND occurrence = ?",
        (event_id, occurrence))
    answers = [(scale, word) for scale, word in await cursor.fetchall()]
    if len(answers) % K_ANONYMITY:
        return
    summary = summarise(answers)
    await conn.execute(
        "INSERT INTO pulse_summaries (event_id, occurrence, answers, summary)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (event_id, occurrence) DO UPDATE"
        " SET answers = excluded.answers, summary = excluded.summary",
        (event_id, occurrence, summary.answers,
         json.dumps({"counts": summary.counts, "words": summary.words})))


async def has_answered(db: Database, event_id: int, occurrence: str, account_id: int) -> bool:
    return bool(await db.fetchval(
        "SELECT 1 FROM pulse_answered WHERE event_id = ? AND occurrence = ? AND account_id = ?",
        (event_id, occurrence, account_id)))


async def stored_summary(db: Database, event_id: int, occurrence: str) -> PulseSummary | None:
    """The summary as of the last whole batch of answers; None below K answers."""
    row = await db.fetchone(
        "SELECT answers, summary FROM pulse_summaries WHERE event_id = ? AND occurrence = ?",
        (event_id, occurrence))
    if row is None:
        return None
    stored = json.loads(row["summary"])
    return PulseSummary(answers=row["answers"], counts=tuple(stored["counts"]),
                        words=tuple(stored["words"]))


async def erase_time(db: Database, event_id: int, occurrence: str) -> datetime | None:
    """When the meeting's pulses are erased, once its first answer fixed it."""
    found = await db.fetchval(
        "SELECT erase_after FROM pulse_meetings WHERE event_id = ? AND occurrence = ?",
        (event_id, occurrence))
    return parse_stamp(found) if found else None


async def erase_expired(db: Database, now: datetime) -> int:
    """Erase every pulse of the meetings whose keeping period is over; how many meetings."""
    erased = await db.write(
        "DELETE FROM pulse_meetings WHERE erase_after <= ? RETURNING event_id", (stamp(now),))
    return len(erased)
