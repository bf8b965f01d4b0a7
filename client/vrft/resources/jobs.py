"""``client.jobs``: create, retrieve, list, cancel/pause/resume, events, checkpoints, wait, adapters,
compare.

``wait()`` semantics: returns the final job when it ``succeeded``; raises ``JobFailedError`` (with
``code``/``message``/``param`` from the job's ``error``) when it ``failed``; for ``cancelled`` it
returns the job by default (cancelling is something a user did on purpose, not an error) and raises
``JobCancelledError`` with ``raise_on_cancel=True``. ``timeout`` → ``WaitTimeoutError`` (the job keeps
running). It polls at the pace the server asks for (``X-Poll-After-Ms``).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from vrft._base import RequestOptions, poll_after_seconds
from vrft._progress import Progress
from vrft.compare import comparison, unique_ids
from vrft.errors import APIConnectionError, JobCancelledError, JobFailedError, VrftError, WaitTimeoutError
from vrft.pagination import AsyncPager, SyncPager
from vrft.resources._shared import (
    JOBS,
    SSEDecoder,
    build_job_body,
    filename_from_disposition,
    job_id,
    job_progress_note,
    job_step,
    parse_sse,
    resolve_dest,
    safe_extract,
    sse_payload,
)
from vrft.types import Checkpoint, FineTuningJob, JobComparison, JobEvent, Page

if TYPE_CHECKING:
    from vrft._client import AsyncClient, Client

JobRef = str | FineTuningJob
CheckpointRef = str | int | Checkpoint | None
PathLike = str | os.PathLike[str]
Comparisons = list[JobComparison]  # (inside the classes `list` is the method)
DEFAULT_POLL_S = 2.0
DOWNLOAD_CHUNK = 1024 * 1024
MAX_STREAM_RECONNECTS = 5


def _wait_bar(jid: str, progress: bool | Progress) -> Progress | None:
    if not progress:
        return None
    return progress if isinstance(progress, Progress) else Progress(jid, unit="steps")


def _report(bar: Progress | None, job: FineTuningJob) -> None:
    if bar is not None:
        step, total = job_step(job)
        bar.update(step or 0, total=total, note=job_progress_note(job))


def _wait_delay(response: httpx.Response, job: FineTuningJob, poll_interval: float | None, deadline: float | None,
                timeout: float | None) -> float:
    """How long ``wait`` sleeps before polling again: the caller's interval, else the server's hint,
    never past the deadline (reaching it raises ``WaitTimeoutError``)."""
    delay = poll_interval if poll_interval is not None else poll_after_seconds(response, DEFAULT_POLL_S)
    if deadline is None:
        return delay
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise WaitTimeoutError(job, timeout or 0)
    return min(delay, remaining)


class _Reconnects:
    """The event stream's reconnect budget: ``MAX_STREAM_RECONNECTS`` drops in a row, then give up;
    an event received resets it."""

    def __init__(self, client: Client | AsyncClient, jid: str):
        self._client = client
        self._jid = jid
        self.failures = 0

    def delay_after(self, exc: APIConnectionError | httpx.TransportError) -> float:
        """Seconds to wait before reconnecting after ``exc``; raises once the budget is spent."""
        self.failures += 1
        if self.failures > MAX_STREAM_RECONNECTS:
            if isinstance(exc, APIConnectionError):
                raise exc
            raise APIConnectionError(f"The event stream of {self._jid} kept dropping.") from None
        return self._client.backoff(self.failures - 1)


def _finish(job: FineTuningJob, raise_on_cancel: bool) -> FineTuningJob:
    if job.status == "failed":
        raise JobFailedError(job)
    if job.status == "cancelled" and raise_on_cancel:
        raise JobCancelledError(job)
    return job


def _stream_request(jid: str) -> RequestOptions:
    return RequestOptions("GET", f"{JOBS}/{jid}/events", params={"stream": "true"}, stream=True,
                          headers={"Accept": "text/event-stream"})


def _adapter_path(jid: str, checkpoint_id: str | None) -> str:
    if checkpoint_id:
        return f"{JOBS}/{jid}/checkpoints/{checkpoint_id}/adapter"
    return f"{JOBS}/{jid}/adapter"


def _download_targets(jid: str, dest: PathLike | None, extract: bool,
                      response: httpx.Response) -> tuple[Path, Path | None]:
    """(file to write, folder to extract into or None)."""
    name = filename_from_disposition(response.headers.get("content-disposition")) or f"{jid}-adapter.tar"
    if extract:
        folder = Path(os.fspath(dest)).expanduser() if dest is not None else Path.cwd() / name.removesuffix(".tar")
        folder.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".vrft-adapter-", suffix=".tar", dir=folder.parent)
        os.close(fd)
        return Path(tmp), folder
    return resolve_dest(dest, name), None


class _AdapterFile:
    """Where one adapter download is written, for the sync and the async download alike: a ``.part``
    file renamed into place when complete, or a temporary ``.tar`` unpacked into the ``extract``
    folder. Leaving the ``with`` block by an exception removes the partial file."""

    def __init__(self, jid: str, dest: PathLike | None, extract: bool, response: httpx.Response,
                 progress: bool | Progress):
        self.out, self.folder = _download_targets(jid, dest, extract, response)
        name = self.out.name if self.folder is None else self.folder.name
        self.bar = Progress(f"download {name}", _size(response)) if progress is True else (progress or None)
        self.part = self.out if self.folder is not None else self.out.with_name(self.out.name + ".part")

    def __enter__(self) -> _AdapterFile:
        self._fh = open(self.part, "wb")
        return self

    def write(self, chunk: bytes) -> None:
        self._fh.write(chunk)
        if self.bar is not None:
            self.bar.advance(len(chunk))

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self._fh.close()
        if self.bar is not None:
            self.bar.close()
        if exc_type is not None:
            self.part.unlink(missing_ok=True)

    def finish(self) -> Path:
        """The downloaded file in place, or the folder it was unpacked into."""
        if self.folder is None:
            self.part.replace(self.out)
            return self.out
        try:
            return safe_extract(self.part, self.folder)
        finally:
            self.part.unlink(missing_ok=True)


def _size(response: httpx.Response) -> int | None:
    raw = response.headers.get("content-length")
    return int(raw) if raw and raw.isdigit() else None


class Jobs:
    def __init__(self, client: Client):
        self._client = client

    def create(self, *, model: str, training_file: Any, grader: dict[str, Any] | None = None,
               validation_file: Any = None, hyperparameters: dict[str, Any] | None = None, suffix: str | None = None,
               metadata: dict[str, str] | None = None, seed: int | None = None, dry_run: bool = False,
               dry_run_samples: int | None = None, method: dict[str, Any] | None = None,
               method_type: str = "reinforcement", gpus: int | None = None,
               extra_body: dict[str, Any] | None = None, idempotency_key: str | None = None) -> FineTuningJob:
        """Create a fine-tuning job: ``method = {"type": method_type, method_type: {"grader": grader,
        "hyperparameters": hyperparameters}}`` (a supervised job's grader is optional: it scores the
        validation file). ``model`` may be a base model or an ft: model of this project; ``gpus`` asks
        for that many devices (``resources.gpus``)."""
        body = build_job_body(model=model, training_file=training_file, grader=grader,
                              validation_file=validation_file, hyperparameters=hyperparameters, suffix=suffix,
                              metadata=metadata, seed=seed, dry_run=dry_run, dry_run_samples=dry_run_samples,
                              method=method, method_type=method_type, gpus=gpus, extra_body=extra_body)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return self._client.call("POST", JOBS, FineTuningJob, json=body, headers=headers)

    def retrieve(self, job: JobRef) -> FineTuningJob:
        return self._client.call("GET", f"{JOBS}/{job_id(job)}", FineTuningJob)

    def list(self, *, limit: int | None = None, after: str | None = None,
             status: str | None = None) -> SyncPager[FineTuningJob]:
        """Newest first; iterating the result walks every page."""
        def fetch(cursor: str | None) -> Page[FineTuningJob]:
            return self._client.call("GET", JOBS, Page[FineTuningJob],
                                     params={"limit": limit, "after": cursor, "status": status})
        return SyncPager(fetch, after)

    def cancel(self, job: JobRef) -> FineTuningJob:
        return self._client.call("POST", f"{JOBS}/{job_id(job)}/cancel", FineTuningJob)

    def pause(self, job: JobRef) -> FineTuningJob:
        return self._client.call("POST", f"{JOBS}/{job_id(job)}/pause", FineTuningJob)

    def resume(self, job: JobRef) -> FineTuningJob:
        return self._client.call("POST", f"{JOBS}/{job_id(job)}/resume", FineTuningJob)

    def list_events(self, job: JobRef, *, limit: int | None = None, after: str | None = None,
                    type: str | None = None) -> SyncPager[JobEvent]:
        """OpenAI's ``list_events``: newest first, paginated with ``after``."""
        jid = job_id(job)

        def fetch(cursor: str | None) -> Page[JobEvent]:
            return self._client.call("GET", f"{JOBS}/{jid}/events", Page[JobEvent],
                                     params={"limit": limit, "after": cursor, "type": type})
        return SyncPager(fetch, after)

    def events(self, job: JobRef, follow: bool = False, *, type: str | None = None) -> Iterator[JobEvent]:
        """Events oldest first. With ``follow=True`` keeps streaming new ones (Server-Sent Events,
        reconnecting on drops) until the job ends."""
        jid = job_id(job)
        if not follow:
            events = list(self.list_events(jid, limit=100, type=type))
            yield from reversed(events)
            return
        seen: set[str] = set()
        for event in self._follow(jid):
            if event.id in seen or (type and event.type != type):
                continue
            seen.add(event.id)
            yield event

    def _follow(self, jid: str) -> Iterator[JobEvent]:
        reconnects = _Reconnects(self._client, jid)
        while True:
            try:
                response = self._client.request(_stream_request(jid))
            except APIConnectionError as exc:
                self._client.sleep(reconnects.delay_after(exc))
                continue
            try:
                if "text/event-stream" not in response.headers.get("content-type", ""):
                    response.close()
                    yield from self._poll_events(jid)
                    return
                for event, data, _ in parse_sse(response.iter_lines()):
                    if event == "done":
                        return
                    payload = sse_payload(event, data)
                    if payload is not None:
                        reconnects.failures = 0
                        yield JobEvent.model_validate(payload)
            except httpx.TransportError as exc:
                self._client.sleep(reconnects.delay_after(exc))
                continue
            finally:
                response.close()
            if self.retrieve(jid).is_terminal:  # stream ended without "done": finished or cut
                yield from reversed(list(self.list_events(jid, limit=100)))
                return

    def _poll_events(self, jid: str) -> Iterator[JobEvent]:
        """Fallback for a server without SSE: poll the list until the job ends."""
        while True:
            response = self._client.call_raw("GET", f"{JOBS}/{jid}")
            job = FineTuningJob.model_validate(response.json())
            yield from reversed(list(self.list_events(jid, limit=100)))
            if job.is_terminal:
                return
            self._client.sleep(poll_after_seconds(response, DEFAULT_POLL_S))

    def checkpoints(self, job: JobRef, *, limit: int | None = None,
                    after: str | None = None) -> SyncPager[Checkpoint]:
        jid = job_id(job)

        def fetch(cursor: str | None) -> Page[Checkpoint]:
            return self._client.call("GET", f"{JOBS}/{jid}/checkpoints", Page[Checkpoint],
                                     params={"limit": limit, "after": cursor})
        return SyncPager(fetch, after)

    def compare(self, jobs: Iterable[JobRef]) -> Comparisons:
        """The jobs' evaluations side by side, one row per job in the order given (see ``vrft.compare``).
        An unknown id raises ``NotFoundError`` (naming it) before any events are read."""
        found = [self.retrieve(jid) for jid in unique_ids(job_id(j) for j in jobs)]
        return [comparison(job, reversed(list(self.list_events(job.id, limit=1000, type="metrics"))))
                for job in found]

    def wait(self, job: JobRef, timeout: float | None = None, progress: bool | Progress = True, *,
             raise_on_cancel: bool = False, poll_interval: float | None = None) -> FineTuningJob:
        """Block until the job ends (see the module docstring for what is returned or raised).
        ``progress`` draws ``step/total``, status and the latest reward on stderr."""
        jid = job_id(job)
        deadline = time.monotonic() + timeout if timeout is not None else None
        bar = _wait_bar(jid, progress)
        try:
            while True:
                response = self._client.call_raw("GET", f"{JOBS}/{jid}")
                current = FineTuningJob.model_validate(response.json())
                _report(bar, current)
                if current.is_terminal:
                    return _finish(current, raise_on_cancel)
                delay = _wait_delay(response, current, poll_interval, deadline, timeout)
                self._client.sleep(delay)
        finally:
            if bar is not None:
                bar.close()

    def _checkpoint_id(self, jid: str, checkpoint: CheckpointRef) -> str | None:
        if checkpoint is None:
            return None
        if isinstance(checkpoint, Checkpoint):
            return checkpoint.id
        if isinstance(checkpoint, int):
            for ck in self.checkpoints(jid, limit=100):
                if ck.step_number == checkpoint:
                    return ck.id
            raise VrftError(f"Job {jid} has no checkpoint at step {checkpoint}.")
        return str(checkpoint)

    def download_adapter(self, job: JobRef, dest: PathLike | None = None, *, checkpoint: CheckpointRef = None,
                         extract: bool = False, progress: bool | Progress = False) -> Path:
        """Download the final adapter (or a checkpoint's: an id, a step number or a ``Checkpoint``).

        The server answers with a redirect to a presigned URL (fetched without our credentials) or
        the file itself; it is streamed to ``dest`` (a file path or a folder; default: the current
        folder). ``extract=True`` unpacks the ``.tar`` into the folder ``dest`` and returns it.
        """
        jid = job_id(job)
        path = _adapter_path(jid, self._checkpoint_id(jid, checkpoint))
        with self._client.download(path) as response, _AdapterFile(jid, dest, extract, response, progress) as target:
            for chunk in response.iter_bytes(DOWNLOAD_CHUNK):
                target.write(chunk)
        return target.finish()


