"""The SDK's exceptions.

``VrftError`` is the base of everything the SDK raises on purpose. HTTP failures become an
``APIStatusError`` subclass chosen by status code, keeping the server's stable ``code`` and the
offending ``param`` (OpenAI's error body ``{"error": {"message", "type", "param", "code"}}``).
"""

from __future__ import annotations

from typing import Any

import httpx

__all__ = [
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


class VrftError(Exception):
    """Base class of every error the SDK raises on purpose."""


class APIError(VrftError):
    """A failure talking to the API (a bad status, or no response at all)."""

    def __init__(self, message: str, *, request: httpx.Request | None = None):
        super().__init__(message)
        self.message = message
        self.request = request


class APIStatusError(APIError):
    """The server answered with a 4xx/5xx status.

    Attributes: ``status_code``, ``code`` (the server's stable error code, e.g. ``"job_not_found"``),
    ``param`` (the offending field or ``None``), ``type``, ``message``, ``body`` (the parsed JSON body,
    or the raw text), ``request_id`` (from ``X-Request-ID`` when the server sends one), ``response``.
    """

    status_code: int

    def __init__(self, message: str, *, response: httpx.Response, body: Any):
        super().__init__(message, request=response.request if _has_request(response) else None)
        self.response = response
        self.status_code = response.status_code
        self.body = body
        err = body.get("error") if isinstance(body, dict) else None
        err = err if isinstance(err, dict) else {}
        self.code: str | None = err.get("code")
        self.param: str | None = err.get("param")
        self.type: str | None = err.get("type")
        self.request_id: str | None = response.headers.get("x-request-id")

    def __str__(self) -> str:
        parts = [f"{self.status_code}"]
        if self.code:
            parts.append(self.code)
        head = " ".join(parts)
        tail = f" (param: {self.param})" if self.param else ""
        return f"{head}: {self.message}{tail}"


class BadRequestError(APIStatusError):
    status_code = 400


class AuthenticationError(APIStatusError):
    status_code = 401


class PermissionDeniedError(APIStatusError):
    status_code = 403


class NotFoundError(APIStatusError):
    status_code = 404


class ConflictError(APIStatusError):
    status_code = 409


class PayloadTooLargeError(APIStatusError):
    status_code = 413


class UnprocessableEntityError(APIStatusError):
    status_code = 422


class RateLimitError(APIStatusError):
    status_code = 429


class InternalServerError(APIStatusError):
    """Any 5xx (including 503 when a dependency of the server is down)."""


class APIConnectionError(APIError):
    """No HTTP response: the connection failed or broke (after the SDK's retries)."""

    def __init__(self, message: str = "Connection error.", *, request: httpx.Request | None = None):
        super().__init__(message, request=request)


class APITimeoutError(APIConnectionError):
    """The request timed out (after the SDK's retries)."""

    def __init__(self, message: str = "Request timed out.", *, request: httpx.Request | None = None):
        super().__init__(message, request=request)


class JobFailedError(VrftError):
    """``jobs.wait()`` saw the job end in ``failed``. Carries the job and its ``error.code/message/param``."""

    def __init__(self, job: Any):
        self.job = job
        error = getattr(job, "error", None)
        self.code: str | None = getattr(error, "code", None)
        self.param: str | None = getattr(error, "param", None)
        self.message: str = getattr(error, "message", None) or "the job failed"
        super().__init__(f"Job {job.id} failed: {self.code or 'error'}: {self.message}")


class JobCancelledError(VrftError):
    """``jobs.wait(raise_on_cancel=True)`` saw the job end in ``cancelled``."""

    def __init__(self, job: Any):
        self.job = job
        super().__init__(f"Job {job.id} was cancelled")


class WaitTimeoutError(VrftError, TimeoutError):
    """``jobs.wait(timeout=...)`` gave up before the job finished. The job keeps running."""

    def __init__(self, job: Any, timeout: float):
        self.job = job
        self.timeout = timeout
        super().__init__(f"Job {job.id} still '{job.status}' after {timeout:g}s")


_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def _has_request(response: httpx.Response) -> bool:
    try:
        _ = response.request  # httpx raises RuntimeError for a response built without one
    except RuntimeError:
        return False
    return True


def make_status_error(response: httpx.Response) -> APIStatusError:
    """Build the right ``APIStatusError`` subclass from a (read) error response."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    message = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        message = body["error"].get("message")
    elif isinstance(body, dict) and isinstance(body.get("detail"), str):
        message = body["detail"]
    if not message:
        message = (body if isinstance(body, str) and body else None) or response.reason_phrase or "HTTP error"
    status = response.status_code
    cls = _STATUS_CLASSES.get(status)
    if cls is None:
        cls = InternalServerError if status >= 500 else APIStatusError
    return cls(str(message), response=response, body=body)
