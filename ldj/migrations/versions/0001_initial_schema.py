"""Initial schema: organisations, clients, trajectories, measurements, batches, quarantine, research views.

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 04:26:10.703276
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None

# Frozen copy of ldj.store.RESEARCH_VIEWS as of this revision; later changes get their own revision.
RESEARCH_VIEWS = {
    "research_clients": "SELECT c.* FROM clients c WHERE NOT c.objection",
    "research_trajectories": (
        "SELECT t.* FROM trajectories t JOIN clients c ON c.pseudonym = t.client WHERE NOT c.objection"
    ),
    "research_measurements": (
        "SELECT m.* FROM measurements m JOIN clients c ON c.pseudonym = m.client WHERE NOT c.objection"
    ),
}


def upgrade() -> None:
    op.create_table('import_batches',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('organisation', sa.String(length=32), nullable=True),
    sa.Column('period', sa.String(length=16), nullable=True),
    sa.Column('file_name', sa.String(length=500), nullable=False),
    sa.Column('checksum', sa.String(length=64), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=True),
    sa.Column('delivered_by', sa.String(length=200), nullable=True),
    sa.Column('imported_by', sa.String(length=200), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('replaced_by', sa.Integer(), nullable=True),
    sa.Column('rows_total', sa.Integer(), server_default='0', nullable=False),
    sa.Column('rows_loaded', sa.Integer(), server_default='0', nullable=False),
    sa.Column('rows_quarantined', sa.Integer(), server_default='0', nullable=False),
    sa.Column('rows_replaced', sa.Integer(), server_default='0', nullable=False),
    sa.Column('report', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['replaced_by'], ['import_batches.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('import_batches', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_import_batches_checksum'), ['checksum'], unique=False)
        batch_op.create_index('ix_import_batches_key', ['organisation', 'kind', 'period'], unique=False)

    op.create_table('organisations',
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('code')
    )
    op.create_table('clients',
    sa.Column('pseudonym', sa.String(length=32), nullable=False),
    sa.Column('organisation', sa.String(length=32), nullable=False),
    sa.Column('gender', sa.String(length=16), nullable=True),
    sa.Column('lvb', sa.Boolean(), nullable=True),
    sa.Column('objection', sa.Boolean(), nullable=False),
    sa.Column('legal_basis', sa.String(length=200), nullable=True),
    sa.Column('batch_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['import_batches.id'], ),
    sa.PrimaryKeyConstraint('pseudonym')
    )
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_clients_batch_id'), ['batch_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_clients_organisation'), ['organisation'], unique=False)

    op.create_table('measurements',
    sa.Column('pseudonym', sa.String(length=32), nullable=False),
    sa.Column('client', sa.String(length=32), nullable=False),
    sa.Column('trajectory', sa.String(length=32), nullable=False),
    sa.Column('organisation', sa.String(length=32), nullable=False),
    sa.Column('instrument', sa.String(length=64), nullable=False),
    sa.Column('informant', sa.String(length=16), nullable=False),
    sa.Column('moment', sa.String(length=16), nullable=False),
    sa.Column('date', sa.Date(), nullable=False),
    sa.Column('items', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('scores', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('free_text', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('batch_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['import_batches.id'], ),
    sa.PrimaryKeyConstraint('pseudonym')
    )
    with op.batch_alter_table('measurements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_measurements_batch_id'), ['batch_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_measurements_client'), ['client'], unique=False)
        batch_op.create_index('ix_measurements_instrument_moment', ['instrument', 'informant', 'moment'], unique=False)
        batch_op.create_index(batch_op.f('ix_measurements_trajectory'), ['trajectory'], unique=False)

    op.create_table('professionals',
    sa.Column('pseudonym', sa.String(length=32), nullable=False),
    sa.Column('organisation', sa.String(length=32), nullable=False),
    sa.Column('discipline', sa.String(length=200), nullable=True),
    sa.Column('experience_years', sa.Integer(), nullable=True),
    sa.Column('batch_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['import_batches.id'], ),
    sa.PrimaryKeyConstraint('pseudonym')
    )
    with op.batch_alter_table('professionals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_professionals_batch_id'), ['batch_id'], unique=False)

    op.create_table('quarantine',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=False),
    sa.Column('file_name', sa.String(length=500), nullable=False),
    sa.Column('row_number', sa.Integer(), nullable=False),
    sa.Column('rule', sa.String(length=200), nullable=False),
    sa.Column('column', sa.String(length=100), nullable=True),
    sa.Column('value', sa.Text(), nullable=True),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('row', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.ForeignKeyConstraint(['batch_id'], ['import_batches.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('quarantine', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_quarantine_batch_id'), ['batch_id'], unique=False)

    op.create_table('teams',
    sa.Column('organisation', sa.String(length=32), nullable=False),
    sa.Column('code', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['organisation'], ['organisations.code'], ),
    sa.PrimaryKeyConstraint('organisation', 'code')
    )
    op.create_table('trajectories',
    sa.Column('pseudonym', sa.String(length=32), nullable=False),
    sa.Column('client', sa.String(length=32), nullable=False),
    sa.Column('organisation', sa.String(length=32), nullable=False),
    sa.Column('team', sa.String(length=200), nullable=True),
    sa.Column('professional', sa.String(length=32), nullable=True),
    sa.Column('intervention', sa.String(length=64), nullable=False),
    sa.Column('start_date', sa.Date(), nullable=False),
    sa.Column('end_date', sa.Date(), nullable=True),
    sa.Column('end_reason', sa.String(length=32), nullable=True),
    sa.Column('age_at_start', sa.Integer(), nullable=True),
    sa.Column('diagnosis', sa.String(length=200), nullable=True),
    sa.Column('techniques', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('context', sa.Text(), nullable=True),
    sa.Column('outcomes', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('remarks', sa.Text(), nullable=True),
    sa.Column('batch_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['import_batches.id'], ),
    sa.PrimaryKeyConstraint('pseudonym')
    )
    with op.batch_alter_table('trajectories', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_trajectories_batch_id'), ['batch_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_trajectories_client'), ['client'], unique=False)
        batch_op.create_index(batch_op.f('ix_trajectories_intervention'), ['intervention'], unique=False)
        batch_op.create_index(batch_op.f('ix_trajectories_organisation'), ['organisation'], unique=False)
    for name, sql in RESEARCH_VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {sql}")


def downgrade() -> None:
    for name in RESEARCH_VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {name}")
    with op.batch_alter_table('trajectories', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_trajectories_organisation'))
        batch_op.drop_index(batch_op.f('ix_trajectories_intervention'))
        batch_op.drop_index(batch_op.f('ix_trajectories_client'))
        batch_op.drop_index(batch_op.f('ix_trajectories_batch_id'))

    op.drop_table('trajectories')
    op.drop_table('teams')
    with op.batch_alter_table('quarantine', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_quarantine_batch_id'))

    op.drop_table('quarantine')
    with op.batch_alter_table('professionals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_professionals_batch_id'))

    op.drop_table('professionals')
    with op.batch_alter_table('measurements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_measurements_trajectory'))
        batch_op.drop_index('ix_measurements_instrument_moment')
        batch_op.drop_index(batch_op.f('ix_measurements_client'))
        batch_op.drop_index(batch_op.f('ix_measurements_batch_id'))

    op.drop_table('measurements')
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_clients_organisation'))
        batch_op.drop_index(batch_op.f('ix_clients_batch_id'))

    op.drop_table('clients')
    op.drop_table('organisations')
    with op.batch_alter_table('import_batches', schema=None) as batch_op:
        batch_op.drop_index('ix_import_batches_key')
        batch_op.drop_index(batch_op.f('ix_import_batches_checksum'))

    op.drop_table('import_batches')
