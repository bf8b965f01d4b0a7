"""The worker's side of a job's life on the test Postgres, without a worker process: claims,
ownership of every write, the attempt limit (the end-to-end tests in test_pipeline.py cover the
same rules through real processes, slowly)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.db import now
from app.jobs import lifecycle
from app.jobs.models import Checkpoint, Job, JobEvent, Rollout
from app.jobs.status import TERMINAL, TRANSITIONS, JobErrorCode, JobStatus, can_move, sources
from tests.factories import job_body, jsonl, upload, visual_rft_rows


@pytest.fixture
def job_id(api_client):
    fid = upload(api_client, jsonl(visual_rft_rows(4))).json()["id"]
    return api_client.post("/v1/fine_tuning/jobs", json=job_body(fid)).json()["id"]


def _row(db_session, job_id) -> Job:
    db_session.expire_all()
    return db_session.get(Job, job_id)


def _metric_steps(db_session, job_id) -> list[int]:
    return sorted(e.data["step"] for e in db_session.scalars(
        sa.select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.type == "metrics")))


def _write_all(db_session, job_id, worker, step) -> dict[str, object]:
    """Every write a worker makes during a run, as ``worker``; what each call answered."""
    return {
        "heartbeat": lifecycle.heartbeat(db_session, job_id, worker, step=step),
        "progress": lifecycle.record_progress(
            db_session, job_id, worker, step=step,
            events=[{"message": f"Step {step}", "type": "metrics", "data": {"step": step}}],
            rollouts=[(step, [{"prompt": "p", "completions": []}])]),
        "checkpoint": lifecycle.record_checkpoint(
            db_session, worker_id=worker, checkpoint_id=f"ftckpt-{worker}-{step}", job_id=job_id, step=step,
            storage_key="a.tar", state_key="s.tar", metrics={"step": step}),
        "eval": lifecycle.record_eval_metrics(db_session, job_id, worker, step, {"valid_reward_mean": 0.5}),
    }


def test_a_job_is_claimed_once(db_session, job_id):
    assert lifecycle.claim(db_session, job_id, "w1")
    assert not lifecycle.claim(db_session, job_id, "w2")  # a redelivered message: harmless
    job = _row(db_session, job_id)
    assert (job.status, job.worker_id, job.attempt) == (JobStatus.RUNNING, "w1", 1)


def test_a_worker_that_lost_its_job_writes_nothing(db_session, job_id):
    assert lifecycle.claim(db_session, job_id, "w1")
    assert all(_write_all(db_session, job_id, "w1", 1).values())
    # w1 goes silent; the reconciler hands the job on and w2 resumes it from step 1
    assert lifecycle.requeue_stale(db_session, stale_before=now() + 1, max_attempts=3) == [(job_id, JobStatus.QUEUED)]
    assert lifecycle.claim(db_session, job_id, "w2")
    assert lifecycle.forget_after(db_session, job_id, "w2", 1) == 0
    assert all(_write_all(db_session, job_id, "w2", 2).values())

    # w1 wakes up: every write answers "not yours" and leaves no trace
    before = (_metric_steps(db_session, job_id), db_session.scalar(sa.select(sa.func.count()).select_from(Rollout)
                                                                    .where(Rollout.job_id == job_id)))
    assert not any(_write_all(db_session, job_id, "w1", 3).values())
    assert lifecycle.forget_after(db_session, job_id, "w1", 0) is None  # would drop w2's step 2
    assert not lifecycle.finish(db_session, job_id, "w1", JobStatus.SUCCEEDED, finished_at=now())
    assert not lifecycle.fail(db_session, job_id, "w1", JobErrorCode.INTERNAL, "late")
    assert lifecycle.stop_reason(db_session, job_id, "w1") == "lost"
    after = (_metric_steps(db_session, job_id), db_session.scalar(sa.select(sa.func.count()).select_from(Rollout)
                                                                   .where(Rollout.job_id == job_id)))
    assert before == after == ([1, 2], 2)
    steps = db_session.scalars(sa.select(Checkpoint.step).where(Checkpoint.job_id == job_id)).all()
    assert sorted(steps) == [1, 2]
    job = _row(db_session, job_id)
    assert (job.status, job.worker_id, job.step) == (JobStatus.RUNNING, "w2", 2)


def test_a_cancelled_job_takes_no_more_writes(db_session, job_id, api_client):
    assert lifecycle.claim(db_session, job_id, "w1")
    assert api_client.post(f"/v1/fine_tuning/jobs/{job_id}/cancel").json()["status"] == "cancelled"
    assert lifecycle.stop_reason(db_session, job_id, "w1") == "cancel"
    assert not any(_write_all(db_session, job_id, "w1", 1).values())
    assert not lifecycle.finish(db_session, job_id, "w1", JobStatus.PAUSED, step=1)
    assert _row(db_session, job_id).status == JobStatus.CANCELLED and _metric_steps(db_session, job_id) == []


def test_the_attempt_limit_fails_the_job(db_session, job_id):
    for attempt in (1, 2):
        assert lifecycle.claim(db_session, job_id, f"w{attempt}")
        expected = JobStatus.QUEUED if attempt < 2 else JobStatus.FAILED
        assert lifecycle.requeue_stale(db_session, stale_before=now() + 1, max_attempts=2) == [(job_id, expected)]
    job = _row(db_session, job_id)
    assert job.status == JobStatus.FAILED and job.error_code == JobErrorCode.INTERNAL and job.finished_at
    assert "2 times" in job.error_message
    assert not lifecycle.claim(db_session, job_id, "w3")


def test_a_fresh_heartbeat_is_not_requeued(db_session, job_id):
    assert lifecycle.claim(db_session, job_id, "w1")
    assert lifecycle.requeue_stale(db_session, stale_before=now() - 60, max_attempts=3) == []


def test_a_worker_finishes_only_as_succeeded_or_paused(db_session, job_id):
    assert lifecycle.claim(db_session, job_id, "w1")
    with pytest.raises(ValueError):
        lifecycle.finish(db_session, job_id, "w1", JobStatus.FAILED)  # failing carries a code: fail()
    assert lifecycle.finish(db_session, job_id, "w1", JobStatus.PAUSED, step=0)
    assert _row(db_session, job_id).status == JobStatus.PAUSED


def test_the_transition_table():
    assert all(not TRANSITIONS[s] for s in TERMINAL)
    assert sources(JobStatus.RUNNING) == (JobStatus.QUEUED,)
    assert not can_move("succeeded", JobStatus.CANCELLED) and can_move("paused", JobStatus.QUEUED)
    assert set(sources(JobStatus.CANCELLED)) == set(JobStatus) - TERMINAL
