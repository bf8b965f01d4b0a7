"""A job's states, which moves between them are legal, and the codes a failed job reports.

One table for the API (cancel/pause/resume answer 409 outside it) and the worker side
(``lifecycle``'s conditional updates move a row only from the states listed here).
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
ACTIVE = frozenset(set(JobStatus) - TERMINAL)

# from → the states it may move to, and who moves it:
#   queued → running (a worker claims it), paused (the user, before it started), cancelled (the user),
#            failed (a worker that cannot start it);
#   running → succeeded | paused (the worker, at a step boundary), failed (the worker, or the reconciler
#             after too many lost workers), cancelled (the user), queued (the reconciler re-queues a job
#             whose worker went silent);
#   paused → queued (resume), cancelled.
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.PAUSED, JobStatus.CANCELLED, JobStatus.FAILED}),
    JobStatus.RUNNING: frozenset({JobStatus.SUCCEEDED, JobStatus.PAUSED, JobStatus.FAILED, JobStatus.CANCELLED,
                                  JobStatus.QUEUED}),
    JobStatus.PAUSED: frozenset({JobStatus.QUEUED, JobStatus.CANCELLED}),
    **{state: frozenset() for state in TERMINAL},
}


def can_move(current: str, target: JobStatus) -> bool:
    return target in TRANSITIONS[JobStatus(current)]


def sources(target: JobStatus) -> tuple[JobStatus, ...]:
    """Every state a job may reach ``target`` from (for ``WHERE status IN (...)``)."""
    return tuple(state for state, targets in TRANSITIONS.items() if target in targets)


class JobErrorCode(StrEnum):
    """What a failed job's ``error.code`` says (the README lists them)."""

    DATASET_INVALID = "dataset_invalid"  # a file is unreadable, or a row the trainer refuses
    MODEL_NOT_FOUND = "model_not_found"  # the base model is not configured or cannot be loaded
    OUT_OF_MEMORY = "out_of_memory"
    GRADER_ERROR = "grader_error"  # the grader itself failed (not a completion it could not parse)
    STORAGE_UNAVAILABLE = "storage_unavailable"
    INTERNAL = "internal"  # our bug, or a worker lost too many times
