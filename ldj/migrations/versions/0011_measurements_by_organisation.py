"""Measurements found by organisation and instrument: the dashboards' cube reads its inputs per
organisation, so a delivery re-reads only its own organisation's rows (`ldj.indicators.refresh_parts`).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 13:30:00
"""
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_measurements_organisation_instrument', 'measurements', ['organisation', 'instrument'])


def downgrade() -> None:
    op.drop_index('ix_measurements_organisation_instrument', table_name='measurements')
