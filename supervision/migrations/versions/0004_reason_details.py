"""reasons as values: a code column and a detail column for checks and visits

Before, a check's reason was "paused: hospital" and a visit's end "refused:busy", split
on ":" wherever they were read. Now the code and the words are stored apart.

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _split(table: str, code: str, detail: str) -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.text(
        f"SELECT id, {code} FROM {table} WHERE {code} LIKE '%:%'")).all()
    for row_id, text in rows:
        head, _, tail = text.partition(":")
        conn.execute(sa.text(f"UPDATE {table} SET {code} = :c, {detail} = :d WHERE id = :i"),
                     {"c": head.strip(), "d": tail.strip(), "i": row_id})


def upgrade() -> None:
    with op.batch_alter_table("checks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reason_detail", sa.String(length=256), nullable=True))
    with op.batch_alter_table("visits", schema=None) as batch_op:
        batch_op.add_column(sa.Column("end_detail", sa.String(length=256), nullable=True))
    _split("checks", "reason", "reason_detail")
    _split("visits", "end_reason", "end_detail")


def downgrade() -> None:
    with op.batch_alter_table("visits", schema=None) as batch_op:
        batch_op.drop_column("end_detail")
    with op.batch_alter_table("checks", schema=None) as batch_op:
        batch_op.drop_column("reason_detail")
