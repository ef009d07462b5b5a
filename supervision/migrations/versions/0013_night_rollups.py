"""night roll-ups for the period report, and the triggers that keep them true

A rolled-up night's figures (supervision/rollup.py) would go stale if what they were counted
from changed afterwards (a late record, a correction, a purge, a recipient moved to another
unit). So the database itself marks the night dirty, in the changing transaction, whatever
code path wrote: triggers on every column the period report reads. For a night that is not
rolled up (every night still running) a trigger finds no row and does nothing.

On PostgreSQL a trigger first takes the night's row lock (``FOR NO KEY UPDATE``): a roll-up
of that night in progress holds it, so the writer waits for it and then marks the night it
counted without this change; and one that has begun since waits for the writer, and counts
it. The mark itself is written only when the night is clean, so a bulk change writes it once.

Revision ID: 0013
Revises: 0012
"""
import sqlalchemy as sa
from alembic import op

import supervision.models

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

#: the audit entries the report reads (reports.MOVES)
ALERT_KINDS = "('alert.acknowledged', 'alert.on-the-way', 'alert.arrived', 'alert.resolved')"

#: the night of a check, an alert, an audit entry of an alert (row ``r``: NEW or OLD)
NIGHT_OF = {
    "checks": "{r}.night",
    "visits": "(SELECT night FROM checks WHERE id = {r}.check_id)",
    "alerts": "(SELECT night FROM checks WHERE id = {r}.check_id)",
}
#: the columns whose change changes the report (reports.period_report)
COLUMNS = {
    "checks": "night, state, reason, due_at, recipient_id",
    "visits": "check_id, requested_at, end_reason, camera_id",
    "alerts": "check_id, reason, created_at",
}

PG_TOUCH = """
CREATE FUNCTION night_rollups_touch(n date) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF n IS NULL THEN
        RETURN;
    END IF;
    -- a roll-up of the night in progress holds this lock: wait for it, then mark
    PERFORM 1 FROM night_rollups WHERE night = n FOR NO KEY UPDATE;
    IF FOUND THEN
        UPDATE night_rollups SET dirty = true WHERE night = n AND NOT dirty;
    END IF;
END $$"""

PG_TABLE = """
CREATE FUNCTION night_rollups_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM night_rollups_touch({old});
    END IF;
    IF TG_OP <> 'DELETE' THEN
        PERFORM night_rollups_touch({new});
    END IF;
    RETURN NULL;
END $$"""

PG_AUDIT = f"""
CREATE FUNCTION night_rollups_audit_events() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    e audit_events;
BEGIN
    IF TG_OP = 'DELETE' THEN e := OLD; ELSE e := NEW; END IF;
    IF e.kind IN {ALERT_KINDS} AND e.subject ~ '^alert:[0-9]{{1,18}}$' THEN
        PERFORM night_rollups_touch((SELECT c.night FROM alerts a
                                     JOIN checks c ON c.id = a.check_id
                                     WHERE a.id = substr(e.subject, 7)::bigint));
    END IF;
    RETURN NULL;
END $$"""

PG_RECIPIENTS = """
CREATE FUNCTION night_rollups_recipients() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- the counts are per unit: every rolled-up night with a check of theirs
    PERFORM night_rollups_touch(n) FROM (SELECT DISTINCT night AS n FROM checks
                                         WHERE recipient_id = NEW.id) nights;
    RETURN NULL;
END $$"""


def _pg() -> list[str]:
    out = [PG_TOUCH]
    for table, night in NIGHT_OF.items():
        out += [PG_TABLE.format(table=table, old=night.format(r="OLD"),
                                new=night.format(r="NEW")),
                f"CREATE TRIGGER night_rollups_{table}_changed AFTER INSERT OR DELETE "
                f"ON {table} FOR EACH ROW EXECUTE FUNCTION night_rollups_{table}()",
                f"CREATE TRIGGER night_rollups_{table}_updated AFTER UPDATE OF "
                f"{COLUMNS[table]} ON {table} FOR EACH ROW "
                f"EXECUTE FUNCTION night_rollups_{table}()"]
    return [*out, PG_AUDIT,
            "CREATE TRIGGER night_rollups_audit_events_changed AFTER INSERT OR UPDATE OR "
            "DELETE ON audit_events FOR EACH ROW EXECUTE FUNCTION night_rollups_audit_events()",
            PG_RECIPIENTS,
            "CREATE TRIGGER night_rollups_recipients_unit AFTER UPDATE OF unit ON recipients "
            "FOR EACH ROW WHEN (OLD.unit IS DISTINCT FROM NEW.unit) "
            "EXECUTE FUNCTION night_rollups_recipients()"]


