"""The schema, as SQLAlchemy Core tables.

The tables are the source the Alembic migrations were written from; the
database itself is only ever created and changed by those migrations.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite and PostgreSQL.

    PostgreSQL stores `timestamptz`; SQLite stores naive UTC text in a fixed
    format, so comparisons in SQL stay correct there too.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # raw values from SQLite expressions
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# The conditions of the partial indexes, as queries must write them (literals, not parameters) for
# SQLite to use the index at all, and PostgreSQL whatever plan it caches.
IN_MOTION = "status IN ('open', 'claimed')"
UNERASED = "erased_at IS NULL AND status IN ('resolved', 'cancelled')"
# What a report reads of an escalation, in the order of the index it reads (ix_handoffs_report).
REPORT_COLUMNS = ["workspace_id", "created_at", "id", "severity", "queue_id", "claimed_by", "customer",
                  "queue_arrived_at", "resolved_at", "cancelled_at", "fact_first_claim_at", "fact_queue_claim_at",
                  "fact_acted_at", "fact_acted_claim_at", "fact_contested_at"]  # fmt: skip

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

workspaces = Table(
    "workspaces",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("platform", String(16), nullable=False),  # "slack" | "teams"
    Column("external_id", String(64), nullable=False),  # Slack team id, Teams tenant id
    Column("name", String(200)),
    Column("escalation_channel", String(255)),
    Column("leads_channel", String(255)),
    Column("settings", JSON),
    Column("next_number", Integer, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("platform", "external_id"),
)

# A workspace's queues: each has its escalation channel, who may claim, its leads and timings. The
# default queue's channels and people are the workspace's own (the workspace row, then `.env`).
queues = Table(
    "queues",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("workspace_id", Integer, ForeignKey("workspaces.id"), nullable=False),
    Column("name", String(80), nullable=False),
    Column("aliases", JSON),  # lower-case words a junior may type before a colon
    Column("is_default", Boolean, nullable=False, server_default=false()),
    Column("escalation_channel", String(255)),
    Column("leads_channel", String(255)),
    # senior_user_ids, senior_usergroup, lead_user_ids, reminder_minutes, lead_alert_minutes, serves
    Column("settings", JSON),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("workspace_id", "name"),
)

handoffs = Table(
    "handoffs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("workspace_id", Integer, ForeignKey("workspaces.id"), nullable=False),
    # Set as the last step of the transaction that stores the escalation (see allocate_number),
    # so it is never NULL once committed.
    Column("number", Integer),
    Column("status", String(16), nullable=False),
    Column("severity", String(2), nullable=False),
    Column("category", String(100)),
    Column("summary", Text, nullable=False),
    Column("details", Text, nullable=False, server_default=""),
    Column("tried", Text, nullable=False, server_default=""),
    Column("customer", Text, nullable=False, server_default=""),
    Column("links", JSON),
    Column("transcript", JSON),
    # An escalation made from a Slack message: where it came from, its permalink, and whether
    # the thread was copied into `transcript` or only linked.
    Column("source", JSON),
    # Up to three similar resolved escalations, found when the card was first posted.
    Column("similar", JSON),
    Column("requester_id", String(64), nullable=False),
    Column("requested_senior_id", String(64)),
    Column("origin_channel", String(64)),
    Column("claimed_by", String(64)),
    Column("claimed_at", UTCDateTime),
    Column("first_action_at", UTCDateTime),
    Column("resolved_by", String(64)),
    Column("resolution", Text),
    Column("resolved_at", UTCDateTime),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("card_channel", String(255)),
    Column("card_ref", String(255)),  # Slack message ts, or Teams activity id
    Column("card_url", Text),
    # The queue it is in (no foreign key: see migration 0007), since when, and how often it moved.
    Column("queue_id", Integer),
    Column("queue_arrived_at", UTCDateTime),
    # What a report needs of its events (migration 0013), kept by triggers on handoff_events.
    Column("fact_first_claim_at", UTCDateTime),  # its first claim
    Column("fact_queue_claim_at", UTCDateTime),  # its first claim since arriving in its queue
    Column("fact_last_claim_at", UTCDateTime),  # its latest claim
    Column("fact_acted_at", UTCDateTime),  # its first first action
    Column("fact_acted_claim_at", UTCDateTime),  # the claim that led to that first action
    Column("fact_contested_at", UTCDateTime),  # the first claim someone lost on it
    Column("moves", Integer, nullable=False, server_default="0"),
    Column("handovers", JSON),  # [{from, to, by, note, tried, at}], oldest first: the card shows them
    Column("cancelled_by", String(64)),
    Column("cancelled_at", UTCDateTime),
    Column("idempotency_key", String(255), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # When its free text was erased (retention, or its requester forgotten): migration 0010.
    Column("erased_at", UTCDateTime),
    UniqueConstraint("workspace_id", "number"),
    UniqueConstraint("workspace_id", "idempotency_key"),
    Index(None, "workspace_id", "status", "created_at"),
    # Thread replies and card events arrive with the card's channel and ts.
    Index(None, "workspace_id", "card_channel", "card_ref"),
    # The weekly report: one workspace's escalations opened in a week.
    Index(None, "workspace_id", "created_at"),
    # Reminders: open escalations across workspaces, oldest first.
    Index(None, "status", "created_at"),
    # App Home and `/escalate mine`.
    Index(None, "workspace_id", "requester_id", "status"),
    Index(None, "workspace_id", "claimed_by", "status"),
    Index(None, "workspace_id", "queue_id", "status"),
    # Retention: closed escalations whose text is still there, by workspace and last change (0010).
    Index(
        "ix_handoffs_unerased",
        "workspace_id",
        "updated_at",
        postgresql_where=text(UNERASED),
        sqlite_where=text(UNERASED),
    ),
    # A report's one read, index-only and in order (migration 0013).
    Index("ix_handoffs_report", *REPORT_COLUMNS),
    # What is still in motion (migration 0012): a few dozen rows, what /metrics counts.
    Index(
        "ix_handoffs_in_motion",
        "workspace_id",
        "queue_id",
        "severity",
        "status",
        postgresql_where=text(IN_MOTION),
        sqlite_where=text(IN_MOTION),
    ),
    # Full-text search (migration 0006): PostgreSQL adds a generated `search_vector` column with a
    # GIN index; SQLite keeps an FTS5 table `handoffs_fts` by triggers. Neither is modelled here.
)

handoff_events = Table(
    "handoff_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("handoff_id", Integer, ForeignKey("handoffs.id"), nullable=False),
    Column("workspace_id", Integer, ForeignKey("workspaces.id"), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("actor", String(64)),
    Column("at", UTCDateTime, nullable=False),
    Column("data", JSON),
    Index(None, "handoff_id", "kind"),
    Index(None, "workspace_id", "kind", "at"),
    # A report's reads of a workspace's events, index-only (migration 0013).
    Index("ix_handoff_events_report", "workspace_id", "kind", "at", "actor"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("workspace_id", Integer, ForeignKey("workspaces.id"), nullable=False),
    Column("handoff_id", Integer, ForeignKey("handoffs.id")),
    Column("handoff_version", Integer),
    Column("kind", String(32), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("dedupe_key", String(255), nullable=False, unique=True),
    Column("status", String(16), nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("leased_until", UTCDateTime),
    Column("lease_owner", String(64)),
    Column("last_error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime),
    Index(None, "status", "next_attempt_at"),
    Index(None, "handoff_id"),
    # The lease's lane checks (migration 0008): pending rows only, so it stays as small as the backlog.
    Index(
        "ix_outbox_pending_lanes",
        "handoff_id",
        "kind",
        "id",
        postgresql_where=text("status = 'pending'"),
        sqlite_where=text("status = 'pending'"),
    ),
)

weekly_reports = Table(
    "weekly_reports",
    metadata,
    Column("workspace_id", Integer, ForeignKey("workspaces.id"), primary_key=True),
    Column("week_start", Date, primary_key=True),  # the Monday, in the configured time zone
    Column("queued_at", UTCDateTime, nullable=False),
)

# Where a platform can be written to later, proactively: Teams conversation references (the
# escalation channel, the leads channel, a person's chat with the bot), as the platform gave them.
conversation_refs = Table(
    "conversation_refs",
    metadata,
    Column("workspace_id", Integer, ForeignKey("workspaces.id"), primary_key=True),
    Column("key", String(255), primary_key=True),  # "escalation", "leads", "user:<id>", "origin:<handoff id>"
    Column("reference", JSON, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# Display names, for platforms whose messages cannot mention a user id (Teams cards).
people = Table(
    "people",
    metadata,
    Column("workspace_id", Integer, ForeignKey("workspaces.id"), primary_key=True),
    Column("user_id", String(128), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# Who looked at the App Home tab lately: they get it refreshed when the queue changes.
home_viewers = Table(
    "home_viewers",
    metadata,
    Column("workspace_id", Integer, ForeignKey("workspaces.id"), primary_key=True),
    Column("user_id", String(64), primary_key=True),
    Column("opened_at", UTCDateTime, nullable=False),
    Index(None, "workspace_id", "opened_at"),
)

processed_events = Table(
    "processed_events",
    metadata,
    Column("source", String(16), primary_key=True),  # "slack" | "teams"
    Column("event_id", String(128), primary_key=True),
    Column("received_at", UTCDateTime, nullable=False),
    Index("ix_processed_events_received_at", "received_at"),  # pruned after a day or two (0010)
)

# Which releases can serve this schema (migration 0009, storage/migrate.py): one row.
schema_release = Table(
    "schema_release",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("serves_from", String(32), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# The leads' page (migration 0011): one-time sign-in links and sessions, by the hash of their secret.
dashboard_links = Table(
    "dashboard_links",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("workspace_id", Integer, ForeignKey("workspaces.id"), nullable=False),
    Column("user_id", String(128), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("used_at", UTCDateTime),
    Index("ix_dashboard_links_expires_at", "expires_at"),
)

dashboard_sessions = Table(
    "dashboard_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("workspace_id", Integer, ForeignKey("workspaces.id"), nullable=False),
    Column("user_id", String(128), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Index("ix_dashboard_sessions_expires_at", "expires_at"),
)

# How long a handoff without the bot took, as leads measured it (`/escalate baseline 25`).
baseline_measurements = Table(
    "baseline_measurements",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("workspace_id", Integer, ForeignKey("workspaces.id"), nullable=False),
    Column("user_id", String(128), nullable=False),
    Column("minutes", Float, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index(None, "workspace_id", "created_at"),
)
