"""A job's lease: the heartbeat that tells the reconciler this worker is alive.

It starts the moment the job is claimed — before the minutes a big model can take to load — and
runs in its own thread, so neither a long load nor a long step looks like a dead worker.
"""

from __future__ import annotations

import threading

import structlog

from app.db import session_scope
from app.jobs import lifecycle

log = structlog.get_logger(__name__)


class Lease:
    def __init__(self, job_id: str, worker_id: str, interval_s: float):
        self.job_id, self.worker_id, self.interval_s = job_id, worker_id, interval_s
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"lease-{job_id}", daemon=True)
        self._thread.start()

    def renew(self, **progress) -> bool:
        with session_scope() as session:
            if not lifecycle.heartbeat(session, self.job_id, self.worker_id, **progress):
                self.lost = True
        return not self.lost

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.renew()
            except Exception as exc:  # a DB blip must not kill training; the next beat retries
                log.warning("lease.renew_failed", job_id=self.job_id, error=str(exc))

    def release(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