class AsyncJobs:
    def __init__(self, client: AsyncClient):
        self._client = client

    async def create(self, *, model: str, training_file: Any, grader: dict[str, Any] | None = None,
                     validation_file: Any = None, hyperparameters: dict[str, Any] | None = None,
                     suffix: str | None = None, metadata: dict[str, str] | None = None,
                     seed: int | None = None, dry_run: bool = False, dry_run_samples: int | None = None,
                     method: dict[str, Any] | None = None, method_type: str = "reinforcement",
                     gpus: int | None = None, extra_body: dict[str, Any] | None = None,
                     idempotency_key: str | None = None) -> FineTuningJob:
        body = build_job_body(model=model, training_file=training_file, grader=grader,
                              validation_file=validation_file, hyperparameters=hyperparameters, suffix=suffix,
                              metadata=metadata, seed=seed, dry_run=dry_run, dry_run_samples=dry_run_samples,
                              method=method, method_type=method_type, gpus=gpus, extra_body=extra_body)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return await self._client.call("POST", JOBS, FineTuningJob, json=body, headers=headers)

    async def retrieve(self, job: JobRef) -> FineTuningJob:
        return await self._client.call("GET", f"{JOBS}/{job_id(job)}", FineTuningJob)

    def list(self, *, limit: int | None = None, after: str | None = None,
             status: str | None = None) -> AsyncPager[FineTuningJob]:
        async def fetch(cursor: str | None) -> Page[FineTuningJob]:
            return await self._client.call("GET", JOBS, Page[FineTuningJob],
                                           params={"limit": limit, "after": cursor, "status": status})
        return AsyncPager(fetch, after)

    async def cancel(self, job: JobRef) -> FineTuningJob:
        return await self._client.call("POST", f"{JOBS}/{job_id(job)}/cancel", FineTuningJob)

    async def pause(self, job: JobRef) -> FineTuningJob:
        return await self._client.call("POST", f"{JOBS}/{job_id(job)}/pause", FineTuningJob)

    async def resume(self, job: JobRef) -> FineTuningJob:
        return await self._client.call("POST", f"{JOBS}/{job_id(job)}/resume", FineTuningJob)

    def list_events(self, job: JobRef, *, limit: int | None = None, after: str | None = None,
                    type: str | None = None) -> AsyncPager[JobEvent]:
        jid = job_id(job)

        async def fetch(cursor: str | None) -> Page[JobEvent]:
            return await self._client.call("GET", f"{JOBS}/{jid}/events", Page[JobEvent],
                                           params={"limit": limit, "after": cursor, "type": type})
        return AsyncPager(fetch, after)

    async def events(self, job: JobRef, follow: bool = False, *, type: str | None = None) -> AsyncIterator[JobEvent]:
        jid = job_id(job)
        if not follow:
            events = [e async for e in self.list_events(jid, limit=100, type=type)]
            for event in reversed(events):
                yield event
            return
        seen: set[str] = set()
        async for event in self._follow(jid):
            if event.id in seen or (type and event.type != type):
                continue
            seen.add(event.id)
            yield event

    async def _follow(self, jid: str) -> AsyncIterator[JobEvent]:
        reconnects = _Reconnects(self._client, jid)
        while True:
            try:
                response = await self._client.request(_stream_request(jid))
            except APIConnectionError as exc:
                await self._client.sleep(reconnects.delay_after(exc))
                continue
            try:
                if "text/event-stream" not in response.headers.get("content-type", ""):
                    await response.aclose()
                    async for event in self._poll_events(jid):
                        yield event
                    return
                decoder = SSEDecoder()
                async for line in response.aiter_lines():
                    message = decoder.feed(line)
                    if message is None:
                        continue
                    if message[0] == "done":
                        return
                    payload = sse_payload(message[0], message[1])
                    if payload is not None:
                        reconnects.failures = 0
                        yield JobEvent.model_validate(payload)
            except httpx.TransportError as exc:
                await self._client.sleep(reconnects.delay_after(exc))
                continue
            finally:
                await response.aclose()
            if (await self.retrieve(jid)).is_terminal:
                for event in reversed([e async for e in self.list_events(jid, limit=100)]):
                    yield event
                return

    async def _poll_events(self, jid: str) -> AsyncIterator[JobEvent]:
        while True:
            response = await self._client.call_raw("GET", f"{JOBS}/{jid}")
            job = FineTuningJob.model_validate(response.json())
            for event in reversed([e async for e in self.list_events(jid, limit=100)]):
                yield event
            if job.is_terminal:
                return
            await self._client.sleep(poll_after_seconds(response, DEFAULT_POLL_S))

    def checkpoints(self, job: JobRef, *, limit: int | None = None,
                    after: str | None = None) -> AsyncPager[Checkpoint]:
        jid = job_id(job)

        async def fetch(cursor: str | None) -> Page[Checkpoint]:
            return await self._client.call("GET", f"{JOBS}/{jid}/checkpoints", Page[Checkpoint],
                                           params={"limit": limit, "after": cursor})
        return AsyncPager(fetch, after)

    async def compare(self, jobs: Iterable[JobRef]) -> Comparisons:
        found = [await self.retrieve(jid) for jid in unique_ids(job_id(j) for j in jobs)]
        rows = []
        for job in found:
            events = [e async for e in self.list_events(job.id, limit=1000, type="metrics")]
            rows.append(comparison(job, reversed(events)))
        return rows

    async def wait(self, job: JobRef, timeout: float | None = None, progress: bool | Progress = True, *,
                   raise_on_cancel: bool = False, poll_interval: float | None = None) -> FineTuningJob:
        jid = job_id(job)
        deadline = time.monotonic() + timeout if timeout is not None else None
        bar = _wait_bar(jid, progress)
        try:
            while True:
                response = await self._client.call_raw("GET", f"{JOBS}/{jid}")
                current = FineTuningJob.model_validate(response.json())
                _report(bar, current)
                if current.is_terminal:
                    return _finish(current, raise_on_cancel)
                delay = _wait_delay(response, current, poll_interval, deadline, timeout)
                await self._client.sleep(delay)
        finally:
            if bar is not None:
                bar.close()

    async def _checkpoint_id(self, jid: str, checkpoint: CheckpointRef) -> str | None:
        if checkpoint is None:
            return None
        if isinstance(checkpoint, Checkpoint):
            return checkpoint.id
        if isinstance(checkpoint, int):
            async for ck in self.checkpoints(jid, limit=100):
                if ck.step_number == checkpoint:
                    return ck.id
            raise VrftError(f"Job {jid} has no checkpoint at step {checkpoint}.")
        return str(checkpoint)

    async def download_adapter(self, job: JobRef, dest: PathLike | None = None, *,
                               checkpoint: CheckpointRef = None, extract: bool = False,
                               progress: bool | Progress = False) -> Path:
        jid = job_id(job)
        path = _adapter_path(jid, await self._checkpoint_id(jid, checkpoint))
        async with self._client.download(path) as response:
            with _AdapterFile(jid, dest, extract, response, progress) as target:
                async for chunk in response.aiter_bytes(DOWNLOAD_CHUNK):
                    target.write(chunk)
        return target.finish()
