"""what an outcome rests on: when the camera opened and the viewer saw the first frame;
the staff member's note; at most one alert per check

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("visits", schema=None) as batch_op:
        batch_op.add_column(sa.Column("camera_opened_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("first_frame_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("ttff_ms", sa.Integer(), nullable=True))
    with op.batch_alter_table("checks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("note", sa.String(length=500), nullable=True))
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index("ux_alerts_check_id", ["check_id"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index("ux_alerts_check_id")
    with op.batch_alter_table("checks", schema=None) as batch_op:
        batch_op.drop_column("note")
    with op.batch_alter_table("visits", schema=None) as batch_op:
        batch_op.drop_column("ttff_ms")
        batch_op.drop_column("first_frame_at")
        batch_op.drop_column("camera_opened_at")
