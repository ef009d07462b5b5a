"""nodes and camera presence: the nodes alive, which node holds each camera's link, and
the messages addressed from one node to another

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

import supervision.models

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "nodes",
        sa.Column("id", sa.String(length=96), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("started_at", supervision.models.UTCDateTime(), nullable=False),
        sa.Column("heard_at", supervision.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "node_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("to_node", sa.String(length=96), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", supervision.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_node_messages_to_node", "node_messages", ["to_node"])
    with op.batch_alter_table("cameras") as batch:
        batch.add_column(sa.Column("link_node", sa.String(length=96), nullable=True))
        batch.add_column(sa.Column("linked_at", supervision.models.UTCDateTime(),
                                   nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cameras") as batch:
        batch.drop_column("linked_at")
        batch.drop_column("link_node")
    op.drop_index("ix_node_messages_to_node", table_name="node_messages")
    op.drop_table("node_messages")
    op.drop_table("nodes")
