"""``ft:`` names → the job and adapter behind them, for everything that takes a model by name
(chat completions, and job creation when a job fine-tunes a fine-tuned model).

A name is a succeeded job's ``fine_tuned_model`` (its final adapter) or a checkpoint's
``fine_tuned_model_checkpoint`` (``<ft name>:ckpt-step-<n>``), of the caller's project only. Every
adapter a job exports stands alone on the job's base model — a job that started from an ``ft:`` model
exports the earlier adapter and its own as one (``workers.training.lora.compose_adapters``) — so one
adapter key is all a caller needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.jobs.models import Checkpoint, Job
from app.jobs.schemas import fine_tuned_model_name
from app.jobs.status import JobStatus

CHECKPOINT_MARK = ":ckpt-step-"


@dataclass(frozen=True)
class TunedModel:
    job: Job  # the job that trained it
    adapter_key: str  # its adapter.tar in storage, standalone on job.base
    step: int | None  # the checkpoint's step; None for the final adapter


def find_tuned(session: Session, *, project_id: str, name: str, bases: dict[str, str]) -> TunedModel | None:
    """The tuned model called ``name`` in ``project_id``, or None (unknown, another project's, not
    finished, or its base model no longer configured)."""
    if not name.startswith("ft:"):
        return None
    job_name, _, step = name.partition(CHECKPOINT_MARK)
    job_id = job_name.rsplit(":", 1)[-1]
    job = session.scalar(sa.select(Job).where(Job.id == job_id, Job.project_id == project_id))
    if job is None or job.base not in bases or fine_tuned_model_name(job) != job_name:
        return None
    if step:
        if not step.isdigit() or len(step) > 9:
            return None
        ck = session.scalar(sa.select(Checkpoint).where(Checkpoint.job_id == job.id, Checkpoint.step == int(step)))
        return TunedModel(job, ck.storage_key, ck.step) if ck is not None else None
    if job.status != JobStatus.SUCCEEDED or not job.adapter_key or job.fine_tuned_model != name:
        return None
    return TunedModel(job, job.adapter_key, None)
