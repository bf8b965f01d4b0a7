"""The embedded worker (``python -m workers.embedded``): no broker, the jobs table is the queue.

Started by ``vrft-server serve`` when ``VRFT_BROKER_URL`` is unset. Same ``run_job`` as a Celery
worker; the reconciler runs in the same loop, so a job interrupted by a restart resumes.
"""

from __future__ import annotations

import os
import signal
import threading

import structlog

from app.config import get_settings
from app.db import session_scope
from app.jobs import lifecycle
from app.logging_setup import configure_logging
from workers.reconciler import reconcile_once
from workers.runner import run_job, worker_identity

log = structlog.get_logger("vrft.embedded")


def main() -> int:
    settings = get_settings()
    configure_logging(settings)
    stop = threading.Event()
    busy = threading.Event()
    parent = os.getppid()

    def on_signal(*_):
        stop.set()
        if busy.is_set():
            # Mid-job: leave now. The job keeps its last checkpoint; its heartbeat goes stale and the
            # reconciler (ours, at the next start) re-queues it to resume — the same path as a crash.
            raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    worker_id = worker_identity()
    _adopt_orphans(settings)
    log.info("embedded.started", worker_id=worker_id)
    while not stop.is_set():
        if os.getppid() != parent:  # the server died without stopping us: don't outlive it
            log.info("embedded.parent_gone")
            break
        try:
            reconcile_once(settings, resend_queued=False)
            with session_scope() as session:
                queued = lifecycle.next_queued(session)  # one-device jobs: more is a host agent's (workers/agent.py)
        except Exception as exc:  # database not ready yet, or a blip
            log.warning("embedded.poll_failed", error=str(exc))
            stop.wait(2.0)
            continue
        if queued is None:
            stop.wait(0.5)
            continue
        job_id, _ = queued
        busy.set()
        try:
            run_job(job_id, worker_id, settings)  # it logs job.ended with the outcome
        finally:
            busy.clear()
    return 0


def _adopt_orphans(settings) -> None:
    """The embedded worker is the only worker of its database: a job still 'running' at start-up
    belonged to a previous run of this server. Re-queue it now (it resumes from its checkpoint)
    rather than waiting out the heartbeat timeout."""
    from app.db import now

    try:
        with session_scope() as session:
            for job_id, status in lifecycle.requeue_stale(session, stale_before=now() + 1,
                                                          max_attempts=settings.max_job_attempts):
                log.info("job.adopted", job_id=job_id, status=status)
    except Exception as exc:  # no tables yet (first start): nothing to adopt
        log.warning("embedded.adopt_failed", error=str(exc))


if __name__ == "__main__":
    raise SystemExit(main())
