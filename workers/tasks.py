"""Celery tasks: thin edges around ``workers.runner`` (which holds no Celery code)."""

from __future__ import annotations

from app.queue import RUN_JOB_TASK
from workers.celery_app import celery_app


@celery_app.task(name=RUN_JOB_TASK)
def run_job_task(job_id: str) -> str:
    from workers.runner import run_job

    return run_job(job_id)
