"""schema_release: which releases can serve this schema

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06

One row saying the oldest migration head a release may have and still serve the schema as it is
now (`serves_from`). A migration that only adds what older code ignores (expand) leaves it; one
that removes or renames what older code uses (contract, a later release) raises it. A release that
finds the database at a revision it does not know (a newer one ran `db upgrade`) starts if its own
head is at least `serves_from`, and refuses in one line otherwise (storage/migrate.py). Written
after every upgrade and downgrade from the `serves_from` the migration at the head declares.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# The oldest head that serves the schema this migration leaves: everything up to 0008 ignores the
# new table, so releases from 0008 on can serve it.
serves_from = "0008"
reversible = True


def upgrade() -> None:
    op.create_table(
        "schema_release",
        sa.Column("id", sa.Integer, primary_key=True),  # always 1: one row
        sa.Column("serves_from", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("schema_release")
