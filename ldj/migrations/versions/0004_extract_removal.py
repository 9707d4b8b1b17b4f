"""Extracts remember when their file was removed (retention: a project that ended keeps no person-level files).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 21:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('extracts') as batch:
        batch.add_column(sa.Column('removed_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('extracts') as batch:
        batch.drop_column('removed_at')
