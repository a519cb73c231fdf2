"""Prometheus metrics for `GET /metrics`: one registry per process."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from storage import outbox
from storage.db import Database, StorageUnavailable

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.escalations = Counter(
            "escalations_created", "Escalations stored (re-submissions not counted)", ["platform"], registry=r
        )
        self.claims = Counter(
            "claims",
            "Claim clicks by outcome: won, conflict (someone else had it), already_yours, refused, closed, not_found",
            ["platform", "outcome"],
            registry=r,
        )
        self.outbox = Gauge("outbox_messages", "Outbox rows by status (read at scrape time)", ["status"], registry=r)
        self.delivery = Histogram(
            "delivery_seconds",
            "Time to send one outbox row to the platform, by kind and result",
            ["kind", "result"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.delivery_lag = Histogram(
            "delivery_lag_seconds",
            "From the change being committed to its message being accepted by the platform",
            ["kind"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ack = Histogram(
            "ack_seconds",
            "Time to answer a platform request (Slack wants it within 3 s)",
            ["platform", "request"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.events = Counter(
            "events_handled",
            "Platform events handled, by outcome (recorded, ignored, duplicate, not_a_card, shown, failed)",
            ["platform", "outcome"],
            registry=r,
        )
        self.duplicate_events = Counter(
            "duplicate_events", "Platform event re-deliveries recognised and skipped", ["platform"], registry=r
        )
        self.rejected = Counter(
            "requests_rejected",
            "Requests refused at the door: reason signature (or token) failed, malformed, or not_allowed",
            ["platform", "reason"],
            registry=r,
        )
        self.loop_lag = Histogram(
            "event_loop_lag_seconds",
            "How late the event loop ran a timer due every 0.1 s (everything this process does waits that long)",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        self.storage_unavailable = Counter(
            "storage_unavailable", "Requests answered 'try again' because the database did not answer", registry=r
        )

    def handled(self, platform: str) -> int:
        """How many events of a platform have been handled so far, whatever the outcome."""
        total = 0.0
        for metric in self.events.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total") and sample.labels.get("platform") == platform:
                    total += sample.value
        return int(total)

    async def render(self, db: Database) -> bytes:
        try:
            async with db.read() as conn:
                counts = await outbox.counts(conn)
            for status in ("pending", "sent", "dead"):
                self.outbox.labels(status).set(counts.get(status, 0))
        except StorageUnavailable:
            pass  # the gauges keep their last value; /readyz says the database is down
        return generate_latest(self.registry)


async def watch_loop_lag(metrics: Metrics, every: float = 0.1) -> None:
    """Sleep `every` seconds, again and again, and record how much later than asked each wake-up came."""
    loop = asyncio.get_running_loop()
    while True:
        start = loop.time()
        await asyncio.sleep(every)
        metrics.loop_lag.observe(max(0.0, loop.time() - start - every))
