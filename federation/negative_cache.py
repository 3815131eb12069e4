"""Remote URLs that lately failed: fetches that did not succeed, documents of no use.

An admitted peer may name the same unusable URL in activity after activity (a
Person actor as a meeting's group, an object its origin refuses to serve).
Each failure is remembered here by URL, with its kind and reason, so the next
activity naming it is ignored, or refused at the inbox, without another fetch.
An outage is remembered for `TRANSIENT_TTL` (the runner retries the activity
later, and by then the origin is asked again); a refusal or an unusable
document for `PERMANENT_TTL`. A fetch that succeeds forgets the URL: successes
are never kept here. At most `MAX_ENTRIES` URLs, the least recently used
forgotten first.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

PERMANENT_TTL = 600.0  # seconds: a refusal (4xx, a blocked address) or an unusable document
TRANSIENT_TTL = 60.0   # seconds: an outage (5xx, 401, 429, timeouts, connection errors)
MAX_ENTRIES = 4_096
MAX_REASON = 200


class Kind(Enum):
    OUTAGE = "outage"  # 5xx, 401, 408, 429, timeouts, connection errors: retried after a while
    REFUSED = "refused"  # another 4xx, a blocked address, a bad document: the origin's answer
    UNUSABLE = "unusable"  # fetched, but not what it was named as (a Person as a meeting's group)


@dataclass(frozen=True, slots=True)
class Failure:
    kind: Kind
    reason: str
    until: float  # on the cache's clock

    @property
    def transient(self) -> bool:
        return self.kind is Kind.OUTAGE


class NegativeCache:
    """URL -> the `Failure` its last fetch or use ended in, while it lasts."""

    def __init__(self, max_entries: int = MAX_ENTRIES, permanent_ttl: float = PERMANENT_TTL,
                 transient_ttl: float = TRANSIENT_TTL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self._permanent_ttl = permanent_ttl
        self._transient_ttl = transient_ttl
        self._clock = clock
        self._failures: OrderedDict[str, Failure] = OrderedDict()

    def failure(self, url: str) -> Failure | None:
        """The remembered failure of ``url``, unless it has expired."""
        found = self._failures.get(url)
        if found is None:
            return None
        if found.until <= self._clock():
            del self._failures[url]
            return None
        self._failures.move_to_end(url)  # most recently used last
        return found

    def remember(self, url: str, kind: Kind, reason: str) -> None:
        ttl = self._transient_ttl if kind is Kind.OUTAGE else self._permanent_ttl
        self._failures.pop(url, None)  # re-inserted last
        self._failures[url] = Failure(kind, reason[:MAX_REASON], self._clock() + ttl)
        if len(self._failures) > self.max_entries:
            self._failures.popitem(last=False)

    def forget(self, url: str) -> None:
        """``url`` was fetched, or stored, successfully."""
        self._failures.pop(url, None)

    def __len__(self) -> int:
        return len(self._failures)
