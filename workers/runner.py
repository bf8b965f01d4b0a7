"""``run_job(job_id)``: everything between "a worker heard of a job" and "the adapter is in storage".

Reads top to bottom: claim → fetch data → resolve settings → (resume?) → train with hooks → pack and
upload the adapter → mark succeeded. Every failure ends as ``failed`` with a specific code and a
message a user can act on; nothing leaves a job stuck in ``running`` (and if this process dies, the
reconciler notices the silent heartbeat).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import socket
import tempfile
import traceback
from pathlib import Path

import structlog

from app import catalog
from app.config import Settings, get_settings
from app.db import now, session_scope
from app.errors import ServiceError
from app.files.models import File
from app.jobs import lifecycle
from app.jobs.models import Job
from app.jobs.schemas import fine_tuned_model_name
from app.jobs.service import add_event
from app.storage import get_store
from workers.artifacts import StorageUnavailable, cached_dataset, download_folder, upload_folder
from workers.lease import Lease

log = logging.getLogger(__name__)


class JobFailure(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_job(job_id: str, worker_id: str | None = None, settings: Settings | None = None) -> str:
    """Run one job to an end state (or to a stop). Returns what happened, for logs and tests.

    Every line logged meanwhile in this thread carries the job's id (structlog contextvars)."""
    with structlog.contextvars.bound_contextvars(job_id=job_id):
        outcome = _run_job(job_id, worker_id, settings)
        structlog.get_logger(__name__).info("job.ended", outcome=outcome)
        return outcome


def _run_job(job_id: str, worker_id: str | None, settings: Settings | None) -> str:
    settings = settings or get_settings()
    worker_id = worker_id or worker_identity()
    with session_scope() as session:
        if not lifecycle.claim(session, job_id, worker_id):
            return "not-claimed"  # another delivery has it, or it was cancelled/paused meanwhile
        job = session.get(Job, job_id)
        add_event(session, job_id, f"Worker {worker_id} started attempt {job.attempt}")
    lease = Lease(job_id, worker_id, settings.heartbeat_interval_s)
    workdir = Path(tempfile.mkdtemp(prefix=f"vrft-{job_id}-", dir=_scratch(settings)))
    try:
        return _run_claimed(job_id, worker_id, settings, workdir, lease)
    except JobFailure as exc:
        _fail(job_id, worker_id, exc.code, exc.message)
        return f"failed:{exc.code}"
    except StorageUnavailable as exc:
        _fail(job_id, worker_id, "storage_unavailable", f"Object storage is unreachable: {exc}. Retry the job later.")
        return "failed:storage_unavailable"
    except Exception as exc:  # the last line of defence: never leave a job 'running'
        code, message = classify(exc)
        log.error("job.crashed job_id=%s code=%s\n%s", job_id, code, traceback.format_exc())
        _fail(job_id, worker_id, code, message)
        return f"failed:{code}"
    finally:
        lease.release()
        shutil.rmtree(workdir, ignore_errors=True)


def classify(exc: BaseException) -> tuple[str, str]:
    """Map an unexpected exception to the job error vocabulary."""
    text = str(exc)
    if type(exc).__name__ == "OutOfMemoryError" or "out of memory" in text.lower():
        return "out_of_memory", (f"The GPU ran out of memory: {text[:300]}. Lower batch_size, group_size, "
                                 "max_completion_tokens or max_pixels, or raise gradient_accumulation_steps.")
    if isinstance(exc, ServiceError) and exc.code.code == "storage_unavailable":
        return "storage_unavailable", f"Object storage is unreachable: {exc.message}"
    return "internal", f"Internal error while training ({type(exc).__name__}: {text[:500]}); it has been logged."


def _scratch(settings: Settings) -> Path:
    path = settings.data_dir / "work"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _fail(job_id: str, worker_id: str, code: str, message: str) -> None:
    with session_scope() as session:
        lifecycle.fail(session, job_id, worker_id, code, message)


def load_examples(store, settings: Settings, file: File) -> list[dict]:
    from app.datasets import iter_examples
    from app.files.service import dataset_limits

    try:
        path = cached_dataset(store, file.storage_key, file.id, settings.cache_dir)
    except FileNotFoundError as exc:
        raise JobFailure("dataset_invalid", f"File {file.id} is missing from storage; upload it again.") from exc
    try:
        examples = list(iter_examples(path, file.filename, limits=dataset_limits(settings)))
    except Exception as exc:
        raise JobFailure("dataset_invalid", f"File {file.id} could not be read: {exc}") from exc
    if not examples:
        raise JobFailure("dataset_invalid", f"File {file.id} has no valid rows.")
    return examples


def grader_task(grader: dict) -> str | None:
    return grader.get("task") if grader.get("type") == "visual_rft" else None


