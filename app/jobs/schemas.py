"""Request bodies and the wire shape of jobs, events and checkpoints (OpenAI's, plus vrft's fields)."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.jobs.models import Checkpoint, Job, JobEvent
from app.jobs.resources import Resources
from app.jobs.status import JobStatus

# strict: no "4" for an int or "true" for a bool (a typo'd client should hear about it, not be guessed)
_STRICT = ConfigDict(extra="forbid", strict=True)


class ReinforcementMethod(BaseModel):
    model_config = _STRICT

    grader: dict[str, Any]
    hyperparameters: dict[str, Any] | None = None


class SupervisedMethod(BaseModel):
    model_config = _STRICT

    hyperparameters: dict[str, Any] | None = None
    # vrft: a grader scores greedy answers on the validation file at each evaluation, so a supervised
    # job reports the same task metric as a reinforcement job on that data (it never shapes the loss)
    grader: dict[str, Any] | None = None


class Method(BaseModel):
    model_config = _STRICT

    type: Literal["reinforcement", "supervised"]
    reinforcement: ReinforcementMethod | None = None
    supervised: SupervisedMethod | None = None

    def block_problem(self) -> tuple[str, str] | None:
        """(param, message) when the blocks do not match ``type`` — OpenAI's shape is the block that
        ``type`` names and no other (a stray block would otherwise be ignored)."""
        other = "supervised" if self.type == "reinforcement" else "reinforcement"
        if getattr(self, self.type) is None:
            return f"method.{self.type}", f"method.type is '{self.type}', so method.{self.type} is required."
        if getattr(self, other) is not None:
            return f"method.{other}", f"method.{other} does not apply to a '{self.type}' job; remove it."
        return None

    @property
    def grader(self) -> dict[str, Any] | None:
        return self.reinforcement.grader if self.reinforcement else self.supervised.grader if self.supervised else None

    @property
    def hyperparameters(self) -> dict[str, Any] | None:
        block = self.reinforcement or self.supervised
        return block.hyperparameters if block else None


class JobCreate(BaseModel):
    model_config = _STRICT

    model: str = Field(min_length=1, max_length=256)
    training_file: str
    validation_file: str | None = None
    suffix: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9_.-]*$")
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    metadata: dict[str, str] | None = Field(default=None, max_length=16)
    method: Method
    # no integration (W&B) is implemented: a non-empty list is a 422 naming it, never accepted and dropped
    integrations: list[Any] | None = Field(default=None, max_length=0, description="Not supported: omit, null or [].")
    # vrft: sample, grade and time a few steps' worth of rollouts instead of training
    dry_run: bool = False
    dry_run_samples: int | None = Field(default=None, ge=1, le=256)  # default 8; only with dry_run
    # vrft: the devices the job runs on, one rank each (default 1; app/jobs/resources.py)
    resources: Resources | None = None


def _finite(value: float | None) -> float | None:
    """A worker-written float as JSON can carry it (a diverged step's NaN renders as null, not a 500)."""
    return value if value is None or math.isfinite(value) else None


def job_object(job: Job, *, queue_position: int | None = None) -> dict:
    method = dict(job.method)
    hp = job.resolved_hyperparameters or (method.get(method.get("type")) or {}).get("hyperparameters") or {}
    error = None
    if job.error_code:
        error = {"code": job.error_code, "message": job.error_message or "", "param": job.error_param}
    return {
        "id": job.id,
        "object": "fine_tuning.job",
        "model": job.model,
        "status": job.status,
        "created_at": int(job.created_at),
        "finished_at": int(job.finished_at) if job.finished_at else None,
        "fine_tuned_model": job.fine_tuned_model,
        "organization_id": job.project_id,
        "training_file": job.training_file_id,
        "validation_file": job.validation_file_id,
        "hyperparameters": {
            "n_epochs": hp.get("n_epochs", "auto"),
            "batch_size": hp.get("batch_size", "auto"),
            "learning_rate_multiplier": hp.get("learning_rate_multiplier", "auto"),
        },
        "method": method,
        "error": error,
        "result_files": [],
        "trained_tokens": job.trained_tokens,
        "seed": job.seed,
        "metadata": job.metadata_,
        "user_provided_suffix": job.suffix,
        "integrations": [],
        "estimated_finish": int(job.estimated_finish) if job.estimated_finish else None,
        # vrft
        "progress": {"step": job.step, "total_steps": job.total_steps},
        "queue_position": queue_position if job.status == JobStatus.QUEUED else None,
        "latest_reward": _finite(job.latest_reward),
        "attempt": job.attempt,
        "dry_run": job.dry_run,
        "dry_run_samples": job.dry_run_samples,
        "dry_run_report": job.dry_run_report,
        "resolved_hyperparameters": job.resolved_hyperparameters,
        "resources": {"gpus": job.gpus},
    }


def event_object(ev: JobEvent) -> dict:
    return {
        "id": ev.public_id,
        "object": "fine_tuning.job.event",
        "created_at": int(ev.created_at),
        "level": ev.level,
        "message": ev.message,
        "type": ev.type,
        "data": ev.data,
    }


def checkpoint_object(ck: Checkpoint, job: Job) -> dict:
    return {
        "id": ck.id,
        "object": "fine_tuning.job.checkpoint",
        "created_at": int(ck.created_at),
        "step_number": ck.step,
        "metrics": ck.metrics or {},
        "fine_tuned_model_checkpoint": f"{job.fine_tuned_model or fine_tuned_model_name(job)}:ckpt-step-{ck.step}",
        "fine_tuning_job_id": job.id,
    }


def fine_tuned_model_name(job: Job) -> str:
    # named after the base model even when the job started from an ft: model (as OpenAI names them)
    return f"ft:{job.base}:{job.project_id}:{job.suffix or ''}:{job.id}"
