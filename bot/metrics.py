"""Prometheus metrics for `GET /metrics`, one registry per process, named by Prometheus' conventions:
the `escalation_bot_` namespace, `_total` on counters, base units in the name (seconds), help text
on each, and labels from small fixed sets (platform, queue, severity, method, outcome): never a
user, a channel or an escalation. docs/operations.md lists them all (a test keeps it so).

Counters and histograms are this process's own: sum them across replicas. The gauges read from the
database at scrape time (the outbox, the queues, the weekly reports) are the same on every replica:
aggregate those with `max`, not `sum`. They are read at most every SCRAPE_READ_SECONDS, however
many scrapes arrive, each with one statement over an index that leads with the status.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest

from handoff.domain import Handoff
from handoff.service import HandoffService, utcnow
from handoff.ttl import TtlCache
from handoff.watch import QueueLoad, ReportsDue
from storage.db import Database, StorageUnavailable
from storage.gauges import OutboxState

log = logging.getLogger(__name__)

NAMESPACE = "escalation_bot"
# Answer times: fine below a second, and edges at Slack's 3 s and Teams' 15 s deadlines.
ANSWER_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 2.5, 3.0, 5.0, 10.0, 15.0, 30.0, 60.0)
# Waiting for a person: from half a minute to a day.
WAIT_BUCKETS = (30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SCRAPE_READ_SECONDS = 5.0

# Outcomes of a call to Slack's Web API or the Teams connector.
OK, ERROR, RATE_LIMITED, SERVER_ERROR, FAILED = "ok", "error", "rate_limited", "server_error", "failed"


@dataclass(frozen=True)
class Readings:
    outbox: OutboxState
    load: list[QueueLoad]
    reports: ReportsDue
    at: datetime


def _name(short: str) -> str:
    return f"{NAMESPACE}_{short}"


class Metrics:
    def __init__(self, version: str = "") -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)  # process_cpu_seconds_total, process_resident_memory_bytes, ...
        self.build_info = Gauge(_name("build_info"), "The running release (always 1)", ["version"], registry=r)
        self.build_info.labels(version or "unknown").set(1)
        # ---- what people feel -------------------------------------------------------------
        self.escalations = Counter(
            _name("escalations_created"), "Escalations stored (re-submissions not counted)", ["platform"], registry=r
        )
        self.claims = Counter(
            _name("claims"),
            "Claim clicks by outcome: won, conflict (someone else had it), already_yours, refused, closed, "
            "not_found, moved",
            ["platform", "outcome"],
            registry=r,
        )
        self.time_to_claim = Histogram(
            _name("time_to_claim_seconds"),
            "From an escalation arriving in its queue to the winning Claim",
            ["platform"],
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.ack = Histogram(
            _name("ack_duration_seconds"),
            "Time to answer a platform request (Slack wants it within 3 s, Teams within 15 s)",
            ["platform", "request"],
            buckets=ANSWER_BUCKETS,
            registry=r,
        )
        self.submission_to_card = Histogram(
            _name("submission_to_card_seconds"),
            "From an escalation being stored to its card being accepted by the platform",
            ["platform"],
            buckets=ANSWER_BUCKETS,
            registry=r,
        )
        # ---- delivery ---------------------------------------------------------------------
        self.delivery = Histogram(
            _name("delivery_duration_seconds"),
            "Time to send one outbox row, by kind and result (sent, retry, defer, giveup)",
            ["kind", "result"],
            buckets=ANSWER_BUCKETS,
            registry=r,
        )
        self.delivery_lag = Histogram(
            _name("delivery_lag_seconds"),
            "From the change being committed to its message being accepted by the platform",
            ["kind"],
            buckets=ANSWER_BUCKETS,
            registry=r,
        )
        self.api_calls = Counter(
            _name("platform_api_calls"),
            "Calls to Slack's Web API and the Teams connector, by method and outcome (ok, error, rate_limited: a "
            "429, server_error: a 5xx, failed: no answer)",
            ["platform", "method", "outcome"],
            registry=r,
        )
        self.outbox = Gauge(
            _name("outbox_rows"),
            "Outbox rows still pending, and dead (given up on); from the database",
            ["status"],
            registry=r,
        )
        self.outbox_oldest = Gauge(
            _name("outbox_oldest_pending_age_seconds"),
            "Age of the oldest outbox row still pending (0 when none); from the database",
            registry=r,
        )
        # ---- requests and events ------------------------------------------------------------
        self.events = Counter(
            _name("events_handled"),
            "Platform events handled, by outcome (recorded, ignored, duplicate, not_a_card, shown, failed)",
            ["platform", "outcome"],
            registry=r,
        )
        self.duplicate_events = Counter(
            _name("duplicate_events"), "Platform event re-deliveries recognised and skipped", ["platform"], registry=r
        )
        self.rejected = Counter(
            _name("requests_rejected"),
            "Requests refused at the door: reason signature (or token) failed, malformed, or not_allowed",
            ["platform", "reason"],
            registry=r,
        )
        self.retention = Counter(
            _name("retention_removed"),
            "What the scheduler erased or deleted because it was past its time: escalation_text (escalations "
            "whose free text was erased), delivered_messages, event_ids, sign_ins (the leads' page's expired links and "
            "sessions)",
            ["what"],
            registry=r,
        )
        self.storage_unavailable = Counter(
            _name("storage_unavailable"),
            "Requests answered 'try again' because the database did not answer",
            registry=r,
        )
        # ---- the process ------------------------------------------------------------------
        self.loop_lag = Histogram(
            _name("event_loop_lag_seconds"),
            "How late the event loop ran a timer due every 0.1 s (everything this process does waits that long)",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.pool_in_use = Gauge(
            _name("db_pool_connections_in_use"), "Database connections this process has handed out now", registry=r
        )
        self.pool_size = Gauge(
            _name("db_pool_connections_max"), "Database connections this process's pool keeps at most", registry=r
        )
        self.database_up = Gauge(
            _name("database_up"), "1 if the database answered this scrape's reads, else 0", registry=r
        )
        # ---- the queue --------------------------------------------------------------------
        self.open = Gauge(
            _name("open_escalations"),
            "Escalations not yet resolved, by queue, severity and state (unclaimed, claimed); from the database",
            ["queue", "severity", "state"],
            registry=r,
        )
        self.oldest_unclaimed = Gauge(
            _name("oldest_unclaimed_age_seconds"),
            "Age of the oldest unclaimed escalation in its queue, by queue and severity; from the database",
            ["queue", "severity"],
            registry=r,
        )
        self.lead_alert_after = Gauge(
            _name("lead_alert_after_seconds"),
            "How long an escalation may stay unclaimed before its queue's leads are told, by queue and severity",
            ["queue", "severity"],
            registry=r,
        )
        self.report_due = Gauge(
            _name("weekly_report_due_timestamp_seconds"),
            "When the latest weekly report was due (Unix time)",
            registry=r,
        )
        self.report_posted = Gauge(
            _name("weekly_report_posted_timestamp_seconds"),
            "When the latest due week's report was posted (Unix time; 0 until it is), by queue ('(workspace)' for "
            "the workspace's own post)",
            ["queue"],
            registry=r,
        )
        self._readings: TtlCache[None, Readings] = TtlCache(SCRAPE_READ_SECONDS)

    def won(self, platform: str, h: Handoff) -> None:
        """A winning Claim: its wait, from arriving in the queue that claimed it."""
        arrived = h.queue_arrived_at or h.created_at
        if h.claimed_at is not None and arrived is not None:
            self.time_to_claim.labels(platform).observe(max(0.0, (h.claimed_at - arrived).total_seconds()))

    def api_call(self, platform: str, method: str, outcome: str) -> None:
        self.api_calls.labels(platform, method, outcome).inc()

    def handled(self, platform: str) -> int:
        """How many events of a platform have been handled so far, whatever the outcome."""
        total = 0.0
        for metric in self.events.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total") and sample.labels.get("platform") == platform:
                    total += sample.value
        return int(total)

    async def render(self, db: Database, read: Callable[[], Awaitable[Readings]] | None = None) -> bytes:
        in_use, size = db.pool_status()
        self.pool_in_use.set(in_use)
        self.pool_size.set(size)
        if read is not None:
            try:
                self._show(await self._readings.get(None, read))
                self.database_up.set(1)
            except (StorageUnavailable, TimeoutError) as exc:
                self.database_up.set(0)  # the gauges keep their last value; /readyz says why
                log.debug("metrics: the database did not answer: %s", exc)
        return generate_latest(self.registry)

    def _show(self, readings: Readings) -> None:
        now = readings.at
        state = readings.outbox
        self.outbox.labels("pending").set(state.pending)
        self.outbox.labels("dead").set(state.dead)
        oldest = state.oldest_pending
        self.outbox_oldest.set(max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0)
        for gauge in (self.open, self.oldest_unclaimed, self.lead_alert_after):
            gauge.clear()  # a queue with nothing open any more leaves the series
        for load in readings.load:
            self.open.labels(load.queue, load.severity, "unclaimed").set(load.unclaimed)
            self.open.labels(load.queue, load.severity, "claimed").set(load.claimed)
            self.lead_alert_after.labels(load.queue, load.severity).set(load.lead_alert_after.total_seconds())
            if load.oldest_unclaimed is not None:
                age = max(0.0, (now - load.oldest_unclaimed).total_seconds())
                self.oldest_unclaimed.labels(load.queue, load.severity).set(age)
        self.report_due.set(readings.reports.due_at.timestamp())
        self.report_posted.clear()
        for label, when in readings.reports.posted.items():
            self.report_posted.labels(label).set(when.timestamp() if when is not None else 0)


def scrape_reader(
    service: HandoffService, *, lead_alert_minutes: int, weekday: str, at: object, timezone: str, timeout: float = 3.0
) -> Callable[[], Awaitable[Readings]]:
    """What /metrics reads from the database: the outbox, the queues' load, last week's reports."""

    async def read() -> Readings:
        async with asyncio.timeout(timeout):
            return Readings(
                outbox=await service.outbox_state(),
                load=await service.queue_load(lead_alert_minutes=lead_alert_minutes),
                reports=await service.reports_due(weekday=weekday, at=at, timezone=timezone),  # type: ignore[arg-type]
                at=utcnow(),
            )

    return read


async def watch_loop_lag(metrics: Metrics, every: float = 0.1) -> None:
    """Sleep `every` seconds, again and again, and record how much later than asked each wake-up came."""
    loop = asyncio.get_running_loop()
    while True:
        start = loop.time()
        await asyncio.sleep(every)
        metrics.loop_lag.observe(max(0.0, loop.time() - start - every))
