"""similar-resolution search, escalations from a message, App Home viewers, Slack OAuth stores

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25

Full-text search over resolved escalations: on SQLite an FTS5 table kept by triggers
(`porter unicode61`, so "logins" finds "login"); on PostgreSQL a stored generated
`tsvector` column with a GIN index. The Slack OAuth tables are slack_sdk's own
(installations, bots, OAuth states), written out here column for column (storage/ never imports
a chat platform's code); tests/test_slack_oauth.py checks them against slack_sdk's own definitions.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Weights: the summary counts most, then the resolution, then what was tried and the details.
PG_VECTOR = (
    "setweight(to_tsvector('english', coalesce(summary, '')), 'A') || "
    "setweight(to_tsvector('english', coalesce(resolution, '')), 'B') || "
    "setweight(to_tsvector('english', coalesce(tried, '')), 'C') || "
    "setweight(to_tsvector('english', coalesce(details, '')), 'C')"
)

SQLITE_FTS_ROW = (
    "INSERT INTO handoffs_fts(rowid, summary, resolution, tried, details) "
    "VALUES (new.id, new.summary, coalesce(new.resolution, ''), new.tried, new.details)"
)


def _slack_tables() -> sa.MetaData:
    md = sa.MetaData()

    def s(n: int) -> sa.String:
        return sa.String(length=n)

    def bot_columns() -> list[sa.Column]:
        return [
            sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
            sa.Column("client_id", s(32), nullable=False),
            sa.Column("app_id", s(32), nullable=False),
            sa.Column("enterprise_id", s(32)),
            sa.Column("enterprise_name", s(200)),
            sa.Column("team_id", s(32)),
            sa.Column("team_name", s(200)),
            sa.Column("bot_token", s(200)),
            sa.Column("bot_id", s(32)),
            sa.Column("bot_user_id", s(32)),
            sa.Column("bot_scopes", s(1000)),
            sa.Column("bot_refresh_token", s(200)),
            sa.Column("bot_token_expires_at", sa.DateTime()),
        ]

    sa.Table(
        "slack_installations",
        md,
        *bot_columns(),
        sa.Column("enterprise_url", s(200)),
        sa.Column("user_id", s(32), nullable=False),
        sa.Column("user_token", s(200)),
        sa.Column("user_scopes", s(1000)),
        sa.Column("user_refresh_token", s(200)),
        sa.Column("user_token_expires_at", sa.DateTime()),
        sa.Column("incoming_webhook_url", s(200)),
        sa.Column("incoming_webhook_channel", s(200)),
        sa.Column("incoming_webhook_channel_id", s(200)),
        sa.Column("incoming_webhook_configuration_url", s(200)),
        sa.Column("is_enterprise_install", sa.Boolean(), nullable=False),
        sa.Column("token_type", s(32)),
        sa.Column("installed_at", sa.DateTime(), nullable=False),
        sa.Index("slack_installations_idx", "client_id", "enterprise_id", "team_id", "user_id", "installed_at"),
    )
    sa.Table(
        "slack_bots",
        md,
        *bot_columns(),
        sa.Column("is_enterprise_install", sa.Boolean(), nullable=False),
        sa.Column("installed_at", sa.DateTime(), nullable=False),
        sa.Index("slack_bots_idx", "client_id", "enterprise_id", "team_id", "installed_at"),
    )
    sa.Table(
        "slack_oauth_states",
        md,
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("state", s(200), nullable=False),
        sa.Column("expire_at", sa.DateTime(), nullable=False),
    )
    return md


def upgrade() -> None:
    with op.batch_alter_table("handoffs") as batch:
        # Where an escalation made from a message came from, and whether its thread was copied.
        batch.add_column(sa.Column("source", sa.JSON(), nullable=True))
        # The similar resolved escalations found when the card was first posted.
        batch.add_column(sa.Column("similar", sa.JSON(), nullable=True))
    op.create_table(
        "home_viewers",
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_home_viewers_workspace_id_workspaces")
        ),
        sa.PrimaryKeyConstraint("workspace_id", "user_id", name=op.f("pk_home_viewers")),
    )
    op.create_index(op.f("ix_home_viewers_workspace_id_opened_at"), "home_viewers", ["workspace_id", "opened_at"])
    # App Home and `/escalate mine`: one person's escalations and claims.
    op.create_index(
        op.f("ix_handoffs_workspace_id_requester_id_status"), "handoffs", ["workspace_id", "requester_id", "status"]
    )
    op.create_index(
        op.f("ix_handoffs_workspace_id_claimed_by_status"), "handoffs", ["workspace_id", "claimed_by", "status"]
    )

    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(f"ALTER TABLE handoffs ADD COLUMN search_vector tsvector GENERATED ALWAYS AS ({PG_VECTOR}) STORED")
        op.execute(
            "CREATE INDEX ix_handoffs_search_vector ON handoffs USING gin (search_vector) WHERE status = 'resolved'"
        )
    else:
        # A later migration that rebuilds `handoffs` in batch mode drops these triggers: re-create them.
        op.execute(
            "CREATE VIRTUAL TABLE handoffs_fts USING fts5("
            "summary, resolution, tried, details, tokenize = 'porter unicode61')"
        )
        op.execute(
            "CREATE TRIGGER handoffs_fts_insert AFTER INSERT ON handoffs WHEN new.status = 'resolved' "
            f"BEGIN {SQLITE_FTS_ROW}; END"
        )
        op.execute(
            "CREATE TRIGGER handoffs_fts_update AFTER UPDATE ON handoffs "
            "WHEN new.status = 'resolved' OR old.status = 'resolved' BEGIN "
            "DELETE FROM handoffs_fts WHERE rowid = old.id; "
            "INSERT INTO handoffs_fts(rowid, summary, resolution, tried, details) "
            "SELECT new.id, new.summary, coalesce(new.resolution, ''), new.tried, new.details "
            "WHERE new.status = 'resolved'; END"
        )
        op.execute(
            "CREATE TRIGGER handoffs_fts_delete AFTER DELETE ON handoffs BEGIN "
            "DELETE FROM handoffs_fts WHERE rowid = old.id; END"
        )
        op.execute(
            "INSERT INTO handoffs_fts(rowid, summary, resolution, tried, details) "
            "SELECT id, summary, coalesce(resolution, ''), tried, details FROM handoffs WHERE status = 'resolved'"
        )
    _slack_tables().create_all(bind)


def downgrade() -> None:
    bind = op.get_bind()
    _slack_tables().drop_all(bind)
    if bind.dialect.name == "postgresql":
        op.execute("DROP INDEX ix_handoffs_search_vector")
        op.execute("ALTER TABLE handoffs DROP COLUMN search_vector")
    else:
        for trigger in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER handoffs_fts_{trigger}")
        op.execute("DROP TABLE handoffs_fts")
    op.drop_index(op.f("ix_handoffs_workspace_id_claimed_by_status"), table_name="handoffs")
    op.drop_index(op.f("ix_handoffs_workspace_id_requester_id_status"), table_name="handoffs")
    op.drop_index(op.f("ix_home_viewers_workspace_id_opened_at"), table_name="home_viewers")
    op.drop_table("home_viewers")
    with op.batch_alter_table("handoffs") as batch:
        batch.drop_column("similar")
        batch.drop_column("source")
