"""Records: the rows of a delivery file kind that catalog/delivery.yaml declares with `load: records`, so a
new kind of file loads without a new table; research_records leaves out objecting clients.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 13:30:00
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table('records',
    sa.Column('pseudonym', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('client', sa.String(length=32), nullable=False),
    sa.Column('trajectory', sa.String(length=32), nullable=False),
    sa.Column('organisation', sa.String(length=32), nullable=False),
    sa.Column('values', JSON, nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['import_batches.id'], ),
    sa.PrimaryKeyConstraint('pseudonym')
    )
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_records_batch_id'), ['batch_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_records_client'), ['client'], unique=False)
        batch_op.create_index(batch_op.f('ix_records_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_records_trajectory'), ['trajectory'], unique=False)
    op.execute("CREATE VIEW research_records AS "
               "SELECT r.* FROM records r JOIN clients c ON c.pseudonym = r.client WHERE NOT c.objection")


def downgrade() -> None:
    op.execute("DROP VIEW research_records")
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_records_trajectory'))
        batch_op.drop_index(batch_op.f('ix_records_kind'))
        batch_op.drop_index(batch_op.f('ix_records_client'))
        batch_op.drop_index(batch_op.f('ix_records_batch_id'))
    op.drop_table('records')
