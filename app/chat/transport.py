"""Getting a request to an inference worker and its answer back, with a bounded wait.

- ``VRFT_INFERENCE_URL`` set (the embedded server sets it for its own child): HTTP ``POST /generate``.
- else a broker (``VRFT_BROKER_URL``): the request goes on a Redis list that ``vrft-worker --inference``
  processes take from; the answer comes back on a per-request reply key (workers/inference/server.py).
- neither: no inference worker exists — 503.

Whatever goes wrong on the way (worker down, queue full, no answer within ``inference_timeout_s``)
is a 503 with Retry-After, never a 5xx of another kind; a 4xx of the worker's (a prompt too long for
the model's context) keeps its status and its code and names its field.

``stream`` asks the worker for events instead (workers/inference/server.py): text deltas while it
decodes, then the answer — over HTTP as the lines of one response, over Redis as items on the reply key.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import structlog

from app.config import Settings
from app.errors import ErrorCode, ServiceError

log = structlog.get_logger(__name__)

# Must match workers/inference/server.py (the API imports nothing from workers/).
REQUESTS = "vrft:inference:requests"
REPLY_PREFIX = "vrft:inference:reply:"

_WORKER_CODES = {400: ErrorCode.BAD_REQUEST, 404: ErrorCode.MODEL_NOT_FOUND, 503: ErrorCode.DEPENDENCY_UNAVAILABLE}
# A worker's own codes the caller is told as they are (OpenAI's names), not folded into the status's.
_NAMED_CODES = {c.code: c for c in (ErrorCode.CONTEXT_LENGTH_EXCEEDED,)}


def _unavailable(message: str) -> ServiceError:
    return ServiceError(ErrorCode.DEPENDENCY_UNAVAILABLE, message)


def _from_worker(status: int, body: dict[str, Any]) -> dict[str, Any]:
    if status == 200:
        return body
    err = body.get("error") or {}
    code = _WORKER_CODES.get(status, ErrorCode.DEPENDENCY_UNAVAILABLE)
    named = _NAMED_CODES.get(str(err.get("code")))
    if named is not None and named.status == status:
        code = named
    raise ServiceError(code, str(err.get("message") or "The inference worker refused the request."),
                       err.get("param"))


async def _over_http(url: str, request: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    try:
        async with httpx.AsyncClient(timeout=httpx.Timeout(timeout_s + 5, connect=5)) as client:
            response = await client.post(url.rstrip("/") + "/generate", json=request)
    except httpx.TimeoutException:
        raise _unavailable("The inference worker did not answer in time; retry shortly.") from None
    except httpx.HTTPError as exc:
        log.warning("chat.inference_unreachable", url=url, error=str(exc))
        raise _unavailable("The inference worker is unreachable; retry shortly.") from None
    try:
        body = response.json()
    except ValueError:
        raise _unavailable(f"The inference worker answered {response.status_code} without JSON.") from None
    return _from_worker(response.status_code, body)


def _redis(broker_url: str, settings: Settings):
    import redis.asyncio as aioredis

    return aioredis.Redis.from_url(broker_url, socket_connect_timeout=2,
                                   socket_timeout=settings.inference_timeout_s + 5)


async def _enqueue(client, request: dict[str, Any], settings: Settings) -> None:
    """Queue the request for any inference worker, or a 503 when the queue is full (bounded wait)."""
    if await client.llen(REQUESTS) >= settings.inference_queue_size:
        raise _unavailable("Every inference worker is busy; retry shortly.")
    await client.rpush(REQUESTS, json.dumps(request))


async def _over_redis(broker_url: str, request: dict[str, Any], settings: Settings) -> dict[str, Any]:
    from redis.exceptions import RedisError

    client = _redis(broker_url, settings)
    try:
        await _enqueue(client, request, settings)
        wait = max(1, int(round(request["deadline"] - time.time())))
        item = await client.blpop([REPLY_PREFIX + request["id"]], timeout=wait)
    except RedisError as exc:
        log.warning("chat.broker_unavailable", error=str(exc))
        raise _unavailable("The broker is unavailable; retry shortly.") from None
    finally:
        await client.aclose()
    if item is None:
        raise _unavailable("No inference worker answered in time (is `vrft-worker --inference` running?); "
                           "retry shortly.")
    body = json.loads(item[1])
    return _from_worker(int(body.pop("status", 503)), body)


async def generate(request: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The worker's answer ``{"prompt_tokens", "choices": [{"text", "finish_reason", "completion_tokens"}]}``."""
    if settings.inference_url:
        return await _over_http(settings.inference_url, request, settings.inference_timeout_s)
    if settings.broker_url:
        return await _over_redis(settings.broker_url, request, settings)
    raise _unavailable("No inference worker is configured: start `vrft-server serve` with its embedded worker, "
                       "or set VRFT_BROKER_URL and run `vrft-worker --inference`.")


