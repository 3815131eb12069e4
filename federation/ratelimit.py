"""Per-peer inbox rate limit: a token bucket for each sending host, held in memory.

A sender may post `rate` requests a second on average and `burst` at once
(the node's `inbox_rate_per_second` and `inbox_burst`, `RATE` and `BURST` unless
set); past that it gets 429 with `Retry-After` before anything is read, parsed,
fetched, verified or stored, so one peer's flood costs the others nothing.
The sender is the host of the Signature's `keyId` (without its port, as a
block covers every port), which must be the actor's host for the request to
be accepted at all; a request with no usable keyId is counted against the
address it came from. At most `MAX_TRACKED` senders are remembered, the
least recently seen forgotten first (it then starts again with a full bucket).
"""
from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping

from federation.addresses import url_domain
from federation.message_signatures import parse_message_signature
from federation.signatures import parse_signature_header
from node.config import INBOX_BURST, INBOX_RATE_PER_SECOND

RATE = float(INBOX_RATE_PER_SECOND)  # requests a second, sustained
BURST = float(INBOX_BURST)           # requests at once
MAX_TRACKED = 10_000


class PeerRateLimits:
    """Token buckets by sender; `take` spends one token or says how long to wait."""

    def __init__(self, rate: float = RATE, burst: float = BURST,
                 max_tracked: int = MAX_TRACKED,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.max_tracked = max_tracked
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, when

    def take(self, sender: str) -> float:
        """Spend one of `sender`'s tokens: 0.0 if it may go on, else the seconds to wait."""
        now = self._clock()
        tokens, then = self._buckets.pop(sender, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.rate
        self._buckets[sender] = (tokens, now)  # re-inserted: most recently seen last
        if len(self._buckets) > self.max_tracked:
            self._buckets.popitem(last=False)
        return wait

    def __len__(self) -> int:
        return len(self._buckets)


def sender_of(headers: Mapping[str, str], client: str | None) -> str:
    """Who a request is counted against: its keyId's host, else the address it came from.

    ``headers`` has lower-case names; ``client`` is the peer address, if known.
    """
    header = headers.get("signature")
    if header is not None:
        signature_input = headers.get("signature-input")
        try:
            if signature_input is None:
                return url_domain(parse_signature_header(header).key_id)
            return url_domain(parse_message_signature(signature_input, header).key_id)
        except ValueError:  # a SignatureError, or a keyId that is no http(s) URL
            pass
    return f"address {client or '?'}"


def retry_after(headers: Mapping[str, str], client: str | None,
                limits: PeerRateLimits) -> tuple[str, int] | None:
    """(sender, whole seconds to wait) when the request's sender is over its rate; else None."""
    sender = sender_of(headers, client)
    wait = limits.take(sender)
    return (sender, max(1, math.ceil(wait))) if wait else None
