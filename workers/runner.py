"""``run_job(job_id)``: everything between "a worker heard of a job" and "the adapter is in storage".

Reads top to bottom: claim → fetch data → the job's TrainConfig (``workers.train_config``) →
(resume?) → train with hooks → pack and upload the adapter → mark succeeded. Every failure ends as
``failed`` with a ``JobErrorCode`` and a message a user can act on: the trainer names its failures
(``workers.training.errors``), this module maps them; nothing leaves a job stuck in ``running`` (and if
this process dies, the reconciler notices the silent heartbeat).

A job on several devices (``resources.gpus``) is claimed by a host agent (workers/agent.py) and run
by torchrun ranks (workers/job_rank.py): rank 0 runs ``run_claimed`` — everything after the claim —
and the other ranks ``follow``: the trainer alone, on the same data, config and resume state.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
from pathlib import Path

import structlog

from app import catalog
from app.config import Settings, get_settings
from app.db import now, session_scope
from app.errors import ErrorCode, ServiceError
from app.files.models import File
from app.jobs import lifecycle
from app.jobs.hyperparameters import Resolved, ResolvedHyperparameters, read_resolved
from app.jobs.metrics import finite
from app.jobs.models import Job
from app.jobs.resources import running_on
from app.jobs.schemas import fine_tuned_model_name
from app.jobs.service import add_event
from app.jobs.status import JobErrorCode, JobStatus
from app.storage import get_store
from workers.artifacts import StorageUnavailable, cached_dataset, download_folder, upload_folder
from workers.lease import Lease

log = structlog.get_logger(__name__)


class JobFailure(Exception):
    def __init__(self, code: JobErrorCode, message: str):
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
        log.info("job.ended", outcome=outcome)
        return outcome


def _run_job(job_id: str, worker_id: str | None, settings: Settings | None) -> str:
    settings = settings or get_settings()
    worker_id = worker_id or worker_identity()
    with session_scope() as session:
        if not lifecycle.claim(session, job_id, worker_id):
            return "not-claimed"  # another delivery has it, or it was cancelled/paused meanwhile
        job = session.get(Job, job_id)
        add_event(session, job_id, f"Worker {worker_id} started attempt {job.attempt}")
        add_event(session, job_id, running_on([_device()], socket.gethostname()))
        log.info("job.claimed", worker_id=worker_id, attempt=job.attempt)
    return run_claimed(job_id, worker_id, settings)


def run_claimed(job_id: str, worker_id: str, settings: Settings, *, ready=None) -> str:
    """Everything after the claim, for a job ``worker_id`` holds: claimed by ``run_job``, or by the
    host agent for the job's rank 0. ``ready(state_key)`` is called once the job's inputs have passed
    their checks, just before training, with the checkpoint it resumes from (None: from scratch) — the
    agent's other ranks start from that same state.

    With ``ready`` (other ranks train beside this one) an error nothing names, once training has
    started, is raised rather than failing the job: a rank that went down shows up here as a broken
    collective, and only the launcher knows whether one did (workers/agent.py re-queues the job, or
    fails it with what the failing rank noted)."""
    lease = Lease(job_id, worker_id, settings.heartbeat_interval_s)
    workdir = Path(tempfile.mkdtemp(prefix=f"vrft-{job_id}-", dir=_scratch(settings)))
    started = False

    def start(state_key: str | None) -> None:
        nonlocal started
        started = True
        if ready is not None:
            ready(state_key)

    try:
        return _run_claimed(job_id, worker_id, settings, workdir, lease, start)
    except Exception as exc:  # the last line of defence: never leave a job 'running'
        if ready is not None and started and not isinstance(exc, (JobFailure, StorageUnavailable)) \
                and classify(exc)[0] == JobErrorCode.INTERNAL:
            raise
        code, message = failure_of(exc)
        _fail(job_id, worker_id, code, message)
        return f"failed:{code}"
    finally:
        lease.release()
        shutil.rmtree(workdir, ignore_errors=True)


def follow(job_id: str, settings: Settings, state_key: str | None) -> None:
    """A rank other than 0 of a job on several devices: the trainer only, on the job's data and config
    and rank 0's resume state (``state_key``). No database writes: rank 0 reports for every rank."""
    store = get_store()
    workdir = Path(tempfile.mkdtemp(prefix=f"vrft-{job_id}-", dir=_scratch(settings)))
    try:
        job, hp, train_data, val_data, _ = _inputs(store, settings, job_id, with_checkpoint=False)
        resume_from = download_folder(store, state_key, workdir / "resume") if state_key else None
        config = job_config(job, hp, settings, workdir, resume_from)
        train, grader = job_trainer(job)
        with trainer_errors():
            train(config, train_data, val_data, grader, None)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _device() -> str:
    """The one device a ``run_job`` worker trains on, as the job's events name it."""
    import torch

    if not torch.cuda.is_available():
        return "cpu"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    return f"cuda:{visible or 0}"


