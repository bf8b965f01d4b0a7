"""The worker's side of a job's life, as conditional updates (no torch here; the reconciler and the
embedded worker use these too).

Claim, then work: a job is ours only if our UPDATE moved it out of ``queued``; every later write —
progress, events, rollouts, checkpoint rows, evaluation metrics, the end state — is conditional on
``status='running' AND worker_id=<us>``, so a worker that lost its lease (the reconciler gave the
job to someone else, or the user cancelled) cannot overwrite anything. Writes other than a status
change start with that check as an UPDATE (``heartbeat``): it locks the job's row until the
transaction commits, so the job cannot change hands between the check and the write.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.db import now
from app.jobs.models import Checkpoint, Job, JobEvent, Rollout
from app.jobs.service import add_event
from app.jobs.status import JobErrorCode, JobStatus, sources


def claim(session: Session, job_id: str, worker_id: str, *, max_gpus: int = 1) -> bool:
    """``max_gpus``: the devices this worker can give the job now (a job asking for more stays queued)."""
    ts = now()
    result = session.execute(
        sa.update(Job)
        .where(Job.id == job_id, Job.status.in_(sources(JobStatus.RUNNING)), Job.gpus <= max_gpus)
        .values(status=JobStatus.RUNNING, attempt=Job.attempt + 1, worker_id=worker_id, heartbeat_at=ts,
                started_at=sa.func.coalesce(Job.started_at, ts), control_request=None)
    )
    return result.rowcount == 1


def next_queued(session: Session, *, max_gpus: int = 1) -> tuple[str, int] | None:
    """(id, gpus) of the oldest queued job that asks for at most ``max_gpus`` devices (the embedded
    worker's and the host agents' queue is the table itself)."""
    row = session.execute(sa.select(Job.id, Job.gpus).where(Job.status == JobStatus.QUEUED, Job.gpus <= max_gpus)
                          .order_by(Job.enqueued_at, Job.id).limit(1)).first()
    return (row.id, row.gpus) if row else None


def _ours(job_id: str, worker_id: str):
    return sa.and_(Job.id == job_id, Job.status == JobStatus.RUNNING, Job.worker_id == worker_id)


def heartbeat(session: Session, job_id: str, worker_id: str, **values) -> bool:
    """Renew the lease (and write progress); False means the job is no longer ours."""
    result = session.execute(sa.update(Job).where(_ours(job_id, worker_id)).values(heartbeat_at=now(), **values))
    return result.rowcount == 1


def stop_reason(session: Session, job_id: str, worker_id: str) -> str | None:
    """None to go on; "cancel" / "pause" as the user asked; "lost" when the job is not ours any more."""
    row = session.execute(
        sa.select(Job.status, Job.worker_id, Job.control_request).where(Job.id == job_id)
    ).first()
    if row is None or row.status == JobStatus.CANCELLED:
        return "cancel"
    if row.status != JobStatus.RUNNING or row.worker_id != worker_id:
        return "lost"
    if row.control_request == "pause":
        return "pause"
    return None


def finish(session: Session, job_id: str, worker_id: str, status: JobStatus, **values) -> bool:
    """The worker's end of a run: ``succeeded``, or ``paused`` at a checkpoint."""
    if status not in (JobStatus.SUCCEEDED, JobStatus.PAUSED):  # failing is ``fail``'s, with a code
        raise ValueError(f"a worker does not finish a job as {status!r}")
    result = session.execute(sa.update(Job).where(_ours(job_id, worker_id))
                             .values(status=status, heartbeat_at=now(), control_request=None, **values))
    return result.rowcount == 1


def fail(session: Session, job_id: str, worker_id: str | None, code: JobErrorCode, message: str) -> bool:
    """``worker_id`` None: a job no worker holds (one that could not even be started)."""
    cond = _ours(job_id, worker_id) if worker_id else \
        sa.and_(Job.id == job_id, Job.status.in_(sources(JobStatus.FAILED)))
    result = session.execute(sa.update(Job).where(cond).values(
        status=JobStatus.FAILED, error_code=JobErrorCode(code), error_message=message[:4000], finished_at=now(),
        control_request=None))
    if result.rowcount:
        add_event(session, job_id, f"Job failed ({code}): {message}", level="error")
    return result.rowcount == 1


def latest_checkpoint(session: Session, job_id: str) -> Checkpoint | None:
    return session.scalar(sa.select(Checkpoint).where(Checkpoint.job_id == job_id, Checkpoint.state_key.is_not(None))
                          .order_by(Checkpoint.step.desc()).limit(1))


