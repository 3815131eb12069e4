"""When to try a delivery again: a pure function of attempts, age and the peer's answer.

Responses are sorted as Mastodon sorts them: 2xx sent; 404, 410 and every
other 4xx but 401, 408 and 429 a permanent failure; 429 and 503 retried when
the peer's Retry-After says; 401, 408, other statuses and network errors
retried with exponential backoff and jitter, for 3 days (Mastodon: ~2.5).
"""
from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import Enum
from typing import Literal

BASE_DELAY = 30.0
MAX_DELAY = 12 * 3600.0
MAX_RETRY_AFTER = 6 * 3600.0
JITTER = 0.2
GIVE_UP_AFTER = timedelta(days=3)

_SECONDS = re.compile(r"[0-9]{1,10}")
_RETRY_AGAIN_4XX = frozenset({401, 408, 429})
_THROTTLED = frozenset({429, 503})


class Answer(Enum):
    """What a peer's answer (a status, or None for no answer) says about the delivery."""

    SENT = "sent"
    REFUSED = "refused"        # permanent: the peer will never take it
    THROTTLED = "throttled"    # try again when Retry-After says
    UNAVAILABLE = "unavailable"  # try again later, backing off


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Literal["sent", "failed", "retry"]
    delay_seconds: float | None  # set only when outcome is "retry"
    reason: str


def sort_answer(status: int | None) -> Answer:
    if status is None:
        return Answer.UNAVAILABLE
    if 200 <= status < 300:
        return Answer.SENT
    if status in _THROTTLED:
        return Answer.THROTTLED
    if 400 <= status < 500 and status not in _RETRY_AGAIN_4XX:
        return Answer.REFUSED
    return Answer.UNAVAILABLE


def next_attempt(attempts: int, first_attempt_at: datetime, now: datetime, status: int | None,
                 retry_after: str | None, rng: Callable[[], float] = random.random) -> Decision:
    """Sent, failed for good, or retry after a delay; ``attempts`` counts earlier tries."""
    answer = sort_answer(status)
    said = "no answer" if status is None else f"HTTP {status}"
    if answer is Answer.SENT:
        return Decision("sent", None, said)
    if answer is Answer.REFUSED:
        return Decision("failed", None, f"refused: {said}")
    if now - first_attempt_at > GIVE_UP_AFTER:
        return Decision("failed", None, f"gave up after {GIVE_UP_AFTER.days} days: {said}")
    delay = _backoff(attempts, rng)
    if answer is Answer.THROTTLED:
        asked = _retry_after_seconds(retry_after, now)
        if asked is not None:
            # Never sooner than our own backoff, so "Retry-After: 0" cannot make us hammer.
            delay = max(delay, min(asked, MAX_RETRY_AFTER))
    return Decision("retry", delay, said)


def _backoff(attempts: int, rng: Callable[[], float] = random.random) -> float:
    """30 s doubling per attempt, ±20 % jitter, never above 12 h."""
    base = min(BASE_DELAY * 2 ** min(max(attempts, 0), 32), MAX_DELAY)
    return min(base * (1 + JITTER * (2 * rng() - 1)), MAX_DELAY)


def _retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """A Retry-After header (delay-seconds or an HTTP date) as seconds from ``now``."""
    if value is None:
        return None
    text = value.strip()
    if _SECONDS.fullmatch(text):
        return float(text)
    try:
        moment = parsedate_to_datetime(text) if len(text) <= 64 else None
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max((moment - now).total_seconds(), 0.0)
