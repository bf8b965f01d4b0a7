"""Sampled rollouts a worker logged (prompt, image thumbnail, completions, rewards, advantages), newest
first — what the dashboard's rollout browser shows for a step."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.jobs.models import Job, Rollout


def list_rollouts(session: Session, *, job: Job, step: int | None, limit: int) -> list[dict]:
    query = sa.select(Rollout).where(Rollout.job_id == job.id)
    if step is not None:
        query = query.where(Rollout.step == step)
    rows = session.scalars(query.order_by(Rollout.seq.desc()).limit(limit))
    return [{"object": "fine_tuning.job.rollout", "step": r.step, **r.data} for r in rows]
