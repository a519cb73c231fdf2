"""each escalation's report facts on its row, kept by the database

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06

The figures of a report (time to claim from arriving in the queue, claim to first action,
contested) came from each escalation's events: six look-ups per escalation, and a page of a year of
a busy workspace (20,000 escalations, and the year before to compare with) read 150,000 events.
These columns keep what the figures need on the escalation's own row, so a report reads one row
per escalation and no event:

- `fact_first_claim_at`: its first claim; `fact_queue_claim_at`: its first claim since it arrived
  in the queue it is in (`queue_arrived_at`); `fact_last_claim_at`: its latest claim;
- `fact_acted_at`: its first first action; `fact_acted_claim_at`: the claim that led to it;
- `fact_contested_at`: the first claim someone lost on it.

Triggers on `handoff_events` keep them as events are written, whichever release writes them (the
release before this one included); existing rows are filled from their events in batches of
5,000, each its own transaction (about two minutes for a million escalations on PostgreSQL).

Two indexes make a report's reads index-only, in order: `ix_handoffs_report` (a workspace's
escalations by when they were opened, with everything a report reads of them) and
`ix_handoff_events_report` (a workspace's events by kind and time, with who acted). They make
`ix_handoffs_workspace_id_created_at` and `ix_handoff_events_workspace_id_kind_at` redundant: a later
release drops those (contract). Built CONCURRENTLY on PostgreSQL. Expand only.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

serves_from = "0008"
reversible = True

COLUMNS = ("fact_first_claim_at", "fact_queue_claim_at", "fact_last_claim_at", "fact_acted_at",
           "fact_acted_claim_at", "fact_contested_at")  # fmt: skip
BATCH = 5000
REPORT = ["workspace_id", "created_at", "id", "severity", "queue_id", "claimed_by", "customer", "queue_arrived_at",
          "resolved_at", "cancelled_at", "fact_first_claim_at", "fact_queue_claim_at", "fact_acted_at",
          "fact_acted_claim_at", "fact_contested_at"]  # fmt: skip
EVENTS = ["workspace_id", "kind", "at", "actor"]
ARRIVED = "COALESCE(queue_arrived_at, created_at)"


def _earliest(column: str, value: str, dialect: str) -> str:
    if dialect == "postgresql":
        return f"LEAST({column}, {value})"
    return f"CASE WHEN {column} IS NULL OR {value} < {column} THEN {value} ELSE {column} END"


def _latest(column: str, value: str, dialect: str) -> str:
    if dialect == "postgresql":
        return f"GREATEST({column}, {value})"
    return f"CASE WHEN {column} IS NULL OR {value} > {column} THEN {value} ELSE {column} END"


def _on_claim(dialect: str) -> str:
    """SET clauses for a claim at NEW.at (every SET reads the row as it was before)."""
    in_queue = (
        f"CASE WHEN NEW.at >= {ARRIVED} AND (fact_queue_claim_at IS NULL OR fact_queue_claim_at < {ARRIVED} "
        f"OR NEW.at < fact_queue_claim_at) THEN NEW.at ELSE fact_queue_claim_at END"
    )
    return (
        f"fact_first_claim_at = {_earliest('fact_first_claim_at', 'NEW.at', dialect)}, "
        f"fact_queue_claim_at = {in_queue}, "
        f"fact_last_claim_at = {_latest('fact_last_claim_at', 'NEW.at', dialect)}"
    )


# The first action's claim: the latest claim so far, when it came before the action.
_ON_ACTION = (
    "fact_acted_claim_at = CASE WHEN fact_acted_at IS NULL OR NEW.at < fact_acted_at THEN "
    "(CASE WHEN fact_last_claim_at <= NEW.at THEN fact_last_claim_at ELSE fact_acted_claim_at END) "
    "ELSE fact_acted_claim_at END, "
    "fact_acted_at = CASE WHEN fact_acted_at IS NULL OR NEW.at < fact_acted_at THEN NEW.at ELSE fact_acted_at END"
)
_ON_CONFLICT = (
    "fact_contested_at = CASE WHEN fact_contested_at IS NULL OR NEW.at < fact_contested_at THEN NEW.at "
    "ELSE fact_contested_at END"
)


def _first(kind: str, extra: str = "", agg: str = "min") -> str:
    return f"(SELECT {agg}(e.at) FROM handoff_events e WHERE e.handoff_id = handoffs.id AND e.kind = '{kind}'{extra})"


def _fill(dialect: str) -> str:
    """Every fact of the rows with ids in (:lo, :hi], from their events (kept with whatever a trigger
    wrote meanwhile: the earlier of the two, or the later)."""
    acted = _first("first_action")
    values = {
        "fact_first_claim_at": _first("claimed"),
        "fact_queue_claim_at": _first("claimed", f" AND e.at >= {ARRIVED}"),
        "fact_last_claim_at": _first("claimed", agg="max"),
        "fact_acted_at": acted,
        "fact_acted_claim_at": _first("claimed", f" AND e.at <= {acted}", agg="max"),
        "fact_contested_at": _first("claim_conflict"),
    }
    if dialect == "postgresql":
        sets = [
            f"{c} = {'GREATEST' if c == 'fact_last_claim_at' else 'LEAST'}({c}, {v})"
            if c != "fact_acted_claim_at"
            else f"{c} = COALESCE({v}, {c})"
            for c, v in values.items()
        ]
    else:  # one writer at a time: nothing else wrote these rows since the statement began
        sets = [f"{c} = {v}" for c, v in values.items()]
    return f"UPDATE handoffs SET {', '.join(sets)} WHERE id > :lo AND id <= :hi"


def upgrade() -> None:
    dialect = op.get_context().dialect.name
    for column in COLUMNS:
        op.add_column("handoffs", sa.Column(column, sa.DateTime(timezone=True)))
    if dialect == "postgresql":
        op.execute(
            f"""
            CREATE OR REPLACE FUNCTION handoff_facts() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.kind = 'claimed' THEN
                    UPDATE handoffs SET {_on_claim(dialect)} WHERE id = NEW.handoff_id;
                ELSIF NEW.kind = 'first_action' THEN
                    UPDATE handoffs SET {_ON_ACTION} WHERE id = NEW.handoff_id;
                ELSE
                    UPDATE handoffs SET {_ON_CONFLICT} WHERE id = NEW.handoff_id;
                END IF;
                RETURN NULL;
            END $$
            """
        )
        op.execute(
            "CREATE TRIGGER handoff_facts AFTER INSERT ON handoff_events FOR EACH ROW "
            "WHEN (NEW.kind IN ('claimed', 'first_action', 'claim_conflict')) EXECUTE FUNCTION handoff_facts()"
        )
    else:
        for name, kind, sets in (
            ("claimed", "claimed", _on_claim(dialect)),
            ("acted", "first_action", _ON_ACTION),
            ("contested", "claim_conflict", _ON_CONFLICT),
        ):
            op.execute(
                f"CREATE TRIGGER handoff_facts_{name} AFTER INSERT ON handoff_events WHEN NEW.kind = '{kind}' "
                f"BEGIN UPDATE handoffs SET {sets} WHERE id = NEW.handoff_id; END"
            )
    # The rows there already, from their events, in batches. On PostgreSQL each batch is its own
    # transaction, so the replicas' writes (the release before, serving meanwhile) go on between them;
    # SQLite has one writer, and a single process that migrates as it starts.
    top = op.get_bind().execute(sa.text("SELECT max(id) FROM handoffs")).scalar() or 0
    fill = sa.text(_fill(dialect))
    if dialect == "postgresql":
        with op.get_context().autocommit_block():
            for lo in range(0, top, BATCH):
                op.get_bind().execute(fill, {"lo": lo, "hi": lo + BATCH})
            for name, table, columns in (("ix_handoffs_report", "handoffs", REPORT),
                                         ("ix_handoff_events_report", "handoff_events", EVENTS)):  # fmt: skip
                op.create_index(name, table, columns, postgresql_concurrently=True, if_not_exists=True)
        return
    for lo in range(0, top, BATCH):
        op.get_bind().execute(fill, {"lo": lo, "hi": lo + BATCH})
    op.create_index("ix_handoffs_report", "handoffs", REPORT)
    op.create_index("ix_handoff_events_report", "handoff_events", EVENTS)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.drop_index("ix_handoff_events_report", postgresql_concurrently=True, if_exists=True)
            op.drop_index("ix_handoffs_report", postgresql_concurrently=True, if_exists=True)
        op.execute("DROP TRIGGER IF EXISTS handoff_facts ON handoff_events")
        op.execute("DROP FUNCTION IF EXISTS handoff_facts()")
        for column in COLUMNS:
            op.drop_column("handoffs", column)
        return
    op.drop_index("ix_handoff_events_report", table_name="handoff_events")
    op.drop_index("ix_handoffs_report", table_name="handoffs")
    for name in ("claimed", "acted", "contested"):
        op.execute(f"DROP TRIGGER IF EXISTS handoff_facts_{name}")
    for column in COLUMNS:
        # Natively (SQLite 3.35 and later): a rebuilt table would lose the full-text search triggers.
        op.execute(f"ALTER TABLE handoffs DROP COLUMN {column}")
