"""HTTP plumbing shared by ``Client`` and ``AsyncClient``: configuration, retries, idempotency keys.

Retries: connection errors, timeouts, 408, 429 and 5xx are retried up to ``max_retries`` times with
jittered exponential backoff (0.5 s, 1 s, 2 s … capped at 8 s), or after the server's
``Retry-After`` / ``Retry-After-Ms`` when it sends one (capped at 60 s). Every POST carries one
``Idempotency-Key`` (uuid4) that is reused by all of its retries, so a retried create is answered
with the first response instead of creating a second object.
"""

from __future__ import annotations

import email.utils
import os
import random
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Optional, TypeVar, Union
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel

from vrft._version import __version__
from vrft.errors import APIConnectionError, APITimeoutError

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 2
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_BACKOFF = 8.0
MAX_RETRY_AFTER = 60.0

M = TypeVar("M", bound=BaseModel)
Body = Union[bytes, Iterable[bytes], None]


def normalise_base_url(url: str) -> str:
    """``http://h:8000``, ``http://h:8000/``, ``http://h:8000/v1`` and ``…/v1/`` all mean the same root."""
    url = url.strip().rstrip("/")
    if url.endswith("/v1"):
        url = url[: -len("/v1")]
    if "://" not in url:
        url = "http://" + url
    return url


def same_origin(a: Union[str, httpx.URL], b: Union[str, httpx.URL]) -> bool:
    ua, ub = httpx.URL(str(a)), httpx.URL(str(b))
    return (ua.scheme, ua.host, ua.port) == (ub.scheme, ub.host, ub.port)


def parse_retry_after(headers: Mapping[str, str]) -> Optional[float]:
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


class BaseClient:
    """Configuration and pure request logic; the sync and async clients add the I/O."""

    def __init__(self, *, api_key: Optional[str], base_url: Optional[str], timeout: Union[float, httpx.Timeout, None],
                 max_retries: int, http_client: Any, default_headers: Optional[Mapping[str, str]]):
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

    def headers(self, extra: Optional[Mapping[str, str]] = None) -> dict[str, str]:
        headers = {"User-Agent": f"vrft-python/{__version__}", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        headers.update(self._default_headers)
        if extra:
            headers.update(extra)
        return headers

    @staticmethod
    def idempotency_headers(method: str, headers: Optional[Mapping[str, str]]) -> dict[str, str]:
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
    def backoff(attempt: int, response: Optional[httpx.Response] = None) -> float:
        """Delay before retry number ``attempt`` (0-based)."""
        if response is not None:
            hinted = parse_retry_after(response.headers)
            if hinted is not None:
                return min(hinted, MAX_RETRY_AFTER)
        base = min(0.5 * (2 ** attempt), MAX_BACKOFF)
        return base * (1 - 0.25 * random.random())  # jitter: 75–100 % of the step

    @staticmethod
    def connection_error(exc: httpx.HTTPError, request: Optional[httpx.Request]) -> APIConnectionError:
        if isinstance(exc, httpx.TimeoutException):
            return APITimeoutError(f"Request timed out: {exc}", request=request)
        return APIConnectionError(f"Connection error: {exc.__class__.__name__}: {exc}", request=request)

    @staticmethod
    def parse(model: type[M], response: httpx.Response) -> M:
        return model.model_validate(response.json())


class RequestOptions:
    """One logical request: re-buildable for each retry (``content`` may be a factory of a stream)."""

    __slots__ = ("method", "path", "params", "json", "content", "headers", "stream", "timeout")

    def __init__(self, method: str, path: str, *, params: Optional[Mapping[str, Any]] = None, json: Any = None,
                 content: Union[Callable[[], Any], bytes, None] = None, headers: Optional[Mapping[str, str]] = None,
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
