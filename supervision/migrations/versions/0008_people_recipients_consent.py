"""people, recipients and consent: one-time password links, a recipient's contacts, care
notes, archiving and cohabitants, and consent records (with the consent they give)

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

import supervision.models

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "password_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", supervision.models.UTCDateTime(), nullable=False),
        sa.Column("expires_at", supervision.models.UTCDateTime(), nullable=False),
        sa.Column("used_at", supervision.models.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_password_links_user_id", "password_links", ["user_id"])
    op.create_table(
        "consent_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recipient_id", sa.Integer(), nullable=False),
        sa.Column("party", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("witness", sa.String(length=128), nullable=False),
        sa.Column("document_ref", sa.String(length=128), nullable=False),
        sa.Column("given_on", sa.Date(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("recorded_at", supervision.models.UTCDateTime(), nullable=False),
        sa.Column("recorded_by", sa.String(length=64), nullable=False),
        sa.Column("withdrawn_at", supervision.models.UTCDateTime(), nullable=True),
        sa.Column("withdrawn_by", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["recipient_id"], ["recipients.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_consent_records_recipient_id", "consent_records", ["recipient_id"])
    with op.batch_alter_table("recipients") as batch:
        batch.add_column(sa.Column("contacts", sa.JSON(), nullable=False,
                                   server_default=sa.text("'[]'")))
        batch.add_column(sa.Column("care_notes", sa.Text(), nullable=False,
                                   server_default=""))
        batch.add_column(sa.Column("archived_at", supervision.models.UTCDateTime(),
                                   nullable=True))
        batch.add_column(sa.Column("cohabitants", sa.JSON(), nullable=False,
                                   server_default=sa.text("'[]'")))
        batch.add_column(sa.Column("consent_recorded", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("consent_from", sa.Date(), nullable=True))
        batch.add_column(sa.Column("consent_until", sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("recipients") as batch:
        for column in ("consent_until", "consent_from", "consent_recorded", "cohabitants",
                       "archived_at", "care_notes", "contacts"):
            batch.drop_column(column)
    op.drop_index("ix_consent_records_recipient_id", table_name="consent_records")
    op.drop_table("consent_records")
    op.drop_index("ix_password_links_user_id", table_name="password_links")
    op.drop_table("password_links")
