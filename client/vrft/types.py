"""Typed objects returned by the API.

Every model allows extra fields (``extra="allow"``) so a newer server can add fields without
breaking an older client; unknown fields are still reachable as attributes and in ``model_dump()``.
"""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

__all__ = [
    "VrftObject",
    "FileObject",
    "FileDeleted",
    "FileValidation",
    "ValidationProblem",
    "FineTuningJob",
    "JobError",
    "JobProgress",
    "JobEvent",
    "Checkpoint",
    "GraderValidation",
    "GraderRunResult",
    "Model",
    "Page",
    "TERMINAL_STATUSES",
]

TERMINAL_STATUSES = ("succeeded", "failed", "cancelled")


class VrftObject(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=(), populate_by_name=True)

    def to_dict(self) -> dict[str, Any]:
        """The object as plain JSON-able data, extra fields included."""
        return self.model_dump(mode="json")


class FileObject(VrftObject):
    id: str
    object: str = "file"
    bytes: int | None = None
    created_at: int = 0
    filename: str | None = None
    purpose: str | None = None
    status: str | None = None  # uploaded | processed | error
    status_details: str | None = None
    expires_at: int | None = None
    format: str | None = None  # vrft: detected dataset format
    rows: int | None = None  # vrft: valid rows
    methods: list[str] | None = None  # vrft: the method.type values the file can train with


class FileDeleted(VrftObject):
    id: str
    object: str = "file"
    deleted: bool


class ValidationProblem(VrftObject):
    line: int | None = None
    field: str | None = None
    code: str | None = None
    message: str | None = None


class FileValidation(VrftObject):
    object: str = "file.validation"
    file_id: str
    status: str | None = None
    format: str | None = None
    rows_read: int = 0
    rows_valid: int = 0
    image_count: int = 0
    reference_fields: list[str] = []
    problem_count: int = 0
    problems: list[ValidationProblem] = []
    status_details: str | None = None


class JobError(VrftObject):
    code: str | None = None
    message: str | None = None
    param: str | None = None


class JobProgress(VrftObject):
    step: int | None = None
    total_steps: int | None = None


class FineTuningJob(VrftObject):
    id: str
    object: str = "fine_tuning.job"
    model: str | None = None
    status: str
    created_at: int = 0
    finished_at: int | None = None
    fine_tuned_model: str | None = None
    organization_id: str | None = None
    training_file: str | None = None
    validation_file: str | None = None
    hyperparameters: dict[str, Any] | None = None
    method: dict[str, Any] | None = None
    error: JobError | None = None
    result_files: list[str] = []
    trained_tokens: int | None = None
    seed: int | None = None
    metadata: dict[str, str] | None = None
    user_provided_suffix: str | None = None
    estimated_finish: int | None = None
    # vrft
    progress: JobProgress | None = None
    queue_position: int | None = None
    latest_reward: float | None = None
    dry_run: bool | None = None
    dry_run_report: dict[str, Any] | None = None
    resolved_hyperparameters: dict[str, Any] | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class JobEvent(VrftObject):
    id: str
    object: str = "fine_tuning.job.event"
    created_at: int = 0
    level: str | None = None
    message: str | None = None
    type: str | None = None  # message | metrics
    data: dict[str, Any] | None = None


class Checkpoint(VrftObject):
    id: str
    object: str = "fine_tuning.job.checkpoint"
    created_at: int = 0
    step_number: int | None = None
    metrics: dict[str, Any] = {}
    fine_tuned_model_checkpoint: str | None = None
    fine_tuning_job_id: str | None = None


class Evaluation(VrftObject):
    """One validation pass of a job: its step (0: the model before training) and its ``valid_*`` figures."""

    step: int
    metrics: dict[str, float | None] = {}


class JobComparison(VrftObject):
    """One job's row in ``client.jobs.compare``: what it is, and its evaluations, oldest first."""

    object: str = "fine_tuning.job.comparison"
    id: str
    method: str | None = None  # reinforcement | supervised
    model: str | None = None
    status: str
    suffix: str | None = None
    fine_tuned_model: str | None = None
    step: int | None = None
    total_steps: int | None = None
    first: Evaluation | None = None  # the earliest evaluation (step 0 = the starting model)
    final: Evaluation | None = None  # the latest
    evaluations: list[Evaluation] = []


class GraderValidation(VrftObject):
    grader: dict[str, Any]


class GraderRunResult(VrftObject):
    reward: float
    sub_rewards: dict[str, Any] = {}
    metadata: dict[str, Any] = {}

    @property
    def errors(self) -> dict[str, Any]:
        """The parse/run flags (``metadata.errors``); a failed parse is a flag with reward 0."""
        return dict(self.metadata.get("errors") or {})


class Model(VrftObject):
    id: str
    object: str = "model"
    created: int | None = None
    owned_by: str | None = None


T = TypeVar("T", bound=BaseModel)


class Page(VrftObject, Generic[T]):
    """One page of a list: ``data`` plus ``has_more`` (OpenAI's list shape)."""

    object: Literal["list"] = "list"
    data: list[T] = []
    has_more: bool = False

