"""Hand a job to the workers *by task name* — the API never imports the worker code (or torch).

With a broker, the job goes to Celery's ``gpu`` queue. Without one (embedded mode) the embedded
worker polls the database for ``queued`` rows, so there is nothing to send. Either way Postgres is the
truth: a message the broker loses is re-sent by the reconciler.
"""

from __future__ import annotations

from functools import lru_cache

import structlog

from app.config import Settings

log = structlog.get_logger(__name__)

RUN_JOB_TASK = "vrft.run_job"
GPU_QUEUE = "gpu"


@lru_cache
def _celery(broker_url: str):
    from celery import Celery

    client = Celery("vrft-api", broker=broker_url)
    client.conf.broker_connection_retry_on_startup = False
    client.conf.broker_transport_options = {"max_retries": 1}
    return client


def enqueue_job(job_id: str, settings: Settings) -> bool:
    """True if a message was sent; False when embedded or the broker is down (the reconciler retries)."""
    if not settings.broker_url:
        return False
    try:
        _celery(settings.broker_url).send_task(RUN_JOB_TASK, args=[job_id], queue=GPU_QUEUE)
        return True
    except Exception as exc:  # the row is committed; losing the message only delays the job
        log.warning("job.enqueue_failed", job_id=job_id, error=str(exc))
        return False


def ping_broker(settings: Settings) -> None:
    if not settings.broker_url:
        return
    import redis

    redis.Redis.from_url(settings.broker_url, socket_connect_timeout=2, socket_timeout=2).ping()
