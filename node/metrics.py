"""The node's Prometheus metrics: counted where things happen, queues read when scraped.

One ``Metrics`` per running node (made in the lifespan). Counts are kept in plain
dicts: prometheus_client (~1 MB with what it imports) loads with the first scrape.
Labels are route templates, methods, statuses, activity types, reason words,
outcomes, worker names and peers' host names: never a member, an actor or an id.
"""
from __future__ import annotations

import bisect
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from federation.events import FederationEvents

if TYPE_CHECKING:
    from prometheus_client.core import Metric

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True, slots=True)
class PeerQueue:
    """One peer host's deliveries not sent, as scraped."""

    waiting: int = 0
    oldest_seconds: float = 0.0   # the oldest waiting delivery's age
    failing_seconds: float = 0.0  # how long its oldest failing delivery has been failing
    given_up: int = 0             # failed for good, kept for the admin to retry or drop


@dataclass(frozen=True, slots=True)
class Figures:
    """What is read from the database and the disk at each scrape."""

    peers: dict[str, PeerQueue] = field(default_factory=dict)
    inbox_waiting: int = 0
    mail_waiting: int = 0
    mail_oldest_seconds: float = 0.0
    database_bytes: dict[str, int] = field(default_factory=dict)  # "database", "wal"
    free_disk_bytes: int = 0
    workers: dict[str, bool] = field(default_factory=dict)  # name: moving as it should

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        per_peer = (
            ("grassroots_delivery_queue_depth", "Deliveries waiting to be sent, per peer host.",
             "waiting"),
            ("grassroots_delivery_queue_oldest_age_seconds",
             "Age of the oldest delivery waiting, per peer host.", "oldest_seconds"),
            ("grassroots_delivery_failing_seconds",
             "How long the peer's oldest waiting delivery has been failing (0: not failing).",
             "failing_seconds"),
            ("grassroots_delivery_given_up",
             "Deliveries given up on, kept for the admin to retry or drop, per peer host.",
             "given_up"),
        )
        for name, documentation, attribute in per_peer:
            family = GaugeMetricFamily(name, documentation, labels=["host"])
            for host, queue in sorted(self.peers.items()):
                family.add_metric([host], getattr(queue, attribute))
            yield family
        yield GaugeMetricFamily("grassroots_inbox_queue_depth",
                                "Activities received and not yet applied.",
                                value=self.inbox_waiting)
        yield GaugeMetricFamily("grassroots_mail_outbox_depth",
                                "Messages in the mail outbox not yet sent.",
                                value=self.mail_waiting)
        yield GaugeMetricFamily("grassroots_mail_outbox_oldest_age_seconds",
                                "Age of the oldest message waiting in the mail outbox.",
                                value=self.mail_oldest_seconds)
        size = GaugeMetricFamily("grassroots_database_bytes",
                                 "Size of the SQLite database file and its write-ahead log.",
                                 labels=["file"])
        for name, value in sorted(self.database_bytes.items()):
            size.add_metric([name], value)
        yield size
        yield GaugeMetricFamily("grassroots_data_free_bytes",
                                "Free space on the data directory's disk.",
                                value=self.free_disk_bytes)
        workers = GaugeMetricFamily("grassroots_worker_up",
                                    "1 while a background worker moves as it should (see"
                                    " /readyz), else 0.", labels=["worker"])
        for name, up in sorted(self.workers.items()):
            workers.add_metric([name], int(up))
        yield workers


