"""A per-process cache for the job-status hot path: dashboards and `wait()` loops poll
``GET /v1/fine_tuning/jobs/{id}``.

Each rendered job is kept per process for a fraction of the poll interval the server itself asks
clients to use (``X-Poll-After-Ms``), so a hundred clients watching one job cost one query per
interval instead of a hundred. Writes through this process (cancel, pause, resume) invalidate at
once; the worker's progress shows up within ``ttl`` — well inside the poll hint.

Queue positions are computed for all queued jobs at once, at most once per ``ttl``, instead of a
COUNT per request.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import orjson
import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.jobs.models import Job
from app.jobs.status import JobStatus


@dataclass(frozen=True)
class View:
    project_id: str
    body: bytes
    headers: dict[str, str]
    expires: float


class JobCache:
    def __init__(self, ttl_s: float):
        self.ttl_s = ttl_s
        self._views: dict[str, View] = {}
        self._positions: tuple[float, dict[str, int]] = (0.0, {})
        self._reloading: set[str] = set()
        self._generation: dict[str, int] = {}  # bumped by invalidate: a load that began before is stale
        self._lock = threading.Lock()

    def get(self, job_id: str, project_id: str) -> View | None:
        """A fresh view; or, when it just expired and another request is already reloading it, the
        previous one (one reload per job at a time, not a stampede of a hundred)."""
        view = self._views.get(job_id)
        if view is None or view.project_id != project_id:
            return None
        if view.expires >= time.monotonic():
            return view
        with self._lock:
            if job_id in self._reloading:
                return view
            self._reloading.add(job_id)
        return None

    def generation(self, job_id: str) -> int:
        return self._generation.get(job_id, 0)

    def put(self, job_id: str, project_id: str, body: dict, headers: dict[str, str], generation: int) -> View:
        view = View(project_id, orjson.dumps(body), headers, time.monotonic() + self.ttl_s)
        with self._lock:
            self._reloading.discard(job_id)
            if generation != self._generation.get(job_id, 0):
                return view  # a write landed while we read: answer, but don't keep the old state
            if len(self._views) > 50_000:
                self._views.clear()
            self._views[job_id] = view
        return view

    def reload_failed(self, job_id: str) -> None:
        with self._lock:
            self._reloading.discard(job_id)

    def invalidate(self, job_id: str) -> None:
        with self._lock:
            self._views.pop(job_id, None)
            self._reloading.discard(job_id)
            self._generation[job_id] = self._generation.get(job_id, 0) + 1
            self._positions = (0.0, {})

    def queue_position(self, session: Session, job: Job) -> int | None:
        """The job's 1-based place among all queued jobs of every project (they share the GPUs); the
        one place a queue position is computed."""
        if job.status != JobStatus.QUEUED:
            return None
        stamp, positions = self._positions
        if stamp < time.monotonic() or job.id not in positions:
            ids = session.scalars(sa.select(Job.id).where(Job.status == JobStatus.QUEUED)
                                  .order_by(Job.enqueued_at, Job.id))
            positions = {jid: i + 1 for i, jid in enumerate(ids)}
            self._positions = (time.monotonic() + self.ttl_s, positions)
        return positions.get(job.id)


_cache: JobCache | None = None


def job_cache() -> JobCache:
    global _cache
    if _cache is None:
        from app.config import get_settings

        _cache = JobCache(ttl_s=min(1.0, get_settings().poll_interval_ms / 4000))
    return _cache
