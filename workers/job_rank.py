"""``python -m workers.job_rank JOB_ID``: one rank of a job a host agent (workers/agent.py) runs
under torchrun, on the devices the agent gave it (``CUDA_VISIBLE_DEVICES``; gloo on CPU).

The agent has claimed the job as ``VRFT_WORKER_ID``. Rank 0 runs the job's pipeline
(``runner.run_claimed``: data, resume, hooks, checkpoints, adapter upload, the end state) and, once
the job's inputs have passed their checks, broadcasts the checkpoint it resumes from; the other ranks
wait for that and train on the same data, config and state (``runner.follow``), writing nothing to the
database. When rank 0 finds nothing to train (the job failed a check, or is not ours any more) it
says so and every rank leaves cleanly.

Exit status: 0 when this rank's part ended as planned. Non-zero when it failed while the others may be
waiting in a collective — torchrun then stops every rank. A failing rank other than 0 writes what
failed (``{"code", "message"}``) to ``VRFT_RANK_NOTES/rank-<r>.json``: the agent fails the job with
it, where a rank that simply died (no note) sends the job back to the queue to resume. Rank 0 fails
the job itself for every named failure; an unnamed error mid-training (a peer's death looks like a
broken collective) it leaves to the agent, which knows whether a rank died.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import structlog

from app.config import get_settings
from app.logging_setup import configure_logging
from workers.runner import failure_of, follow, run_claimed

log = structlog.get_logger("vrft.rank")

NOTHING_TO_TRAIN = {"train": False}


def main(argv: list[str] | None = None) -> int:
    from workers.training import distributed

    (job_id,) = sys.argv[1:] if argv is None else argv
    settings = get_settings()
    configure_logging(settings)
    world = distributed.init_from_env()
    with structlog.contextvars.bound_contextvars(job_id=job_id, rank=world.rank):
        if world.is_main:
            status = _main_rank(job_id, settings, world.size)
        else:
            status = _other_rank(job_id, settings, world.rank)
    distributed.shutdown()
    return status


def _main_rank(job_id: str, settings, world_size: int) -> int:
    from workers.training import distributed

    shared = False

    def ready(state_key: str | None) -> None:
        nonlocal shared
        shared = True
        distributed.broadcast({"train": True, "state_key": state_key})

    if world_size == 1:  # nobody to tell: the job runs exactly as under run_job
        outcome = run_claimed(job_id, os.environ["VRFT_WORKER_ID"], settings)
        log.info("job.ended", outcome=outcome)
        return 0
    try:
        outcome = run_claimed(job_id, os.environ["VRFT_WORKER_ID"], settings, ready=ready)
    except Exception:  # mid-training, unnamed: perhaps another rank died; the agent settles the job
        log.error("rank.failed", exc_info=True)
        return 1
    log.info("job.ended", outcome=outcome)
    if not shared:
        distributed.broadcast(NOTHING_TO_TRAIN)
        return 0
    return 1 if outcome.startswith("failed") else 0


def _other_rank(job_id: str, settings, rank: int) -> int:
    from workers.training import distributed

    plan = distributed.broadcast(None)
    if not plan["train"]:
        return 0
    try:
        follow(job_id, settings, plan["state_key"])
    except Exception as exc:
        code, message = failure_of(exc)
        notes = os.environ.get("VRFT_RANK_NOTES")
        if notes:
            Path(notes, f"rank-{rank}.json").write_text(json.dumps({"code": str(code), "message": message}))
        log.warning("rank.failed", code=str(code), message=message)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
