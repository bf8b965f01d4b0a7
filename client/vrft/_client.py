"""``Client`` (httpx.Client) and ``AsyncClient`` (httpx.AsyncClient): the same surface, two I/O styles."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from vrft._base import (
    ACCEPT_ANY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    BaseClient,
    Discard,
    RequestOptions,
    RetryPlan,
    Send,
)

M = TypeVar("M", bound=BaseModel)


class Client(BaseClient):
    """Synchronous vrft client.

    ``api_key`` defaults to ``$VRFT_API_KEY``; ``base_url`` to ``$VRFT_BASE_URL`` or
    ``http://127.0.0.1:8000`` (with or without a trailing ``/v1``). Pass ``http_client`` to reuse an
    ``httpx.Client`` (for example a FastAPI ``TestClient``); its ``base_url`` is used when you give none.
    """

    def __init__(self, api_key: str | None = None, base_url: str | None = None,
                 timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT, max_retries: int = DEFAULT_MAX_RETRIES,
                 http_client: httpx.Client | None = None, default_headers: Mapping[str, str] | None = None):
        super().__init__(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries,
                         http_client=http_client, default_headers=default_headers)
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else httpx.Client(timeout=self.timeout)
        from vrft.resources import Files, Graders, Jobs, Models

        self.files = Files(self)
        self.jobs = Jobs(self)
        self.graders = Graders(self)
        self.models = Models(self)

    # -- lifecycle --------------------------------------------------------------------------------
    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    # -- requests ---------------------------------------------------------------------------------
    def request(self, opts: RequestOptions) -> httpx.Response:
        """Send with retries; returns a 2xx/3xx response or raises. Streamed responses must be closed."""
        return self._drive(self.plan_request(self._http, opts),
                           lambda request: self._http.send(request, stream=opts.stream, follow_redirects=False))

    def _drive(self, plan: RetryPlan, send: Callable[[httpx.Request], httpx.Response]) -> httpx.Response:
        """Carry out a ``retry_plan`` with blocking I/O."""
        try:
            step = next(plan)
            while True:
                if isinstance(step, Send):
                    try:
                        response = send(step.request)
                    except httpx.TransportError as exc:
                        step = plan.throw(exc)
                        continue
                    step = plan.send(response)
                    continue
                if isinstance(step, Discard):
                    if step.read_body:
                        step.response.read()
                    step.response.close()
                else:
                    self.sleep(step)
                step = next(plan)
        except StopIteration as done:
            result: httpx.Response = done.value
            return result

    def call(self, method: str, path: str, cast: type[M], **kwargs: Any) -> M:
        response = self.request(RequestOptions(method, path, **kwargs))
        return cast.model_validate(response.json())

    def call_raw(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.request(RequestOptions(method, path, **kwargs))

    @contextlib.contextmanager
    def download(self, path: str, *, params: Mapping[str, Any] | None = None) -> Iterator[httpx.Response]:
        """GET ``path`` streamed, following redirects. A redirect to another host (a presigned S3 URL)
        is fetched by a separate plain client, so neither our ``Authorization`` header nor an injected
        client's default headers reach that host."""
        response = self.request(RequestOptions("GET", path, params=params, stream=True, headers=ACCEPT_ANY))
        outside: httpx.Client | None = None
        try:
            hops = 0
            while response.is_redirect:
                hops += 1
                target, ours = self.redirect_target(response, hops)
                response.close()
                if ours:
                    response = self.request(RequestOptions("GET", str(target), stream=True, headers=ACCEPT_ANY))
                else:
                    outside = outside or httpx.Client(timeout=self.timeout, follow_redirects=True)
                    response = self._plain_get(outside, target)
            yield response
        finally:
            response.close()
            if outside is not None:
                outside.close()

    def _plain_get(self, client: httpx.Client, url: httpx.URL) -> httpx.Response:
        return self._drive(self.retry_plan(lambda: client.build_request("GET", url)),
                           lambda request: client.send(request, stream=True))


class AsyncClient(BaseClient):
    """Asynchronous vrft client: the same resources and methods as ``Client``, awaited."""

    def __init__(self, api_key: str | None = None, base_url: str | None = None,
                 timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT, max_retries: int = DEFAULT_MAX_RETRIES,
                 http_client: httpx.AsyncClient | None = None, default_headers: Mapping[str, str] | None = None):
        super().__init__(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries,
                         http_client=http_client, default_headers=default_headers)
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else httpx.AsyncClient(timeout=self.timeout)
        from vrft.resources import AsyncFiles, AsyncGraders, AsyncJobs, AsyncModels

        self.files = AsyncFiles(self)
        self.jobs = AsyncJobs(self)
        self.graders = AsyncGraders(self)
        self.models = AsyncModels(self)

    async def close(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def request(self, opts: RequestOptions) -> httpx.Response:
        return await self._drive(self.plan_request(self._http, opts),
                                 lambda request: self._http.send(request, stream=opts.stream, follow_redirects=False))

    async def _drive(self, plan: RetryPlan,
                     send: Callable[[httpx.Request], Awaitable[httpx.Response]]) -> httpx.Response:
        """Carry out a ``retry_plan`` with awaited I/O."""
        try:
            step = next(plan)
            while True:
                if isinstance(step, Send):
                    try:
                        response = await send(step.request)
                    except httpx.TransportError as exc:
                        step = plan.throw(exc)
                        continue
                    step = plan.send(response)
                    continue
                if isinstance(step, Discard):
                    if step.read_body:
                        await step.response.aread()
                    await step.response.aclose()
                else:
                    await self.sleep(step)
                step = next(plan)
        except StopIteration as done:
            result: httpx.Response = done.value
            return result

    async def call(self, method: str, path: str, cast: type[M], **kwargs: Any) -> M:
        response = await self.request(RequestOptions(method, path, **kwargs))
        return cast.model_validate(response.json())

    async def call_raw(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request(RequestOptions(method, path, **kwargs))

    @contextlib.asynccontextmanager
    async def download(self, path: str, *, params: Mapping[str, Any] | None = None) -> AsyncIterator[httpx.Response]:
        response = await self.request(RequestOptions("GET", path, params=params, stream=True, headers=ACCEPT_ANY))
        outside: httpx.AsyncClient | None = None
        try:
            hops = 0
            while response.is_redirect:
                hops += 1
                target, ours = self.redirect_target(response, hops)
                await response.aclose()
                if ours:
                    response = await self.request(RequestOptions("GET", str(target), stream=True, headers=ACCEPT_ANY))
                else:
                    outside = outside or httpx.AsyncClient(timeout=self.timeout, follow_redirects=True)
                    response = await self._plain_get(outside, target)
            yield response
        finally:
            await response.aclose()
            if outside is not None:
                await outside.aclose()

    async def _plain_get(self, client: httpx.AsyncClient, url: httpx.URL) -> httpx.Response:
        return await self._drive(self.retry_plan(lambda: client.build_request("GET", url)),
                                 lambda request: client.send(request, stream=True))
