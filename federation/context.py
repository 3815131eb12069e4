"""What the federation side needs at hand: database, fetcher, URLs, mode."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta

from federation.admission import Admission
from federation.documents import Urls
from federation.events import FederationEvents
from federation.fetch import Fetcher
from federation.negative_cache import NegativeCache
from federation.ratelimit import PeerRateLimits
from federation.signatures import SignedAuth
from node.db import Database


@dataclass(slots=True)
class Federation:
    db: Database
    fetcher: Fetcher
    urls: Urls
    # --dev: http:// and loopback/private peers are allowed (local testing only).
    dev: bool = False
    wake_delivery: asyncio.Event = field(default_factory=asyncio.Event)
    wake_inbox: asyncio.Event = field(default_factory=asyncio.Event)
    inbox_limits: PeerRateLimits = field(default_factory=PeerRateLimits)
    admission: Admission = field(default_factory=Admission)
    # Remote URLs whose fetch failed or whose document was of no use, for a while.
    negative_cache: NegativeCache = field(default_factory=NegativeCache)
    # When the inbox last accepted an activity (event loop time): applying gives way to it.
    arrived_at: float = 0.0
    # The node actor's signer, made once: its key never changes while the node runs.
    node_signer: SignedAuth | None = None
    # A federated copy its origin has not confirmed for this long is stale; for this, retired.
    listing_stale_after: timedelta = timedelta(days=7)
    listing_retire_after: timedelta = timedelta(days=30)
    # Where inbox answers and delivery attempts are reported (the node's metrics).
    events: FederationEvents = field(default_factory=FederationEvents)
    # The outbox backfill under way from each newly followed peer (federation.handlers).
    backfills: dict[str, asyncio.Task[None]] = field(default_factory=dict)
