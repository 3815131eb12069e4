"""The node's Prometheus metrics: counted where things happen, queues read when scraped.

One ``Metrics`` per running node (made in the lifespan, with its own registry).
Labels are route templates, methods, statuses, activity types, reason words,
outcomes, worker names and peers' host names: never a member, an actor or an id.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.process_collector import ProcessCollector

from federation.events import FederationEvents

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
        self.registry = CollectorRegistry()
        self._requests = Counter(
            "grassroots_http_requests", "HTTP requests answered, by route template and status.",
            ["method", "route", "status"], registry=self.registry)
        self._latency = Histogram(
            "grassroots_http_request_duration_seconds",
            "Time to answer HTTP requests, by route template.", ["method", "route"],
            buckets=LATENCY_BUCKETS, registry=self.registry)
        self._accepted = Counter(
            "grassroots_inbox_accepted", "Activities the inbox stored (or had) and answered 202.",
            ["type"], registry=self.registry)
        self._refused = Counter(
            "grassroots_inbox_refused", "Inbox requests refused, nothing stored, by reason.",
            ["status", "reason"], registry=self.registry)
        self._deliveries = Counter(
            "grassroots_deliveries",
            "Delivery attempts by outcome: sent, retry (to be tried again) or failed (for good).",
            ["outcome"], registry=self.registry)
        ProcessCollector(registry=self.registry)

    def request_answered(self, method: str, route: str, status: int, seconds: float) -> None:
        self._requests.labels(method, route, str(status)).inc()
        self._latency.labels(method, route).observe(seconds)

    def inbox_accepted(self, activity_type: str) -> None:
        self._accepted.labels(activity_type).inc()

    def inbox_refused(self, status: int, reason: str) -> None:
        self._refused.labels(str(status), reason).inc()

    def delivery_finished(self, outcome: str) -> None:
        self._deliveries.labels(outcome).inc()

    def exposition(self, figures: Figures, accept: str) -> tuple[bytes, str]:
        """The text a scraper asked for (by its Accept header) and its media type."""
        encode, media_type = choose_encoder(accept)
        return encode(_Scrape(self.registry, figures)), media_type


@dataclass(frozen=True, slots=True)
class _Scrape:
    """The registry's metrics and this scrape's figures, as one collector."""

    registry: CollectorRegistry
    figures: Figures

    def collect(self) -> Iterator[Metric]:
        yield from self.registry.collect()
        yield from self.figures.collect()
