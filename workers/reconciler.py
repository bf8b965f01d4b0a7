"""Postgres is the truth; the broker is a doorbell. The reconciler makes the two agree:

- ``running`` jobs whose heartbeat went stale (the worker died) go back to ``queued`` to resume from
  their last checkpoint, a bounded number of times, then ``failed``;
- ``queued`` jobs that have waited longer than ``lost_after_s`` are re-sent to the broker (a flushed
  Redis, or an enqueue that failed after the commit). A duplicate message is harmless: the claim is
  a conditional UPDATE and only one delivery wins.
"""

from __future__ import annotations

import threading

import structlog

from app.config import Settings
from app.db import now, session_scope
from app.jobs import lifecycle
from app.jobs.status import JobStatus
from app.queue import enqueue_job

log = structlog.get_logger(__name__)


def reconcile_once(settings: Settings, *, resend_queued: bool, lost_after_s: float = 30.0,
                   last_sent: dict[str, float] | None = None) -> dict:
    """One pass. ``last_sent`` (job id → time) keeps a waiting job from being re-sent every tick."""
    last_sent = {} if last_sent is None else last_sent
    with session_scope() as session:
        changed = lifecycle.requeue_stale(session, stale_before=now() - settings.heartbeat_stale_s,
                                          max_attempts=settings.max_job_attempts)
    for job_id, status in changed:
        log.warning("job.reconciled", job_id=job_id, status=status)
    resent = []
    if resend_queued:
        ts = now()
        with session_scope() as session:
            waiting = lifecycle.queued_jobs(session, enqueued_before=ts - lost_after_s)
        for job_id in waiting:
            if ts - last_sent.get(job_id, 0.0) >= lost_after_s and enqueue_job(job_id, settings):
                last_sent[job_id] = ts
                resent.append(job_id)
        for job_id in set(last_sent) - set(waiting):
            del last_sent[job_id]
        for job_id, status in changed:
            if status == JobStatus.QUEUED and enqueue_job(job_id, settings):
                last_sent[job_id] = ts
    return {"changed": changed, "resent": resent}


class ReconcilerThread(threading.Thread):
    def __init__(self, settings: Settings, *, interval_s: float = 5.0, resend_queued: bool = True,
                 lost_after_s: float = 30.0):
        super().__init__(name="vrft-reconciler", daemon=True)
        self.settings, self.interval_s = settings, interval_s
        self.resend_queued, self.lost_after_s = resend_queued, lost_after_s
        self.stop_event = threading.Event()
        self.last_sent: dict[str, float] = {}

    def run(self) -> None:
        while not self.stop_event.wait(self.interval_s):
            try:
                reconcile_once(self.settings, resend_queued=self.resend_queued, lost_after_s=self.lost_after_s,
                               last_sent=self.last_sent)
            except Exception as exc:  # a database blip: try again next tick
                log.warning("reconciler.tick_failed", error=str(exc))

    def stop(self) -> None:
        self.stop_event.set()


def main() -> int:
    """``python -m workers.reconciler``: the loop as its own process (vrft-worker starts one).

    Not a thread inside the Celery parent: the pool forks children from that process, and a fork
    taken while another thread holds a lock (a DB pool's, a socket's) leaves the child deadlocked.
    """
    import signal

    from app.config import get_settings
    from app.logging_setup import configure_logging

    settings = get_settings()
    configure_logging(settings)
    thread = ReconcilerThread(settings, interval_s=settings.reconcile_interval_s,
                              lost_after_s=settings.lost_message_after_s)
    signal.signal(signal.SIGTERM, lambda *_: thread.stop())
    signal.signal(signal.SIGINT, lambda *_: thread.stop())
    thread.start()
    while thread.is_alive():
        thread.join(timeout=1.0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