def forget_after(session: Session, job_id: str, worker_id: str, step: int) -> int | None:
    """Drop metrics and rollouts of steps after ``step``: a lost worker's steps that never reached a
    checkpoint are re-run, and the log must not show a step twice. None: not ours, nothing dropped."""
    if not heartbeat(session, job_id, worker_id, step=step):
        return None
    step_of = JobEvent.data["step"].as_integer()
    removed = session.execute(sa.delete(JobEvent).where(
        JobEvent.job_id == job_id, JobEvent.type == "metrics", step_of > step)).rowcount or 0
    session.execute(sa.delete(Rollout).where(Rollout.job_id == job_id, Rollout.step > step))
    return removed


def requeue_stale(session: Session, *, stale_before: float, max_attempts: int) -> list[tuple[str, JobStatus]]:
    """Running jobs whose heartbeat stopped: back to ``queued`` (resume from the last checkpoint) while
    attempts remain, else ``failed``. Returns [(job_id, new_status)]."""
    stale = session.execute(
        sa.select(Job.id, Job.attempt).where(Job.status == JobStatus.RUNNING, Job.heartbeat_at < stale_before)
        .with_for_update(skip_locked=True)
    ).all()
    return [(job_id, _requeue_or_fail(session, sa.and_(Job.id == job_id, Job.status == JobStatus.RUNNING),
                                      job_id, attempt, max_attempts, "Worker stopped responding"))
            for job_id, attempt in stale]


def requeue_crashed(session: Session, job_id: str, worker_id: str, *, max_attempts: int, why: str) -> JobStatus | None:
    """A job whose processes died under a worker that lives on (a host agent's ranks): the same as a
    silent heartbeat, without waiting for it to go stale. None: the job was not ours any more."""
    attempt = session.scalar(sa.select(Job.attempt).where(_ours(job_id, worker_id)).with_for_update())
    if attempt is None:
        return None
    return _requeue_or_fail(session, _ours(job_id, worker_id), job_id, attempt, max_attempts, why)


def _requeue_or_fail(session: Session, cond, job_id: str, attempt: int, max_attempts: int, why: str) -> JobStatus:
    """Back to ``queued`` (resume from the last checkpoint) while attempts remain, else ``failed``."""
    if attempt >= max_attempts:
        session.execute(sa.update(Job).where(cond).values(
            status=JobStatus.FAILED, error_code=JobErrorCode.INTERNAL, finished_at=now(),
            error_message=f"{why}, {attempt} times; giving up."))
        add_event(session, job_id, f"{why}, {attempt} times; job failed", level="error")
        return JobStatus.FAILED
    session.execute(sa.update(Job).where(cond).values(status=JobStatus.QUEUED, worker_id=None, enqueued_at=now()))
    add_event(session, job_id, f"{why}; job re-queued to resume from its last checkpoint", level="warn")
    return JobStatus.QUEUED


def queued_jobs(session: Session, *, enqueued_before: float) -> list[str]:
    """Queued one-device jobs (what a broker's workers run) waiting since before ``enqueued_before``."""
    return list(session.scalars(sa.select(Job.id).where(Job.status == JobStatus.QUEUED, Job.gpus == 1,
                                                        Job.enqueued_at < enqueued_before)))


def record_progress(session: Session, job_id: str, worker_id: str, *, events: list[dict],
                    rollouts: list[tuple[int, list[dict]]], **progress) -> bool:
    """Buffered metrics events and rollouts plus the progress fields, in one owned transaction."""
    if not heartbeat(session, job_id, worker_id, **progress):
        return False
    for ev in events:
        add_event(session, job_id, ev["message"], type=ev["type"], data=ev["data"])
    session.add_all([Rollout(job_id=job_id, step=step, data=r) for step, rows in rollouts for r in rows])
    return True


def record_checkpoint(session: Session, *, worker_id: str, checkpoint_id: str, job_id: str, step: int,
                      storage_key: str, state_key: str | None, metrics: dict) -> bool:
    if not heartbeat(session, job_id, worker_id):
        return False
    existing = session.scalar(sa.select(Checkpoint).where(Checkpoint.job_id == job_id, Checkpoint.step == step))
    if existing is not None:  # a resumed run reached the same step again: keep one row, newest files
        existing.storage_key, existing.state_key, existing.metrics = storage_key, state_key, metrics
    else:
        session.add(Checkpoint(id=checkpoint_id, job_id=job_id, step=step, storage_key=storage_key,
                               state_key=state_key, metrics=metrics))
    add_event(session, job_id, f"Checkpoint saved at step {step}")
    return True


def record_eval_metrics(session: Session, job_id: str, worker_id: str, step: int, metrics: dict) -> bool:
    """Merge an evaluation's ``valid_*`` figures into the checkpoint of that step, if there is one."""
    if not heartbeat(session, job_id, worker_id):
        return False
    ck = session.scalar(sa.select(Checkpoint).where(Checkpoint.job_id == job_id, Checkpoint.step == step))
    if ck is not None:
        ck.metrics = {**(ck.metrics or {}), **metrics}
    return True
