"""HTTP plumbing shared by ``Client`` and ``AsyncClient``: configuration, retries, idempotency keys.

Retries: connection errors, timeouts, 408, 429 and 5xx are retried up to ``max_retries`` times with
jittered exponential backoff (0.5 s, 1 s, 2 s … capped at 8 s), or after the server's
``Retry-After`` / ``Retry-After-Ms`` when it sends one (capped at 60 s). Every POST carries one
``Idempotency-Key`` (uuid4) that is reused by all of its retries, so a retried create is answered
with the first response instead of creating a second object.

The retry loop is written once, as ``retry_plan``: a generator that decides what happens next and
does no I/O itself. It yields a request to send, a delay to sleep or a response to discard, and
``Client``/``AsyncClient`` drive it with blocking or awaited calls, so the two can never disagree
about which failures are retried or how long to wait.
"""

from __future__ import annotations

import email.utils
import os
import random
import time
import uuid
from collections.abc import Callable, Generator, Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel

from vrft._version import __version__
from vrft.errors import APIConnectionError, APITimeoutError, _has_request, make_status_error

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 2
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_BACKOFF = 8.0
MAX_RETRY_AFTER = 60.0
MAX_REDIRECTS = 5
ACCEPT_ANY = {"Accept": "*/*"}  # downloads: whatever the file is

M = TypeVar("M", bound=BaseModel)
Body = bytes | Iterable[bytes] | None


def normalise_base_url(url: str) -> str:
    """``http://h:8000``, ``http://h:8000/``, ``http://h:8000/v1`` and ``…/v1/`` all mean the same root."""
    url = url.strip().rstrip("/")
    if url.endswith("/v1"):
        url = url[: -len("/v1")]
    if "://" not in url:
        url = "http://" + url
    return url


def same_origin(a: str | httpx.URL, b: str | httpx.URL) -> bool:
    ua, ub = httpx.URL(str(a)), httpx.URL(str(b))
    return (ua.scheme, ua.host, ua.port) == (ub.scheme, ub.host, ub.port)


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from ``Retry-After-Ms``, ``Retry-After`` (seconds or HTTP date), or ``None``."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(float(raw_ms) / 1000.0, 0.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(float(raw), 0.0)
    except ValueError:
        pass
    parsed = email.utils.parsedate_tz(raw)
    if parsed is None:
        return None
    return max(email.utils.mktime_tz(parsed) - time.time(), 0.0)


def poll_after_seconds(response: httpx.Response, default: float) -> float:
    """The server's poll hint (``X-Poll-After-Ms``), else ``default``."""
    raw = response.headers.get("x-poll-after-ms")
    try:
        return max(float(raw) / 1000.0, 0.05) if raw else default
    except ValueError:
        return default


class Send:
    """A request the retry plan wants sent. (A wrapper rather than the bare request: an injected client
    may be httpx-compatible without being httpx — Starlette's TestClient — so its requests are not
    ``httpx.Request`` instances to tell apart by type.)"""

    __slots__ = ("request",)

    def __init__(self, request: httpx.Request):
        self.request = request


class Discard:
    """A response the retry plan is done with: the driver closes it, reading the body first when it is
    about to become an error (the error keeps the body)."""

    __slots__ = ("response", "read_body")

    def __init__(self, response: httpx.Response, *, read_body: bool):
        self.response = response
        self.read_body = read_body


# What a retry plan yields: a request to send, seconds to sleep, or a response to close.
RetryStep = Send | float | Discard
RetryPlan = Generator[RetryStep, httpx.Response, httpx.Response]


