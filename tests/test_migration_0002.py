"""Migration 0002 on a job stored before it: the row still loads as the typed hyperparameters the
worker reads, with the values it trained with before, and ``dry_run_samples`` in its own column."""

from __future__ import annotations

import json

import sqlalchemy as sa

from app.jobs.hyperparameters import ResolvedHyperparameters
from app.migrate import upgrade

OLD = {"n_epochs": 1, "batch_size": 6, "learning_rate_multiplier": 1.0, "eval_interval": 1, "eval_samples": 0,
       "reasoning_effort": None, "compute_multiplier": None, "group_size": 2, "beta": 0.04, "learning_rate": 5e-5,
       "max_completion_tokens": 8, "temperature": 1.0, "top_p": 1.0, "loss_type": "grpo", "scale_rewards": "group",
       "num_iterations": 1, "max_steps": 2, "lora": {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": None},
       "max_pixels": 401408, "min_pixels": 3136, "checkpoint_interval": 1, "gradient_accumulation_steps": 4,
       "dry_run_samples": 3}


def test_an_old_job_row_reads_back_as_typed_hyperparameters(tmp_path):
    from alembic import command

    from app.migrate import alembic_config

    url = f"sqlite:///{tmp_path / 'vrft.db'}"
    upgrade(url, "0001")
    engine = sa.create_engine(url)
    jobs = sa.table("jobs", *(sa.column(c) for c in ("id", "project_id", "model", "status", "training_file_id",
                                                     "seed", "method", "dry_run", "attempt", "step", "created_at")),
                    sa.column("resolved_hyperparameters", sa.JSON))
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO projects (id, name, created_at) VALUES ('p', 'p', 0)"))
        conn.execute(sa.text("INSERT INTO files (id, project_id, filename, purpose, bytes, sha256, storage_key, "
                             "status, created_at) VALUES ('f', 'p', 't', 'fine-tune', 1, '', 'k', 'processed', 0)"))
        conn.execute(sa.insert(jobs).values(
            id="ftjob-old", project_id="p", model="vrft/tiny-qwen2-vl", status="succeeded", training_file_id="f",
            seed=1, method="{}", dry_run=True, attempt=1, step=0, created_at=0.0, resolved_hyperparameters=OLD))
    upgrade(url)
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT resolved_hyperparameters, dry_run_samples FROM jobs")).one()
    hp = ResolvedHyperparameters.model_validate(json.loads(row[0]))
    assert row[1] == 3 and hp.gradient_checkpointing is False
    assert hp.gradient_accumulation_steps == 2  # what the worker's gcd trained with
    assert hp.lora.target_modules[0] == "q_proj"
    command.downgrade(alembic_config(url), "0001")
    with engine.connect() as conn:
        back = json.loads(conn.execute(sa.text("SELECT resolved_hyperparameters FROM jobs")).scalar_one())
    assert back["dry_run_samples"] == 3
    engine.dispose()
