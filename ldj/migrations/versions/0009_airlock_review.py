"""The airlock's review: the two checkers of a release, their verdicts per file (append-only), the
author's public mark per file, and people's notifications.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 08:30:00
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table('release_files') as batch:
        batch.add_column(sa.Column('public', sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_table('release_reviewers',
    sa.Column('release_id', sa.Integer(), nullable=False),
    sa.Column('reviewer', sa.String(length=100), nullable=False),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['release_id'], ['releases.id'], ),
    sa.ForeignKeyConstraint(['reviewer'], ['users.name'], ),
    sa.PrimaryKeyConstraint('release_id', 'reviewer')
    )
    op.create_table('release_reviews',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('release_id', sa.Integer(), nullable=False),
    sa.Column('file', sa.String(length=80), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('reviewer', sa.String(length=100), nullable=False),
    sa.Column('verdict', sa.String(length=8), nullable=False),
    sa.Column('public', sa.Boolean(), nullable=False),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['release_id'], ['releases.id'], ),
    sa.ForeignKeyConstraint(['reviewer'], ['users.name'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_release_reviews_release_id', 'release_reviews', ['release_id'], unique=False)
    _append_only('release_reviews')
    op.create_table('notifications',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('user_name', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('details', JSON, nullable=False),
    sa.Column('link', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('read_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_name'], ['users.name'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_notifications_user_name', 'notifications', ['user_name'], unique=False)


def _append_only(table: str) -> None:
    """The guards of 0002/0003/0006/0008: no UPDATE, DELETE (and on PostgreSQL no TRUNCATE)."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"""
            CREATE FUNCTION {table}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION '{table} is append-only'; END $$""")
        op.execute(f"""CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table}
                       FOR EACH ROW EXECUTE FUNCTION {table}_append_only()""")
        op.execute(f"""CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
                       FOR EACH STATEMENT EXECUTE FUNCTION {table}_append_only()""")
        op.execute(f"REVOKE UPDATE, DELETE, TRUNCATE, TRIGGER, REFERENCES ON {table} FROM PUBLIC")
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(f"""CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table}
                           BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END""")


def downgrade() -> None:
    op.drop_index('ix_notifications_user_name', table_name='notifications')
    op.drop_table('notifications')
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS release_reviews_no_change ON release_reviews")
        op.execute("DROP TRIGGER IF EXISTS release_reviews_no_truncate ON release_reviews")
        op.execute("DROP FUNCTION IF EXISTS release_reviews_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS release_reviews_no_update")
        op.execute("DROP TRIGGER IF EXISTS release_reviews_no_delete")
    op.drop_index('ix_release_reviews_release_id', table_name='release_reviews')
    op.drop_table('release_reviews')
    op.drop_table('release_reviewers')
    with op.batch_alter_table('release_files') as batch:
        batch.drop_column('public')
