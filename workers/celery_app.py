"""Celery for the GPU workers: Redis broker, one ``gpu`` queue, at-least-once delivery.

``acks_late`` + ``reject_on_worker_lost`` make a task whose worker died go back to the queue; the two
restore options make kombu look for such tasks every 2 s instead of every ~100 s. A job longer than
the visibility timeout would be delivered twice — the Postgres claim makes the second a no-op.
No result backend: Postgres holds every job's state.
"""

from __future__ import annotations

import logging

from celery import Celery
from celery.signals import setup_logging, worker_process_init

from app.config import get_settings
from app.queue import GPU_QUEUE, RUN_JOB_TASK


def make_celery() -> Celery:
    settings = get_settings()
    app = Celery("vrft", broker=settings.broker_url or "redis://127.0.0.1:6379/0", include=["workers.tasks"])
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_concurrency=1,  # one process per GPU; vrft-worker --gpus starts one worker per device
        task_default_queue=GPU_QUEUE,
        task_routes={RUN_JOB_TASK: {"queue": GPU_QUEUE}},
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": settings.longest_job_s + 3600,
            "unacked_restore_interval": 2,
            "unacked_restore_throttle": 1,
        },
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return app


celery_app = make_celery()


@setup_logging.connect
def _vrft_logging(loglevel: int | str | None = None, **_kwargs) -> None:
    """Connected, this replaces Celery's own logging set-up: its records go through ours, at the
    level ``vrft-worker --loglevel`` gave."""
    from app.logging_setup import configure_logging

    configure_logging(level=logging.getLevelName(loglevel) if isinstance(loglevel, int) else loglevel)


@worker_process_init.connect
def _fresh_connections_after_fork(**_kwargs) -> None:
    """A forked child must not reuse the parent's pooled Postgres connections (the reconciler's)."""
    from app.db import get_engine

    get_engine().dispose(close=False)
