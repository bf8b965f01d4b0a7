"""The response shapes of the jobs API, for the OpenAPI schema (SDK users and the fuzzer read them).

``schemas.job_object`` & co. build the bodies; these models describe them. Every model allows extra
fields: a field added to a body must never be filtered out of the response by a model that lags
behind (the dashboard and the SDK read fields these models may not list yet).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class JobError(_Open):
    code: str
    message: str
    param: str | None = None


class JobProgress(_Open):
    step: int
    total_steps: int | None = None


class JobResources(_Open):
    gpus: int  # devices the job runs on (resources.gpus at creation)


class JobPlan(_Open):
    """``POST /v1/fine_tuning/jobs/validate``: what a job with this body would train with."""

    object: Literal["fine_tuning.job.plan"]
    model: str
    base_model: str
    method: dict[str, Any]
    resolved_hyperparameters: dict[str, Any]
    total_steps: int | None = None
    dry_run: bool
    resources: dict[str, Any]


class JobObject(_Open):
    id: str
    object: Literal["fine_tuning.job"]
    model: str
    status: str
    created_at: int
    finished_at: int | None = None
    fine_tuned_model: str | None = None
    organization_id: str
    training_file: str
    validation_file: str | None = None
    hyperparameters: dict[str, Any]
    method: dict[str, Any]
    error: JobError | None = None
    result_files: list[str]
    trained_tokens: int | None = None
    seed: int | None = None
    metadata: dict[str, str] | None = None
    user_provided_suffix: str | None = None
    integrations: list[Any]
    estimated_finish: int | None = None
    # vrft
    progress: JobProgress
    queue_position: int | None = None
    latest_reward: float | None = None
    attempt: int | None = None
    dry_run: bool
    dry_run_report: dict[str, Any] | None = None
    resolved_hyperparameters: dict[str, Any] | None = None
    resources: JobResources


class JobList(_Open):
    object: Literal["list"]
    data: list[JobObject]
    has_more: bool
    first_id: str | None = None
    last_id: str | None = None


class JobEvent(_Open):
    id: str
    object: Literal["fine_tuning.job.event"]
    created_at: int
    level: str
    message: str
    type: str
    data: dict[str, Any] | None = None


class JobEventList(_Open):
    object: Literal["list"]
    data: list[JobEvent]
    has_more: bool


class JobCheckpoint(_Open):
    id: str
    object: Literal["fine_tuning.job.checkpoint"]
    created_at: int
    step_number: int
    metrics: dict[str, Any]
    fine_tuned_model_checkpoint: str
    fine_tuning_job_id: str


class JobCheckpointList(_Open):
    object: Literal["list"]
    data: list[JobCheckpoint]
    has_more: bool
    first_id: str | None = None
    last_id: str | None = None


class Rollout(_Open):
    """vrft: one logged prompt and its sampled completions; the rest of the fields are what the worker
    logged (prompt, image, completions, rewards, advantages)."""

    object: Literal["fine_tuning.job.rollout"]
    step: int


class RolloutList(_Open):
    object: Literal["list"]
    data: list[Rollout]
    has_more: bool
