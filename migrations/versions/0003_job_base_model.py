"""jobs.base_model and jobs.init_adapter_key: fine-tuning a fine-tuned model

A job whose ``model`` is an ``ft:`` name (OpenAI allows fine-tuning a fine-tuned model) keeps that
name in ``model`` (echoed as asked), the base model it ultimately rests on in ``base_model``, and the
storage key of the adapter it starts from in ``init_adapter_key``. Both are null for a job on a base
model, whose ``model`` is its base.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('base_model', sa.String(length=256), nullable=True))
        batch_op.add_column(sa.Column('init_adapter_key', sa.String(length=512), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('init_adapter_key')
        batch_op.drop_column('base_model')
