"""jobs.gpus and worker_hosts: jobs that ask for several devices, hosts that say what they have

``gpus`` is the job's ``resources.gpus`` (every earlier job ran on one device). ``worker_hosts`` is
the registry host agents (``vrft-worker --gpus``) keep up to date; job creation reads it to refuse a
device count no host can offer.

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('worker_hosts',
    sa.Column('id', sa.String(length=200), nullable=False),
    sa.Column('host', sa.String(length=256), nullable=False),
    sa.Column('devices', sa.JSON(), nullable=False),
    sa.Column('busy', sa.JSON(), nullable=False),
    sa.Column('started_at', sa.Float(), nullable=False),
    sa.Column('last_seen', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_worker_hosts'))
    )
    with op.batch_alter_table('worker_hosts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_worker_hosts_last_seen'), ['last_seen'], unique=False)
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('gpus', sa.Integer(), server_default='1', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('gpus')
    with op.batch_alter_table('worker_hosts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_worker_hosts_last_seen'))
    op.drop_table('worker_hosts')