def _sqlite_mark(night: str) -> str:
    return f"UPDATE night_rollups SET dirty = 1 WHERE night = {night} AND dirty = 0;"


def _sqlite() -> list[str]:
    # one writer at a time: a roll-up in progress holds the database, nothing to wait for
    out = []
    for table, night in NIGHT_OF.items():
        old, new = night.format(r="OLD"), night.format(r="NEW")
        out += [
            f"CREATE TRIGGER night_rollups_{table}_inserted AFTER INSERT ON {table} "
            f"BEGIN {_sqlite_mark(new)} END",
            f"CREATE TRIGGER night_rollups_{table}_deleted AFTER DELETE ON {table} "
            f"BEGIN {_sqlite_mark(old)} END",
            f"CREATE TRIGGER night_rollups_{table}_updated AFTER UPDATE OF {COLUMNS[table]} "
            f"ON {table} BEGIN {_sqlite_mark(old)} {_sqlite_mark(new)} END"]
    audit = ("(SELECT c.night FROM alerts a JOIN checks c ON c.id = a.check_id "
             "WHERE a.id = CAST(substr({r}.subject, 7) AS INTEGER))")
    old, new = (_sqlite_mark(audit.format(r=r)) for r in ("OLD", "NEW"))
    out += [f"CREATE TRIGGER night_rollups_audit_events_insert AFTER INSERT ON audit_events "
            f"WHEN NEW.kind IN {ALERT_KINDS} BEGIN {new} END",
            f"CREATE TRIGGER night_rollups_audit_events_delete AFTER DELETE ON audit_events "
            f"WHEN OLD.kind IN {ALERT_KINDS} BEGIN {old} END",
            f"CREATE TRIGGER night_rollups_audit_events_update AFTER UPDATE ON audit_events "
            f"WHEN OLD.kind IN {ALERT_KINDS} OR NEW.kind IN {ALERT_KINDS} "
            f"BEGIN {old} {new} END"]
    out.append("CREATE TRIGGER night_rollups_recipients_unit AFTER UPDATE OF unit ON "
               "recipients WHEN OLD.unit IS NOT NEW.unit BEGIN "
               "UPDATE night_rollups SET dirty = 1 WHERE dirty = 0 AND night IN "
               "(SELECT night FROM checks WHERE recipient_id = NEW.id); END")
    return out


TRIGGERS = [*(f"night_rollups_{t}_{s}" for t in NIGHT_OF for s in (
    "changed", "updated", "inserted", "deleted")),
    "night_rollups_audit_events_changed", "night_rollups_audit_events_insert",
    "night_rollups_audit_events_delete", "night_rollups_audit_events_update",
    "night_rollups_recipients_unit"]
#: the table of each trigger: its name less the prefix and the last word
TABLE_OF = {name: name.removeprefix("night_rollups_").rsplit("_", 1)[0] for name in TRIGGERS}


def upgrade() -> None:
    op.create_table(
        "night_rollups",
        sa.Column("night", sa.Date(), nullable=False),
        sa.Column("late_minutes", sa.Integer(), nullable=True),
        sa.Column("rolled_at", supervision.models.UTCDateTime(), nullable=True),
        sa.Column("dirty", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("night"))
    op.create_table(
        "rollup_counts",
        sa.Column("night", sa.Date(), nullable=False),
        sa.Column("unit", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=256), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("night", "unit", "kind", "key"))
    op.create_table(
        "rollup_alerts",
        sa.Column("night", sa.Date(), nullable=False),
        sa.Column("alert_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("recipient_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("ack_s", sa.Double(), nullable=True),
        sa.Column("arr_s", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("night", "alert_id"))
    op.create_table(
        "rollup_cameras",
        sa.Column("night", sa.Date(), nullable=False),
        sa.Column("camera_id", sa.String(length=32), nullable=False),
        sa.Column("recipient_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("technical_failure", sa.Integer(), nullable=False),
        sa.Column("agent_gone", sa.Integer(), nullable=False),
        sa.Column("unreported", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("night", "camera_id", "recipient_id"))
    for sql in _pg() if op.get_bind().dialect.name == "postgresql" else _sqlite():
        op.execute(sql)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for name in TRIGGERS:
        on = f" ON {TABLE_OF[name]}" if postgres else ""
        op.execute(f"DROP TRIGGER IF EXISTS {name}{on}")
    if postgres:
        for fn in ("checks", "visits", "alerts", "audit_events", "recipients"):
            op.execute(f"DROP FUNCTION IF EXISTS night_rollups_{fn}()")
        op.execute("DROP FUNCTION IF EXISTS night_rollups_touch(date)")
    for table in ("rollup_cameras", "rollup_alerts", "rollup_counts", "night_rollups"):
        op.drop_table(table)