def _done(event: dict[str, Any]) -> dict[str, Any]:
    """A stream's last event → the answer, or the worker's refusal raised."""
    body = {k: v for k, v in event.items() if k not in ("event", "status")}
    return _from_worker(int(event.get("status", 503)), body)


async def _stream_http(url: str, request: dict[str, Any], timeout_s: float) -> AsyncIterator[dict[str, Any]]:
    try:
        async with httpx.AsyncClient(timeout=httpx.Timeout(timeout_s + 5, connect=5)) as client:
            async with client.stream("POST", url.rstrip("/") + "/generate", json=request) as response:
                if response.status_code != 200:
                    raw = await response.aread()
                    try:
                        body = json.loads(raw)
                    except ValueError:
                        raise _unavailable(f"The inference worker answered {response.status_code} without JSON."
                                           ) from None
                    _from_worker(response.status_code, body)
                async for line in response.aiter_lines():
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event.get("event") == "done":
                        yield {"event": "done", "answer": _done(event)}
                        return
                    yield event
    except httpx.TimeoutException:
        raise _unavailable("The inference worker did not answer in time; retry shortly.") from None
    except httpx.HTTPError as exc:
        log.warning("chat.inference_unreachable", url=url, error=str(exc))
        raise _unavailable("The inference worker is unreachable; retry shortly.") from None
    raise _unavailable("The inference worker ended the stream before the answer; retry shortly.")


async def _stream_redis(broker_url: str, request: dict[str, Any], settings: Settings) -> AsyncIterator[dict[str, Any]]:
    from redis.exceptions import RedisError

    client = _redis(broker_url, settings)
    try:
        await _enqueue(client, request, settings)
        while True:
            left = request["deadline"] - time.time()
            item = await client.blpop([REPLY_PREFIX + request["id"]], timeout=max(1, int(round(left)))) \
                if left > 0 else None
            if item is None:
                raise _unavailable("No inference worker answered in time (is `vrft-worker --inference` running?); "
                                   "retry shortly.")
            event = json.loads(item[1])
            if event.get("event") == "done":
                yield {"event": "done", "answer": _done(event)}
                return
            yield event
    except RedisError as exc:
        log.warning("chat.broker_unavailable", error=str(exc))
        raise _unavailable("The broker is unavailable; retry shortly.") from None
    finally:
        await client.aclose()


def stream(request: dict[str, Any], settings: Settings) -> AsyncIterator[dict[str, Any]]:
    """The worker's events for a streamed request: ``{"event": "delta", "index", "text", "tokens"}`` as it
    decodes, then ``{"event": "done", "answer"}`` (the answer as `generate` returns it). A refusal or an
    unreachable worker raises ServiceError, before the first event or in place of a later one."""
    request = {**request, "stream": True}
    if settings.inference_url:
        return _stream_http(settings.inference_url, request, settings.inference_timeout_s)
    if settings.broker_url:
        return _stream_redis(settings.broker_url, request, settings)
    raise _unavailable("No inference worker is configured: start `vrft-server serve` with its embedded worker, "
                       "or set VRFT_BROKER_URL and run `vrft-worker --inference`.")