class BaseClient:
    """Configuration and pure request logic; the sync and async clients add the I/O."""

    def __init__(self, *, api_key: str | None, base_url: str | None, timeout: float | httpx.Timeout | None,
                 max_retries: int, http_client: Any, default_headers: Mapping[str, str] | None):
        self.api_key = api_key if api_key is not None else os.environ.get("VRFT_API_KEY")
        injected_base = str(getattr(http_client, "base_url", "") or "") if http_client is not None else ""
        chosen = base_url or (injected_base if injected_base.strip("/") else None) \
            or os.environ.get("VRFT_BASE_URL") or DEFAULT_BASE_URL
        self.base_url = normalise_base_url(chosen)
        self.timeout = timeout if timeout is not None else DEFAULT_TIMEOUT
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.max_retries = max_retries
        self._default_headers = dict(default_headers or {})

    # -- request building -------------------------------------------------------------------------
    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        if not path.startswith("/"):
            path = "/" + path
        return self.base_url + path

    def headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {"User-Agent": f"vrft-python/{__version__}", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        headers.update(self._default_headers)
        if extra:
            headers.update(extra)
        return headers

    @staticmethod
    def idempotency_headers(method: str, headers: Mapping[str, str] | None) -> dict[str, str]:
        out = dict(headers or {})
        if method.upper() == "POST" and not any(k.lower() == "idempotency-key" for k in out):
            out["Idempotency-Key"] = str(uuid.uuid4())
        return out

    # -- retry policy -----------------------------------------------------------------------------
    def should_retry(self, response: httpx.Response) -> bool:
        override = response.headers.get("x-should-retry")
        if override == "true":
            return True
        if override == "false":
            return False
        return response.status_code in RETRY_STATUSES

    @staticmethod
    def backoff(attempt: int, response: httpx.Response | None = None) -> float:
        """Delay before retry number ``attempt`` (0-based)."""
        if response is not None:
            hinted = parse_retry_after(response.headers)
            if hinted is not None:
                return min(hinted, MAX_RETRY_AFTER)
        base = min(0.5 * (2.0 ** attempt), MAX_BACKOFF)
        return base * (1 - 0.25 * random.random())  # jitter: 75–100 % of the step

    def retry_plan(self, build: Callable[[], httpx.Request]) -> RetryPlan:
        """The retry loop for one logical request; ``build`` makes a fresh request for each attempt.

        The driver sends each yielded ``Send``'s request and sends the response back in, or throws the
        ``httpx.TransportError`` it raised; sleeps for each yielded ``float``; closes each yielded
        ``Discard``. The plan returns the first response below 400, or raises the SDK's error.
        """
        attempt = 0
        while True:
            request = build()
            try:
                response = yield Send(request)
            except httpx.TransportError as exc:
                if attempt >= self.max_retries:
                    raise self.connection_error(exc, request) from exc
                yield self.backoff(attempt)
            else:
                if response.status_code < 400:
                    return response
                retry = attempt < self.max_retries and self.should_retry(response)
                # the delay is read before the response is closed: Retry-After lives on it
                delay = self.backoff(attempt, response) if retry else 0.0
                yield Discard(response, read_body=not retry)
                if not retry:
                    raise make_status_error(response)
                yield delay
            attempt += 1

    def plan_request(self, http: httpx.Client | httpx.AsyncClient, opts: RequestOptions) -> RetryPlan:
        """``retry_plan`` for a request to our API through ``http``: the headers (and with them the
        idempotency key) are made once, so every retry carries the same key."""
        headers = self.headers(self.idempotency_headers(opts.method, opts.headers))
        timeout = opts.timeout if opts.timeout is not None else self.timeout

        def build() -> httpx.Request:
            content = opts.content() if callable(opts.content) else opts.content
            return http.build_request(opts.method, self.url(opts.path), params=opts.params or None, json=opts.json,
                                      content=content, headers=headers, timeout=timeout)

        return self.retry_plan(build)

    def redirect_target(self, response: httpx.Response, hops: int) -> tuple[httpx.URL, bool]:
        """Where a download's redirect points, and whether that is our API (which gets our headers)
        rather than another host such as a presigned S3 URL (which gets none)."""
        location = response.headers.get("location")
        if not location or hops > MAX_REDIRECTS:
            raise make_status_error(response)
        target = response.request.url.join(location) if _has_request(response) else httpx.URL(location)
        return target, same_origin(target, self.base_url)

    @staticmethod
    def connection_error(exc: httpx.HTTPError, request: httpx.Request | None) -> APIConnectionError:
        if isinstance(exc, httpx.TimeoutException):
            return APITimeoutError(f"Request timed out: {exc}", request=request)
        return APIConnectionError(f"Connection error: {exc.__class__.__name__}: {exc}", request=request)

    @staticmethod
    def parse(model: type[M], response: httpx.Response) -> M:
        return model.model_validate(response.json())


class RequestOptions:
    """One logical request: re-buildable for each retry (``content`` may be a factory of a stream)."""

    __slots__ = ("method", "path", "params", "json", "content", "headers", "stream", "timeout")

    def __init__(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None,
                 content: Callable[[], Any] | bytes | None = None, headers: Mapping[str, str] | None = None,
                 stream: bool = False, timeout: Any = None):
        self.method = method.upper()
        self.path = path
        self.params = {k: v for k, v in (params or {}).items() if v is not None}
        self.json = json
        self.content = content
        self.headers = dict(headers or {})
        self.stream = stream
        self.timeout = timeout


def host_of(url: str) -> str:
    return urlsplit(url).netloc
