"""Structured access log: an action, a reason code and its fields (JSON) per entry; TRUNCATE refused too.

Entries written from here on carry `action`, `reason_code` and `details` instead of free text
(`reason` stays for the entries before, which cannot be changed). The columns are added in place,
never by copying the table, so the append-only triggers of 0002/0003 stay; on PostgreSQL a
statement trigger now also refuses TRUNCATE (row triggers do not see it), and PUBLIC holds no
privilege that could change these tables. `ldj.store.upgrade` checks after every upgrade that each
guard exists and is enabled, so a later migration cannot drop one silently.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 18:00:00
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

APPEND_ONLY = ("access_log", "request_events", "question_events")


def upgrade() -> None:
    # op.add_column, not batch_alter_table: on SQLite a batch operation copies the table and its
    # triggers would be lost with the old one.
    op.add_column('access_log', sa.Column('action', sa.String(length=32), nullable=True))
    op.add_column('access_log', sa.Column('reason_code', sa.String(length=48), nullable=True))
    op.add_column('access_log', sa.Column(
        'details', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        for table in APPEND_ONLY:
            op.execute(f"""CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
                           FOR EACH STATEMENT EXECUTE FUNCTION {table}_append_only()""")
            op.execute(f"REVOKE UPDATE, DELETE, TRUNCATE, TRIGGER, REFERENCES ON {table} FROM PUBLIC")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in APPEND_ONLY:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        for column in ('details', 'reason_code', 'action'):
            op.drop_column('access_log', column)
        return
    # SQLite drops a column in place (3.35+); the triggers stay.
    for column in ('details', 'reason_code', 'action'):
        op.execute(f"ALTER TABLE access_log DROP COLUMN {column}")
