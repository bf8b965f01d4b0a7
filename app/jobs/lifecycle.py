"""The worker's side of a job's life, as conditional updates (no torch here; the reconciler and the
embedded worker use these too).

Claim, then work: a job is ours only if our UPDATE moved it out of ``queued``; every later write is
conditional on ``status='running' AND worker_id=<us>``, so a worker that lost its lease (the
reconciler gave the job to someone else, or the user cancelled) cannot overwrite anything.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.db import now
from app.jobs.models import Checkpoint, Job, JobEvent, Rollout
from app.jobs.service import add_event


def claim(session: Session, job_id: str, worker_id: str) -> bool:
    ts = now()
    result = session.execute(
        sa.update(Job)
        .where(Job.id == job_id, Job.status == "queued")
        .values(status="running", attempt=Job.attempt + 1, worker_id=worker_id, heartbeat_at=ts,
                started_at=sa.func.coalesce(Job.started_at, ts), control_request=None)
    )
    return result.rowcount == 1


def next_queued(session: Session) -> str | None:
    """Oldest queued job (the embedded worker's queue is the table itself)."""
    return session.scalar(sa.select(Job.id).where(Job.status == "queued").order_by(Job.enqueued_at, Job.id).limit(1))


def _ours(job_id: str, worker_id: str):
    return sa.and_(Job.id == job_id, Job.status == "running", Job.worker_id == worker_id)


def heartbeat(session: Session, job_id: str, worker_id: str, **values) -> bool:
    """Renew the lease (and write progress); False means the job is no longer ours."""
    result = session.execute(sa.update(Job).where(_ours(job_id, worker_id)).values(heartbeat_at=now(), **values))
    return result.rowcount == 1


def stop_reason(session: Session, job_id: str, worker_id: str) -> str | None:
    """None to go on; "cancel" / "pause" as the user asked; "lost" when the job is not ours any more."""
    row = session.execute(
        sa.select(Job.status, Job.worker_id, Job.control_request).where(Job.id == job_id)
    ).first()
    if row is None or row.status == "cancelled":
        return "cancel"
    if row.status != "running" or row.worker_id != worker_id:
        return "lost"
    if row.control_request == "pause":
        return "pause"
    return None


def finish(session: Session, job_id: str, worker_id: str, **values) -> bool:
    result = session.execute(sa.update(Job).where(_ours(job_id, worker_id))
                             .values(heartbeat_at=now(), control_request=None, **values))
    return result.rowcount == 1


def fail(session: Session, job_id: str, worker_id: str | None, code: str, message: str) -> bool:
    cond = Job.id == job_id
    cond = sa.and_(cond, Job.status == "running", Job.worker_id == worker_id) if worker_id else \
        sa.and_(cond, Job.status.in_(("queued", "running")))
    result = session.execute(sa.update(Job).where(cond).values(
        status="failed", error_code=code, error_message=message[:4000], finished_at=now(), control_request=None))
    if result.rowcount:
        add_event(session, job_id, f"Job failed ({code}): {message}", level="error")
    return result.rowcount == 1


def latest_checkpoint(session: Session, job_id: str) -> Checkpoint | None:
    return session.scalar(sa.select(Checkpoint).where(Checkpoint.job_id == job_id, Checkpoint.state_key.is_not(None))
                          .order_by(Checkpoint.step.desc()).limit(1))


def forget_after(session: Session, job_id: str, step: int) -> int:
    """Drop metrics and rollouts of steps after ``step``: a lost worker's steps that never reached a
    checkpoint are re-run, and the log must not show a step twice."""
    step_of = JobEvent.data["step"].as_integer()
    removed = session.execute(sa.delete(JobEvent).where(
        JobEvent.job_id == job_id, JobEvent.type == "metrics", step_of > step)).rowcount or 0
    session.execute(sa.delete(Rollout).where(Rollout.job_id == job_id, Rollout.step > step))
    return removed


def requeue_stale(session: Session, *, stale_before: float, max_attempts: int) -> list[tuple[str, str]]:
    """Running jobs whose heartbeat stopped: back to ``queued`` (resume from the last checkpoint) while
    attempts remain, else ``failed``. Returns [(job_id, new_status)]."""
    stale = session.execute(
        sa.select(Job.id, Job.attempt).where(Job.status == "running", Job.heartbeat_at < stale_before)
        .with_for_update(skip_locked=True)
    ).all()
    changed = []
    for job_id, attempt in stale:
        if attempt >= max_attempts:
            session.execute(sa.update(Job).where(Job.id == job_id, Job.status == "running").values(
                status="failed", error_code="internal", finished_at=now(),
                error_message=f"The worker stopped responding {attempt} times; giving up."))
            add_event(session, job_id, f"Worker lost {attempt} times; job failed", level="error")
            changed.append((job_id, "failed"))
        else:
            session.execute(sa.update(Job).where(Job.id == job_id, Job.status == "running").values(
                status="queued", worker_id=None, enqueued_at=now()))
            add_event(session, job_id, "Worker stopped responding; job re-queued to resume from its last checkpoint",
                      level="warn")
            changed.append((job_id, "queued"))
    return changed


def queued_jobs(session: Session, *, enqueued_before: float) -> list[str]:
    return list(session.scalars(sa.select(Job.id).where(Job.status == "queued", Job.enqueued_at < enqueued_before)))


def add_rollouts(session: Session, job_id: str, step: int, rollouts: list[dict]) -> None:
    session.add_all([Rollout(job_id=job_id, step=step, data=r) for r in rollouts])


def record_checkpoint(session: Session, *, checkpoint_id: str, job_id: str, step: int, storage_key: str,
                      state_key: str | None, metrics: dict) -> None:
    existing = session.scalar(sa.select(Checkpoint).where(Checkpoint.job_id == job_id, Checkpoint.step == step))
    if existing is not None:  # a resumed run reached the same step again: keep one row, newest files
        existing.storage_key, existing.state_key, existing.metrics = storage_key, state_key, metrics
        return
    session.add(Checkpoint(id=checkpoint_id, job_id=job_id, step=step, storage_key=storage_key,
                           state_key=state_key, metrics=metrics))
