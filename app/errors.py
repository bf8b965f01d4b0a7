"""One error vocabulary for the whole service.

Every failure a user can cause is an ``ErrorCode`` (its wire code + HTTP status). Services raise
``ServiceError(code, message, param)``; one handler in ``app.main`` renders it as OpenAI's error body
``{"error": {"message", "type", "param", "code"}}``. Nothing here imports FastAPI, so pure modules
(graders, dataset readers) can raise these too.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict


class ErrorCode(Enum):
    # 400
    BAD_REQUEST = ("bad_request", 400)
    CONTEXT_LENGTH_EXCEEDED = ("context_length_exceeded", 400)  # OpenAI's code for a too-long chat request
    INVALID_PURPOSE = ("invalid_purpose", 400)
    # 401
    MISSING_API_KEY = ("missing_api_key", 401)
    INVALID_API_KEY = ("invalid_api_key", 401)
    # 404
    NOT_FOUND = ("not_found", 404)
    FILE_NOT_FOUND = ("file_not_found", 404)
    JOB_NOT_FOUND = ("job_not_found", 404)
    CHECKPOINT_NOT_FOUND = ("checkpoint_not_found", 404)
    MODEL_NOT_FOUND = ("model_not_found", 404)
    # 409
    INVALID_STATE = ("invalid_state_transition", 409)
    IDEMPOTENCY_CONFLICT = ("idempotency_key_reused", 409)
    FILE_IN_USE = ("file_in_use", 409)
    # 413
    FILE_TOO_LARGE = ("file_too_large", 413)
    # 422
    VALIDATION_ERROR = ("validation_error", 422)
    INVALID_HYPERPARAMETER = ("invalid_hyperparameter", 422)
    UNKNOWN_FIELD = ("unknown_field", 422)
    INVALID_GRADER = ("invalid_grader", 422)
    PYTHON_GRADER_DISABLED = ("python_grader_disabled", 422)
    FILE_NOT_READY = ("file_not_processed", 422)
    DATASET_INVALID = ("dataset_invalid", 422)
    FILE_UNSUITED = ("file_unsuited_for_method", 422)
    # 429
    RATE_LIMITED = ("rate_limit_exceeded", 429)
    # 503
    DEPENDENCY_UNAVAILABLE = ("dependency_unavailable", 503)
    STORAGE_UNAVAILABLE = ("storage_unavailable", 503)
    # 500 (only for our bugs)
    INTERNAL = ("internal_error", 500)

    @property
    def code(self) -> str:
        return self.value[0]

    @property
    def status(self) -> int:
        return self.value[1]

    @property
    def type(self) -> str:
        """OpenAI's coarse ``type`` field, derived from the status family."""
        return {
            400: "invalid_request_error",
            401: "authentication_error",
            404: "invalid_request_error",
            409: "conflict_error",
            413: "invalid_request_error",
            422: "invalid_request_error",
            429: "rate_limit_error",
            503: "service_unavailable",
        }.get(self.status, "server_error")


class ServiceError(Exception):
    """A failure with a stable code, a message a user can act on, and the offending field.

    ``extra`` adds fields beside those four in the error object (a dataset error carries the
    offending ``line`` and the whole validation report); it never overrides them.
    """

    def __init__(self, code: ErrorCode, message: str, param: str | None = None, *,
                 extra: dict[str, Any] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
        self.extra: dict[str, Any] = dict(extra or {})

    def body(self) -> dict:
        return {
            "error": {
                **self.extra,
                "message": self.message,
                "type": self.code.type,
                "param": self.param,
                "code": self.code.code,
            }
        }


class ErrorDetail(BaseModel):
    """The wire shape of every error (OpenAI's), for the OpenAPI schema."""

    model_config = ConfigDict(extra="allow")  # e.g. a dataset error's ``line`` and ``validation``

    message: str
    type: str
    param: str | None = None
    code: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each status it can answer with an error, in the one error shape.
    Every route can also answer 401 (no or a bad key), 500 (our bug) and 503 (a dependency is down)."""
    described = {400: "Bad request", 401: "Missing or invalid API key", 404: "Not found", 409: "Conflict",
                 413: "Too large", 422: "Invalid field or parameter", 429: "Rate limited",
                 500: "Internal error (a bug; logged)", 503: "A dependency (database, storage) is unavailable; "
                 "retry after the Retry-After header"}
    return {s: {"model": ErrorResponse, "description": described.get(s, "Error")}
            for s in sorted({*statuses, 401, 422, 500, 503})}
