"""Typed objects returned by the API.

Every model allows extra fields (``extra="allow"``) so a newer server can add fields without
breaking an older client; unknown fields are still reachable as attributes and in ``model_dump()``.
"""

from __future__ import annotations

from typing import Any, Generic, Literal, Optional, TypeVar

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
    bytes: Optional[int] = None
    created_at: int = 0
    filename: Optional[str] = None
    purpose: Optional[str] = None
    status: Optional[str] = None  # uploaded | processed | error
    status_details: Optional[str] = None
    expires_at: Optional[int] = None
    format: Optional[str] = None  # vrft: detected dataset format
    rows: Optional[int] = None  # vrft: valid rows


class FileDeleted(VrftObject):
    id: str
    object: str = "file"
    deleted: bool


class ValidationProblem(VrftObject):
    line: Optional[int] = None
    field: Optional[str] = None
    code: Optional[str] = None
    message: Optional[str] = None


class FileValidation(VrftObject):
    object: str = "file.validation"
    file_id: str
    status: Optional[str] = None
    format: Optional[str] = None
    rows_read: int = 0
    rows_valid: int = 0
    image_count: int = 0
    reference_fields: list[str] = []
    problem_count: int = 0
    problems: list[ValidationProblem] = []
    status_details: Optional[str] = None


class JobError(VrftObject):
    code: Optional[str] = None
    message: Optional[str] = None
    param: Optional[str] = None


class JobProgress(VrftObject):
    step: Optional[int] = None
    total_steps: Optional[int] = None


class FineTuningJob(VrftObject):
    id: str
    object: str = "fine_tuning.job"
    model: Optional[str] = None
    status: str
    created_at: int = 0
    finished_at: Optional[int] = None
    fine_tuned_model: Optional[str] = None
    organization_id: Optional[str] = None
    training_file: Optional[str] = None
    validation_file: Optional[str] = None
    hyperparameters: Optional[dict[str, Any]] = None
    method: Optional[dict[str, Any]] = None
    error: Optional[JobError] = None
    result_files: list[str] = []
    trained_tokens: Optional[int] = None
    seed: Optional[int] = None
    metadata: Optional[dict[str, str]] = None
    user_provided_suffix: Optional[str] = None
    estimated_finish: Optional[int] = None
    # vrft
    progress: Optional[JobProgress] = None
    queue_position: Optional[int] = None
    latest_reward: Optional[float] = None
    dry_run: Optional[bool] = None
    dry_run_report: Optional[dict[str, Any]] = None
    resolved_hyperparameters: Optional[dict[str, Any]] = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class JobEvent(VrftObject):
    id: str
    object: str = "fine_tuning.job.event"
    created_at: int = 0
    level: Optional[str] = None
    message: Optional[str] = None
    type: Optional[str] = None  # message | metrics
    data: Optional[dict[str, Any]] = None


class Checkpoint(VrftObject):
    id: str
    object: str = "fine_tuning.job.checkpoint"
    created_at: int = 0
    step_number: Optional[int] = None
    metrics: dict[str, Any] = {}
    fine_tuned_model_checkpoint: Optional[str] = None
    fine_tuning_job_id: Optional[str] = None


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
    created: Optional[int] = None
    owned_by: Optional[str] = None


T = TypeVar("T", bound=BaseModel)


class Page(VrftObject, Generic[T]):
    """One page of a list: ``data`` plus ``has_more`` (OpenAI's list shape)."""

    object: Literal["list"] = "list"
    data: list[T] = []
    has_more: bool = False

