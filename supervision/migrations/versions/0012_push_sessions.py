"""push subscriptions belong to the web session that made them: signed out, no pushes

Revision ID: 0012
Revises: 0011
"""
import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("push_subscriptions") as batch:
        batch.add_column(sa.Column("session_id", sa.String(length=64), nullable=True))
        batch.create_index("ix_push_subscriptions_session_id", ["session_id"])


def downgrade() -> None:
    with op.batch_alter_table("push_subscriptions") as batch:
        batch.drop_index("ix_push_subscriptions_session_id")
        batch.drop_column("session_id")