def failure_of(exc: BaseException) -> tuple[JobErrorCode, str]:
    """What the job fails with when ``exc`` ends its run."""
    if isinstance(exc, JobFailure):
        return exc.code, exc.message
    if isinstance(exc, StorageUnavailable):
        return JobErrorCode.STORAGE_UNAVAILABLE, f"Object storage is unreachable: {exc}. Retry the job later."
    code, message = classify(exc)
    log.error("job.crashed", code=str(code), exc_info=exc)  # job_id is bound by the caller
    return code, message


def classify(exc: BaseException) -> tuple[JobErrorCode, str]:
    """Map an exception nothing named to the job error vocabulary."""
    text = str(exc)
    if type(exc).__name__ == "OutOfMemoryError" or "out of memory" in text.lower():  # torch's, CUDA's
        return JobErrorCode.OUT_OF_MEMORY, (
            f"The GPU ran out of memory: {text[:300]}. Lower batch_size, group_size, max_completion_tokens or "
            "max_pixels, raise gradient_accumulation_steps, or set gradient_checkpointing to true.")
    if isinstance(exc, ServiceError) and exc.code == ErrorCode.STORAGE_UNAVAILABLE:
        return JobErrorCode.STORAGE_UNAVAILABLE, f"Object storage is unreachable: {exc.message}"
    return JobErrorCode.INTERNAL, (f"Internal error while training ({type(exc).__name__}: {text[:500]}); "
                                   "it has been logged.")


@contextlib.contextmanager
def trainer_errors():
    """The trainer's named failures → job failures; anything else propagates to ``classify``."""
    from workers.training.errors import ExampleRejected, GraderFailed, ModelLoadFailed

    try:
        yield
    except GraderFailed as exc:
        raise JobFailure(JobErrorCode.GRADER_ERROR, f"The grader failed: {exc}") from exc
    except ModelLoadFailed as exc:
        raise JobFailure(JobErrorCode.MODEL_NOT_FOUND, f"Could not load the base model: {exc}") from exc
    except ExampleRejected as exc:
        raise JobFailure(JobErrorCode.DATASET_INVALID, f"Training row {exc.example_id} cannot be trained on: "
                         f"{exc.reason}. Fix or remove it and upload the file again.") from exc


def _scratch(settings: Settings) -> Path:
    path = settings.data_dir / "work"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _fail(job_id: str, worker_id: str, code: JobErrorCode, message: str) -> None:
    log.warning("job.failed", code=str(code), message=message)
    with session_scope() as session:
        lifecycle.fail(session, job_id, worker_id, code, message)


def load_examples(store, settings: Settings, file: File) -> list[dict]:
    from app.datasets import iter_examples
    from app.files.service import dataset_limits

    try:
        path = cached_dataset(store, file.storage_key, file.id, settings.cache_dir)
    except FileNotFoundError as exc:
        raise JobFailure(JobErrorCode.DATASET_INVALID,
                         f"File {file.id} is missing from storage; upload it again.") from exc
    try:
        examples = list(iter_examples(path, file.filename, limits=dataset_limits(settings)))
    except Exception as exc:
        raise JobFailure(JobErrorCode.DATASET_INVALID, f"File {file.id} could not be read: {exc}") from exc
    if not examples:
        raise JobFailure(JobErrorCode.DATASET_INVALID, f"File {file.id} has no valid rows.")
    return examples


def job_trainer(job: Job):
    """The job method's training function (same signature for both) and the grader it scores with
    (a supervised job's is optional: it only adds the task metric to evaluations)."""
    kind = job.method["type"]
    if kind == "supervised":
        from workers.training.sft import train_sft as train
    else:
        from workers.training.grpo import train
    return train, job.method[kind].get("grader")


def job_config(job: Job, hp: Resolved, settings: Settings, workdir: Path, resume_from: Path | None):
    """The job's TrainConfig; a job on an ft: model gets that model's adapter downloaded to start from."""
    from workers.train_config import train_config

    location = catalog.base_models(settings).get(job.base)
    if location is None:
        raise JobFailure(JobErrorCode.MODEL_NOT_FOUND,
                         f"Base model {job.base!r} is no longer configured on this worker.")
    init_adapter = None
    if job.init_adapter_key:
        try:
            init_adapter = download_folder(get_store(), job.init_adapter_key, workdir / "init")
        except FileNotFoundError as exc:
            raise JobFailure(JobErrorCode.MODEL_NOT_FOUND, f"The adapter of {job.model} is missing from storage; "
                             "the job it came from can no longer be fine-tuned further.") from exc
    return train_config(
        hp, model=job.base if location.startswith("builtin:") else location, seed=job.seed,
        grader=job.method[job.method["type"]].get("grader"), model_cache_dir=str(settings.cache_dir / "models"),
        output_dir=str(workdir / "out"), resume_from=str(resume_from) if resume_from else None,
        init_adapter=str(init_adapter) if init_adapter else None)


