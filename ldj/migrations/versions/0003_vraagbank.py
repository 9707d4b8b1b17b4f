"""Vraagbank: questions, tags, votes, comments, pick-ups, and the question event log.

The event log is append-only like request_events (0002): triggers refuse UPDATE and DELETE.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 06:53:58.748091
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('questions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('category', sa.String(length=16), nullable=False),
    sa.Column('asker', sa.String(length=100), nullable=False),
    sa.Column('asker_organisation', sa.String(length=200), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('merged_into', sa.Integer(), nullable=True),
    sa.Column('decline_reason', sa.Text(), nullable=True),
    sa.Column('answer_summary', sa.Text(), nullable=True),
    sa.Column('answer_url', sa.String(length=500), nullable=True),
    sa.Column('answered_by', sa.String(length=100), nullable=True),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['asker'], ['users.name'], ),
    sa.ForeignKeyConstraint(['merged_into'], ['questions.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('questions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_questions_asker'), ['asker'], unique=False)
        batch_op.create_index(batch_op.f('ix_questions_status'), ['status'], unique=False)

    op.create_table('question_comments',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('question_id', sa.Integer(), nullable=False),
    sa.Column('author', sa.String(length=100), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('hidden_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('hidden_by', sa.String(length=100), nullable=True),
    sa.ForeignKeyConstraint(['author'], ['users.name'], ),
    sa.ForeignKeyConstraint(['question_id'], ['questions.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('question_comments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_question_comments_question_id'), ['question_id'], unique=False)

    op.create_table('question_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('question_id', sa.Integer(), nullable=False),
    sa.Column('from_status', sa.String(length=16), nullable=True),
    sa.Column('to_status', sa.String(length=16), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['question_id'], ['questions.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('question_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_question_events_question_id'), ['question_id'], unique=False)

    op.create_table('question_pickups',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('question_id', sa.Integer(), nullable=False),
    sa.Column('picked_by', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('institution', sa.String(length=200), nullable=False),
    sa.Column('supervisor', sa.String(length=200), nullable=True),
    sa.Column('planned_from', sa.Date(), nullable=False),
    sa.Column('planned_until', sa.Date(), nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=True),
    sa.Column('entries', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('withdrawn_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['picked_by'], ['users.name'], ),
    sa.ForeignKeyConstraint(['question_id'], ['questions.id'], ),
    sa.ForeignKeyConstraint(['request_id'], ['data_requests.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('question_pickups', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_question_pickups_picked_by'), ['picked_by'], unique=False)
        batch_op.create_index(batch_op.f('ix_question_pickups_question_id'), ['question_id'], unique=False)

    op.create_table('question_tags',
    sa.Column('question_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('value', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['question_id'], ['questions.id'], ),
    sa.PrimaryKeyConstraint('question_id', 'kind', 'value')
    )
    with op.batch_alter_table('question_tags', schema=None) as batch_op:
        batch_op.create_index('ix_question_tags_kind_value', ['kind', 'value'], unique=False)

    op.create_table('question_votes',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('question_id', sa.Integer(), nullable=False),
    sa.Column('user_name', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('carried_from', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['carried_from'], ['questions.id'], ),
    sa.ForeignKeyConstraint(['question_id'], ['questions.id'], ),
    sa.ForeignKeyConstraint(['user_name'], ['users.name'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('question_id', 'user_name')
    )
    with op.batch_alter_table('question_votes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_question_votes_question_id'), ['question_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_question_votes_user_name'), ['user_name'], unique=False)
    _append_only("question_events")


def _append_only(table: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"""
            CREATE FUNCTION {table}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION '{table} is append-only'; END $$""")
        op.execute(f"""CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table}
                       FOR EACH ROW EXECUTE FUNCTION {table}_append_only()""")
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(f"""CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table}
                           BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END""")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS question_events_no_change ON question_events")
        op.execute("DROP FUNCTION IF EXISTS question_events_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS question_events_no_update")
        op.execute("DROP TRIGGER IF EXISTS question_events_no_delete")
    with op.batch_alter_table('question_votes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_question_votes_user_name'))
        batch_op.drop_index(batch_op.f('ix_question_votes_question_id'))

    op.drop_table('question_votes')
    with op.batch_alter_table('question_tags', schema=None) as batch_op:
        batch_op.drop_index('ix_question_tags_kind_value')

    op.drop_table('question_tags')
    with op.batch_alter_table('question_pickups', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_question_pickups_question_id'))
        batch_op.drop_index(batch_op.f('ix_question_pickups_picked_by'))

    op.drop_table('question_pickups')
    with op.batch_alter_table('question_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_question_events_question_id'))

    op.drop_table('question_events')
    with op.batch_alter_table('question_comments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_question_comments_question_id'))

    op.drop_table('question_comments')
    with op.batch_alter_table('questions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_questions_status'))
        batch_op.drop_index(batch_op.f('ix_questions_asker'))

    op.drop_table('questions')
