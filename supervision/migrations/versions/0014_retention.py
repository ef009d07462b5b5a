"""retention: the purges' signed checkpoints, and the audit log by time

Revision ID: 0014
Revises: 0013
"""
import sqlalchemy as sa
from alembic import op

import supervision.models

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_purges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("purged", sa.Integer(), nullable=False),
        sa.Column("before", supervision.models.UTCDateTime(), nullable=False),
        sa.Column("keep_night", sa.Date(), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
        sa.Column("created_at", supervision.models.UTCDateTime(), nullable=False),
        sa.Column("finished_at", supervision.models.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_purges_entry", "audit_purges", ["entry"])
    op.create_index("ix_audit_events_at", "audit_events", ["at"])


def downgrade() -> None:
    op.drop_index("ix_audit_events_at", table_name="audit_events")
    op.drop_index("ix_audit_purges_entry", table_name="audit_purges")
    op.drop_table("audit_purges")