def _model_folder(config, name: str) -> Path:
    from workers.training.tiny import resolve_model

    try:
        return resolve_model(config.model, config.model_cache_dir)
    except Exception as exc:
        where = "" if config.model == name else f" (configured as {config.model!r})"
        raise JobFailure(JobErrorCode.MODEL_NOT_FOUND, f"Base model {name!r}{where} is not available on this "
                         f"worker: {exc}. Check VRFT_BASE_MODELS and the worker's model volume.") from exc


def _inputs(store, settings: Settings, job_id: str, *, with_checkpoint: bool = True):
    """The job's row, hyperparameters, training and validation rows, and (rank 0) its latest checkpoint."""
    with session_scope() as session:
        job = session.get(Job, job_id)
        train_file = session.get(File, job.training_file_id)
        val_file = session.get(File, job.validation_file_id) if job.validation_file_id else None
        ckpt = None if job.dry_run or not with_checkpoint else lifecycle.latest_checkpoint(session, job_id)
        session.expunge_all()
    hp = read_resolved(job.method["type"], job.resolved_hyperparameters)
    train_data = load_examples(store, settings, train_file)
    val_data = load_examples(store, settings, val_file) if val_file else None
    return job, hp, train_data, val_data, ckpt


def _run_claimed(job_id: str, worker_id: str, settings: Settings, workdir: Path, lease: Lease, ready) -> str:
    store = get_store()
    job, hp, train_data, val_data, ckpt = _inputs(store, settings, job_id)
    train, grader = job_trainer(job)

    resume_from = None
    if ckpt is not None:
        resume_from = download_folder(store, ckpt.state_key, workdir / "resume")
        with session_scope() as session:
            dropped = lifecycle.forget_after(session, job_id, worker_id, ckpt.step)
            if dropped is None:
                return "stopped"  # the job is not ours any more
            add_event(session, job_id, f"Resuming from the checkpoint at step {ckpt.step}"
                      + (f" ({dropped} later step(s) that never reached a checkpoint are re-run)" if dropped else ""))

    config = job_config(job, hp, settings, workdir, resume_from)
    _model_folder(config, job.base)  # a missing base model fails the job as model_not_found, before any work
    ready(ckpt.state_key if ckpt is not None else None)

    if job.dry_run:
        from workers.dry_run import dry_run

        with trainer_errors():
            assert isinstance(hp, ResolvedHyperparameters) and grader is not None  # the API allows RFT dry runs only
            report = finite(dry_run(config, hp, train_data, grader, seed=job.seed, samples=job.dry_run_samples))
        with session_scope() as session:
            if lifecycle.finish(session, job_id, worker_id, JobStatus.SUCCEEDED, dry_run_report=report,
                                finished_at=now()):
                add_event(session, job_id, "Dry run finished: " + report["summary"])
        return "dry-run"

    from workers.job_hooks import JobHooks

    hooks = JobHooks(
        job_id=job_id, project_id=job.project_id, worker_id=worker_id, lease=lease, store=store, settings=settings,
        examples={str(e["id"]): e for e in train_data}, total_steps=config.max_steps,
        completions_per_step=config.prompts_per_step * config.group_size,  # GRPO's; SFT steps count their tokens
        grader=grader,
    )
    if resume_from is not None:  # count on from where the previous attempt got to
        hooks.trained_tokens = job.trained_tokens or 0
    with trainer_errors():
        result = train(config, train_data, val_data, grader, hooks)
    hooks.flush()

    if result.stopped == "cancel" or hooks.lost:
        return "stopped"
    if result.stopped == "pause":
        with session_scope() as session:
            if lifecycle.finish(session, job_id, worker_id, JobStatus.PAUSED, step=result.steps):
                add_event(session, job_id, f"Job paused at step {result.steps}; resume continues from here")
        return "paused"

    key = f"{job.project_id}/{job_id}/final/adapter.tar"
    upload_folder(store, result.adapter_dir, key)
    with session_scope() as session:
        done = lifecycle.finish(
            session, job_id, worker_id, JobStatus.SUCCEEDED, adapter_key=key, finished_at=now(),
            fine_tuned_model=fine_tuned_model_name(job), step=result.steps, trained_tokens=hooks.trained_tokens,
            estimated_finish=None)
        if done:
            add_event(session, job_id, f"Training finished: {result.steps} steps; adapter uploaded")
            add_event(session, job_id, "The job has successfully completed")
    return "succeeded" if done else "stopped"
