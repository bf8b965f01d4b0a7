"""vrft — Python SDK for the vrft Visual-RFT fine-tuning service.

    import vrft
    client = vrft.Client()                      # VRFT_API_KEY, VRFT_BASE_URL
    f = client.files.upload("train.jsonl")
    job = client.jobs.create(model="vrft/tiny-qwen2-vl", training_file=f.id,
                             grader={"type": "visual_rft", "name": "visual_rft", "task": "classification"})
    job = client.jobs.wait(job.id)
    client.jobs.download_adapter(job.id, "adapter/", extract=True)
"""

from vrft._client import AsyncClient, Client
from vrft._progress import Progress
from vrft._version import __version__
from vrft.errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    JobCancelledError,
    JobFailedError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
    VrftError,
    WaitTimeoutError,
)
from vrft.pagination import AsyncPage, AsyncPager, SyncPager
from vrft.types import (
    Checkpoint,
    Evaluation,
    FileDeleted,
    FileObject,
    FileValidation,
    FineTuningJob,
    GraderRunResult,
    GraderValidation,
    JobComparison,
    JobError,
    JobEvent,
    JobProgress,
    Model,
    Page,
    ValidationProblem,
)

__all__ = [
    "__version__",
    "Client",
    "AsyncClient",
    "Progress",
    "SyncPager",
    "AsyncPager",
    "AsyncPage",
    # types
    "FileObject",
    "FileDeleted",
    "FileValidation",
    "ValidationProblem",
    "FineTuningJob",
    "JobComparison",
    "JobError",
    "JobProgress",
    "JobEvent",
    "Checkpoint",
    "Evaluation",
    "GraderValidation",
    "GraderRunResult",
    "Model",
    "Page",
    # errors
    "VrftError",
    "APIError",
    "APIStatusError",
    "BadRequestError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "ConflictError",
    "PayloadTooLargeError",
    "UnprocessableEntityError",
    "RateLimitError",
    "InternalServerError",
    "APIConnectionError",
    "APITimeoutError",
    "JobFailedError",
    "JobCancelledError",
    "WaitTimeoutError",
]
