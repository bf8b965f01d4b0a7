"""jobs.dry_run_samples; resolved hyperparameters in the typed shape

``dry_run_samples`` moves out of ``resolved_hyperparameters`` (where the API used to tuck it) into
its own column; stored hyperparameters gain the fields the typed ``ResolvedHyperparameters`` needs,
with the values those jobs trained with before (no gradient checkpointing, the default LoRA
targets, the micro-batch count the worker used to derive with a gcd).

Revision ID: 0002
Revises: 0001
"""
import math

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
jobs = sa.table("jobs", sa.column("id", sa.String), sa.column("resolved_hyperparameters", sa.JSON),
                sa.column("dry_run_samples", sa.Integer))


def _typed(hp: dict) -> dict:
    hp = {k: v for k, v in hp.items() if k not in ("dry_run_samples", "reasoning_effort", "compute_multiplier")}
    hp.setdefault("gradient_checkpointing", False)
    batch, accum = int(hp.get("batch_size", 1)), int(hp.get("gradient_accumulation_steps", 1))
    hp["gradient_accumulation_steps"] = accum if batch % accum == 0 else math.gcd(batch, accum)
    lora = dict(hp.get("lora") or {})
    lora["target_modules"] = lora.get("target_modules") or LORA_TARGETS
    hp["lora"] = {"r": 16, "alpha": 32, "dropout": 0.05, **lora}
    return hp


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dry_run_samples', sa.Integer(), nullable=True))
    conn = op.get_bind()
    for job_id, hp in conn.execute(sa.select(jobs.c.id, jobs.c.resolved_hyperparameters)).all():
        if not hp:
            continue
        conn.execute(sa.update(jobs).where(jobs.c.id == job_id).values(
            resolved_hyperparameters=_typed(hp), dry_run_samples=hp.get("dry_run_samples")))


def downgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(jobs.c.id, jobs.c.resolved_hyperparameters, jobs.c.dry_run_samples)
                        .where(jobs.c.dry_run_samples.is_not(None))).all()
    for job_id, hp, samples in rows:
        conn.execute(sa.update(jobs).where(jobs.c.id == job_id).values(
            resolved_hyperparameters={**(hp or {}), "dry_run_samples": samples}))
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('dry_run_samples')