def train_config(job: Job, hp: dict, settings: Settings, workdir: Path, resume_from: Path | None):
    from workers.training.config import TrainConfig

    location = catalog.base_models(settings).get(job.model)
    if location is None:
        raise JobFailure("model_not_found", f"Base model {job.model!r} is no longer configured on this worker.")
    model = job.model if location.startswith("builtin:") else location
    batch = int(hp["batch_size"])
    accum = int(hp.get("gradient_accumulation_steps", 1))
    accum = accum if batch % accum == 0 else math.gcd(batch, accum)
    lora = hp.get("lora") or {}
    kwargs = dict(
        model=model, model_cache_dir=str(settings.cache_dir / "models"), output_dir=str(workdir / "out"),
        seed=int(job.seed), prompts_per_step=batch, grad_accum=accum, max_steps=int(hp["max_steps"]),
        group_size=int(hp["group_size"]), beta=float(hp["beta"]), loss_type=hp["loss_type"],
        scale_rewards=hp.get("scale_rewards", "group"), num_iterations=int(hp["num_iterations"]),
        temperature=float(hp["temperature"]), top_p=float(hp.get("top_p", 1.0)),
        max_completion_tokens=int(hp["max_completion_tokens"]), learning_rate=float(hp["learning_rate"]),
        lora_r=int(lora.get("r", 16)), lora_alpha=lora.get("alpha", 32), lora_dropout=float(lora.get("dropout", 0.05)),
        max_pixels=int(hp["max_pixels"]), min_pixels=int(hp["min_pixels"]),
        checkpoint_interval=int(hp["checkpoint_interval"]), eval_interval=int(hp["eval_interval"]),
        eval_samples=int(hp["eval_samples"]) or None,
        eval_task=grader_task(job.method["reinforcement"]["grader"]),
        resume_from=str(resume_from) if resume_from else None,
    )
    if lora.get("target_modules"):
        kwargs["lora_target_modules"] = tuple(lora["target_modules"])
    return TrainConfig(**kwargs)


def _model_folder(config, name: str) -> Path:
    from workers.training.tiny import resolve_model

    try:
        return resolve_model(config.model, config.model_cache_dir)
    except Exception as exc:
        where = "" if config.model == name else f" (configured as {config.model!r})"
        raise JobFailure("model_not_found", f"Base model {name!r}{where} is not available on this worker: {exc}. "
                         "Check VRFT_BASE_MODELS and the worker's model volume.") from exc


def _run_claimed(job_id: str, worker_id: str, settings: Settings, workdir: Path, lease: Lease) -> str:
    store = get_store()
    with session_scope() as session:
        job = session.get(Job, job_id)
        train_file = session.get(File, job.training_file_id)
        val_file = session.get(File, job.validation_file_id) if job.validation_file_id else None
        hp = dict(job.resolved_hyperparameters)
        ckpt = lifecycle.latest_checkpoint(session, job_id)
        session.expunge_all()

    train_data = load_examples(store, settings, train_file)
    val_data = load_examples(store, settings, val_file) if val_file else None
    if val_data and hp.get("eval_samples"):
        val_data = val_data[: int(hp["eval_samples"])]
    grader = job.method["reinforcement"]["grader"]

    if job.dry_run:
        from workers.dry_run import dry_run

        report = dry_run(job, hp, train_data, grader, settings, workdir)
        with session_scope() as session:
            if lifecycle.finish(session, job_id, worker_id, status="succeeded", dry_run_report=report,
                                finished_at=now()):
                add_event(session, job_id, "Dry run finished: " + report["summary"])
        return "dry-run"

    resume_from = None
    if ckpt is not None:
        resume_from = download_folder(store, ckpt.state_key, workdir / "resume")
        with session_scope() as session:
            dropped = lifecycle.forget_after(session, job_id, ckpt.step)
            lifecycle.heartbeat(session, job_id, worker_id, step=ckpt.step)
            add_event(session, job_id, f"Resuming from the checkpoint at step {ckpt.step}"
                      + (f" ({dropped} later step(s) that never reached a checkpoint are re-run)" if dropped else ""))

    config = train_config(job, hp, settings, workdir, resume_from)
    _model_folder(config, job.model)  # a missing base model fails the job as model_not_found, before any work
    from workers.job_hooks import JobHooks

    hooks = JobHooks(
        job_id=job_id, project_id=job.project_id, worker_id=worker_id, lease=lease, store=store, settings=settings,
        examples={str(e["id"]): e for e in train_data}, total_steps=config.max_steps,
        completions_per_step=config.prompts_per_step * config.group_size,
        grader=grader,
    )
    if resume_from is not None:  # count on from where the previous attempt got to
        hooks.trained_tokens = job.trained_tokens or 0
    result = _train(config, train_data, val_data, grader, hooks)
    hooks.flush()

    if result.stopped == "cancel" or hooks.lost:
        return "stopped"
    if result.stopped == "pause":
        with session_scope() as session:
            if lifecycle.finish(session, job_id, worker_id, status="paused", step=result.steps):
                add_event(session, job_id, f"Job paused at step {result.steps}; resume continues from here")
        return "paused"

    key = f"{job.project_id}/{job_id}/final/adapter.tar"
    upload_folder(store, result.adapter_dir, key)
    with session_scope() as session:
        done = lifecycle.finish(
            session, job_id, worker_id, status="succeeded", adapter_key=key, finished_at=now(),
            fine_tuned_model=fine_tuned_model_name(job), step=result.steps, trained_tokens=hooks.trained_tokens,
            estimated_finish=None)
        if done:
            add_event(session, job_id, f"Training finished: {result.steps} steps; adapter uploaded")
            add_event(session, job_id, "The job has successfully completed")
    return "succeeded" if done else "stopped"


def _train(config, train_data, val_data, grader, hooks):
    from workers.training.grpo import train

    try:
        return train(config, train_data, val_data, grader, hooks)
    except (StorageUnavailable, JobFailure):
        raise
    except Exception as exc:
        code, message = classify(exc)
        if code == "internal" and _is_grader_error(exc):
            raise JobFailure("grader_error", f"The grader failed: {exc}") from exc
        if code != "internal":
            raise JobFailure(code, message) from exc
        if isinstance(exc, (OSError, ValueError)) and "config" in str(exc).lower():
            raise JobFailure("model_not_found", f"Could not load the base model: {exc}") from exc
        raise


def _is_grader_error(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        if "app/graders" in tb.tb_frame.f_code.co_filename.replace("\\", "/"):
            return True
        tb = tb.tb_next
    return False