class Metrics(FederationEvents):
    """The counters and histograms of one running node; federation reports to it too."""

    def __init__(self) -> None:
        self._requests: Counts = {}   # (method, route, status)
        self._latency: dict[tuple[str, str], Latency] = {}  # (method, route)
        self._accepted: Counts = {}   # (type,)
        self._refused: Counts = {}    # (status, reason)
        self._deliveries: Counts = {}  # (outcome,)

    def request_answered(self, method: str, route: str, status: int, seconds: float) -> None:
        _count(self._requests, (method, route, str(status)))
        latency = self._latency.get((method, route))
        if latency is None:
            latency = self._latency[method, route] = Latency()
        latency.observe(seconds)

    def inbox_accepted(self, activity_type: str) -> None:
        _count(self._accepted, (activity_type,))

    def inbox_refused(self, status: int, reason: str) -> None:
        _count(self._refused, (str(status), reason))

    def delivery_finished(self, outcome: str) -> None:
        _count(self._deliveries, (outcome,))

    def exposition(self, figures: Figures, accept: str) -> tuple[bytes, str]:
        """The text a scraper asked for (by its Accept header) and its media type."""
        from prometheus_client.exposition import choose_encoder

        encode, media_type = choose_encoder(accept)
        return encode(_Scrape(self, figures)), media_type

    def collect(self) -> Iterator[Metric]:
        """The families prometheus_client's Counter and Histogram would give, in their order."""
        from prometheus_client.process_collector import ProcessCollector

        yield _counter("grassroots_http_requests",
                       "HTTP requests answered, by route template and status.",
                       ("method", "route", "status"), self._requests)
        yield _histogram("grassroots_http_request_duration_seconds",
                         "Time to answer HTTP requests, by route template.",
                         ("method", "route"), self._latency)
        yield _counter("grassroots_inbox_accepted",
                       "Activities the inbox stored (or had) and answered 202.",
                       ("type",), self._accepted)
        yield _counter("grassroots_inbox_refused",
                       "Inbox requests refused, nothing stored, by reason.",
                       ("status", "reason"), self._refused)
        yield _counter("grassroots_deliveries",
                       "Delivery attempts by outcome: sent, retry (to be tried again) or failed"
                       " (for good).", ("outcome",), self._deliveries)
        yield from ProcessCollector(registry=None).collect()


Counts = dict[tuple[str, ...], list[float]]  # labels: [count, when first counted]


def _count(counts: Counts, labels: tuple[str, ...]) -> None:
    entry = counts.get(labels)
    if entry is None:
        counts[labels] = [1.0, time.time()]
    else:
        entry[0] += 1.0


@dataclass(slots=True)
class Latency:
    """One histogram series: observations per bucket (the last is +Inf), their sum."""

    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    total: float = 0.0
    created: float = field(default_factory=time.time)

    def observe(self, seconds: float) -> None:
        self.buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.total += seconds


def _counter(name: str, documentation: str, labelnames: Sequence[str],
             counts: Counts) -> Metric:
    from prometheus_client.core import Metric

    family = Metric(name, documentation, "counter")
    for labels, (value, created) in counts.items():
        named = dict(zip(labelnames, labels))
        family.add_sample(f"{name}_total", named, value)
        family.add_sample(f"{name}_created", named, created)
    return family


def _histogram(name: str, documentation: str, labelnames: Sequence[str],
               series: dict[tuple[str, str], Latency]) -> Metric:
    from prometheus_client.core import Metric
    from prometheus_client.utils import floatToGoString

    family = Metric(name, documentation, "histogram")
    for labels, latency in series.items():
        named = dict(zip(labelnames, labels))
        seen = 0.0
        for bound, observed in zip((*LATENCY_BUCKETS, float("inf")), latency.buckets):
            seen += observed
            family.add_sample(f"{name}_bucket", {**named, "le": floatToGoString(bound)}, seen)
        family.add_sample(f"{name}_count", named, seen)
        family.add_sample(f"{name}_sum", named, latency.total)
        family.add_sample(f"{name}_created", named, latency.created)
    return family


@dataclass(frozen=True, slots=True)
class _Scrape:
    """The node's counts and this scrape's figures, as one collector."""

    metrics: Metrics
    figures: Figures

    def collect(self) -> Iterator[Metric]:
        yield from self.metrics.collect()
        yield from self.figures.collect()
