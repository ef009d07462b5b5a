"""the night roster: who is on which night's shift for which care unit

Revision ID: 0015
Revises: 0014
"""
import sqlalchemy as sa
from alembic import op

import supervision.models

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "night_shifts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("night", sa.Date(), nullable=False),
        sa.Column("unit", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("joined_at", supervision.models.UTCDateTime(), nullable=False),
        sa.Column("joined_by", sa.String(length=64), nullable=False),
        sa.Column("left_at", supervision.models.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("night", "unit", "user_id"),
    )
    op.create_index("ix_night_shifts_user_id", "night_shifts", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_night_shifts_user_id", table_name="night_shifts")
    op.drop_table("night_shifts")
