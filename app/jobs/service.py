"""Jobs: create (validate everything a worker would trip on, up front), read, control.

Statuses (``app.jobs.status``): queued → running → succeeded | failed | cancelled, plus paused.
A job is created ``queued``: its files are already ``processed``. The API changes status only where
no worker is involved (cancel/pause a queued job, resume a paused one); a running job gets a
``control_request`` the worker honours between steps — except cancel, which flips the status at
once (the worker sees it at its next step and stops, keeping checkpoints).
"""

from __future__ import annotations

import random

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app import catalog
from app.config import Settings
from app.datasets.report import methods_of
from app.db import now
from app.errors import ErrorCode, ServiceError
from app.files.models import File
from app.files.service import describe_problem
from app.ids import new_id
from app.jobs import hyperparameters as hparams
from app.jobs import resources
from app.jobs.models import Checkpoint, Job, JobEvent
from app.jobs.schemas import JobCreate
from app.jobs.status import JobStatus, can_move
from app.jobs.tuned import find_tuned
from app.pagination import check_limit, page

DRY_RUN_SAMPLES = 8  # training rows a dry run samples unless the request says


def add_event(session: Session, job_id: str, message: str, *, level: str = "info", type: str = "message",
              data: dict | None = None) -> JobEvent:
    ev = JobEvent(job_id=job_id, message=message, level=level, type=type, data=data)
    session.add(ev)
    return ev


def _usable_file(session: Session, project_id: str, file_id: str, param: str) -> File:
    file = session.scalar(sa.select(File).where(File.id == file_id, File.project_id == project_id))
    if file is None:
        raise ServiceError(ErrorCode.FILE_NOT_FOUND, f"No file with id {file_id!r}.", param)
    if file.status != "processed":
        detail = f" ({file.status_details})" if file.status_details else ""
        raise ServiceError(
            ErrorCode.FILE_NOT_READY,
            f"File {file_id} is '{file.status}'{detail}; a job needs a 'processed' file.",
            param,
        )
    return file


def _hyperparameter_error(exc: hparams.HyperparameterError, method: str) -> ServiceError:
    unknown = isinstance(exc, hparams.UnknownHyperparameter)
    code = ErrorCode.UNKNOWN_FIELD if unknown else ErrorCode.INVALID_HYPERPARAMETER
    return ServiceError(code, exc.message, f"method.{method}.hyperparameters.{exc.name}")


def _check_grader(grader: dict, settings: Settings, files: list[File], model: str, param: str) -> dict:
    from app.graders import template_fields, validate_grader

    # box graders that leave `coords` out take the model family's (Qwen2.5-VL: resized pixels)
    normalised = validate_grader(grader, allow_python=settings.python_grader_enabled,
                                 model_coords=catalog.answer_coords(settings, model))
    for file in files:
        available = set((file.report or {}).get("reference_fields") or [])
        missing = sorted(set(template_fields(normalised)) - available)
        if missing:
            raise ServiceError(
                ErrorCode.INVALID_GRADER,
                f"The grader reads {{{{item.{missing[0]}}}}} but file {file.id} has no field '{missing[0]}' "
                f"(its fields: {', '.join(sorted(available)) or 'none'}).",
                param,
            )
    return normalised


def _check_suits(file: File, method: str, param: str) -> None:
    """A file the method cannot train on is refused here, naming the first row that rules it out."""
    if method in methods_of(file.report):
        return
    why = ((file.report or {}).get("unsuited") or {}).get(method)
    detail = f": {describe_problem(why)}" if why else ""
    suits = " and ".join(methods_of(file.report)) or "no method"
    raise ServiceError(ErrorCode.FILE_UNSUITED, f"File {file.id} cannot be used for a {method} job{detail} "
                       f"(it suits {suits}).", param, extra={"line": why.get("line") if why else None})


def _starting_point(session: Session, project_id: str, model: str, settings: Settings) -> tuple[str, str | None]:
    """(base model, adapter to start from): a base model id, or an ft: model of this project."""
    if catalog.is_known(settings, model):
        return model, None
    if model.startswith("ft:"):
        tuned = find_tuned(session, project_id=project_id, name=model, bases=catalog.base_models(settings))
        if tuned is None:
            raise ServiceError(ErrorCode.MODEL_NOT_FOUND, f"No fine-tuned model {model!r} in this project: a job "
                               "starts from a succeeded job's fine_tuned_model or a checkpoint's "
                               "fine_tuned_model_checkpoint.", "model")
        return tuned.job.base, tuned.adapter_key
    known = ", ".join(sorted(catalog.base_models(settings)))
    raise ServiceError(ErrorCode.MODEL_NOT_FOUND, f"Unknown base model {model!r}; available: {known}.", "model")


def create_job(session: Session, *, project_id: str, req: JobCreate, settings: Settings) -> Job:
    problem = req.method.block_problem()
    if problem is not None:
        raise ServiceError(ErrorCode.VALIDATION_ERROR, problem[1], problem[0])
    kind = req.method.type
    base, init_adapter_key = _starting_point(session, project_id, req.model, settings)
    if req.dry_run and kind == "supervised":
        raise ServiceError(ErrorCode.VALIDATION_ERROR, "A dry run samples and grades rollouts, which a supervised "
                           "job does not have; dry runs are for reinforcement jobs.", "dry_run")
    if req.dry_run_samples is not None and not req.dry_run:
        raise ServiceError(ErrorCode.VALIDATION_ERROR, "dry_run_samples only applies to a dry run (\"dry_run\": true).",
                           "dry_run_samples")
    train = _usable_file(session, project_id, req.training_file, "training_file")
    _check_suits(train, kind, "training_file")
    files = [train]
    val = None
    if req.validation_file:
        val = _usable_file(session, project_id, req.validation_file, "validation_file")
        _check_suits(val, kind, "validation_file")
        files.append(val)
    train_rows = (train.report or {}).get("rows_valid", 0)
    val_rows = (val.report or {}).get("rows_valid", 0) if val else 0
    try:  # every rule is checked here, before a row is written
        hp = hparams.parse(req.method.hyperparameters, kind)
        resolved = hparams.resolve(hp, train_rows=train_rows, val_rows=val_rows,
                                   model_parameters=catalog.parameter_count(settings, base))
    except hparams.HyperparameterError as exc:
        raise _hyperparameter_error(exc, kind) from None
    gpus = resources.check(session, req.resources, batch_size=resolved.batch_size, settings=settings)
    block: dict = {"hyperparameters": hp.model_dump()}
    if req.method.grader is not None:
        if kind == "supervised" and val is None:  # it would score nothing: say so rather than keep it unused
            raise ServiceError(ErrorCode.VALIDATION_ERROR, "A supervised job's grader scores answers on the "
                               "validation file; add a validation_file or leave the grader out.",
                               "method.supervised.grader")
        graded = files if kind == "reinforcement" else [val]
        block["grader"] = _check_grader(req.method.grader, settings, graded, base, f"method.{kind}.grader")
    ts = now()
    job = Job(
        id=new_id("ftjob"), project_id=project_id, model=req.model, status=JobStatus.QUEUED,
        base_model=base if base != req.model else None, init_adapter_key=init_adapter_key,
        training_file_id=train.id, validation_file_id=val.id if val else None, suffix=req.suffix,
        seed=req.seed if req.seed is not None else random.randrange(2**31), metadata_=req.metadata,
        method={"type": kind, kind: block}, resolved_hyperparameters=resolved.model_dump(mode="json"),
        dry_run=req.dry_run, dry_run_samples=(req.dry_run_samples or DRY_RUN_SAMPLES) if req.dry_run else None,
        total_steps=0 if req.dry_run else resolved.max_steps, step=0, created_at=ts, enqueued_at=ts,
        gpus=gpus,
    )
    session.add(job)
    session.flush()
    add_event(session, job.id, f"Created fine-tuning job: {job.id}")
    add_event(session, job.id, "Validated training and validation files" if val else "Validated training file")
    if init_adapter_key:
        add_event(session, job.id, f"Starts from the fine-tuned model {req.model} (base {base}); it is also the "
                  "reference model")
    per_step = (f"{resolved.batch_size} examples" if isinstance(resolved, hparams.ResolvedSupervised)
                else f"{resolved.batch_size} prompts × {resolved.group_size} completions")
    add_event(session, job.id, "Dry run queued: sampling and grading, no training" if req.dry_run
              else f"Job queued: {resolved.max_steps} {kind} steps of {per_step}")
    session.flush()
    return job


def get_job(session: Session, *, project_id: str, job_id: str, for_update: bool = False) -> Job:
    query = sa.select(Job).where(Job.id == job_id, Job.project_id == project_id)
    if for_update:
        query = query.with_for_update()
    job = session.scalar(query)
    if job is None:
        raise ServiceError(ErrorCode.JOB_NOT_FOUND, f"No fine-tuning job with id {job_id!r}.")
    return job


def list_jobs(session: Session, *, project_id: str, after: str | None, limit: int, status: str | None = None):
    query = sa.select(Job).where(Job.project_id == project_id)
    if status:
        query = query.where(Job.status == status)
    return page(session, query, Job, after=after, limit=limit)


def _illegal(job: Job, action: str) -> ServiceError:
    return ServiceError(ErrorCode.INVALID_STATE, f"Cannot {action} job {job.id}: it is '{job.status}'.", "status")


def cancel_job(session: Session, *, project_id: str, job_id: str) -> Job:
    job = get_job(session, project_id=project_id, job_id=job_id, for_update=True)
    if not can_move(job.status, JobStatus.CANCELLED):
        raise _illegal(job, "cancel")
    job.status = JobStatus.CANCELLED
    job.control_request = None
    job.finished_at = now()
    add_event(session, job.id, "Job cancelled by user; checkpoints are kept")
    session.flush()
    return job


def pause_job(session: Session, *, project_id: str, job_id: str) -> Job:
    job = get_job(session, project_id=project_id, job_id=job_id, for_update=True)
    if job.dry_run or not can_move(job.status, JobStatus.PAUSED):
        raise _illegal(job, "pause")
    if job.status == JobStatus.RUNNING:
        job.control_request = "pause"  # the worker checkpoints, then sets 'paused'
        add_event(session, job.id, "Pause requested; the worker pauses after writing a checkpoint")
    else:
        job.status = JobStatus.PAUSED
        add_event(session, job.id, "Job paused before it started")
    session.flush()
    return job


def resume_job(session: Session, *, project_id: str, job_id: str) -> Job:
    job = get_job(session, project_id=project_id, job_id=job_id, for_update=True)
    if job.status != JobStatus.PAUSED:  # (running → queued is the reconciler's, not the user's)
        raise _illegal(job, "resume")
    job.status = JobStatus.QUEUED
    job.control_request = None
    job.enqueued_at = now()
    add_event(session, job.id, f"Job resumed; it continues from step {job.step}")
    session.flush()
    return job


def list_events(session: Session, *, job: Job, after: str | None, limit: int, type: str | None = None):
    """Newest first; ``after`` is an event id, the page continues with older events."""
    check_limit(limit)
    query = sa.select(JobEvent).where(JobEvent.job_id == job.id)
    if type:
        query = query.where(JobEvent.type == type)
    if after:
        try:
            seq = int(after.removeprefix("ftevent-"))
        except ValueError:
            raise ServiceError(ErrorCode.VALIDATION_ERROR, f"Unknown cursor {after!r}.", "after") from None
        query = query.where(JobEvent.seq < seq)
    rows = list(session.scalars(query.order_by(JobEvent.seq.desc()).limit(limit + 1)))
    return rows[:limit], len(rows) > limit


def events_since(session: Session, *, job_id: str, seq: int, limit: int = 500) -> list[JobEvent]:
    """Oldest first, for streaming."""
    return list(session.scalars(
        sa.select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.seq > seq).order_by(JobEvent.seq).limit(limit)
    ))


def list_checkpoints(session: Session, *, job: Job, after: str | None, limit: int):
    query = sa.select(Checkpoint).where(Checkpoint.job_id == job.id)
    return page(session, query, Checkpoint, after=after, limit=limit)


def get_checkpoint(session: Session, *, job: Job, checkpoint_id: str) -> Checkpoint:
    ck = session.scalar(sa.select(Checkpoint).where(Checkpoint.job_id == job.id, Checkpoint.id == checkpoint_id))
    if ck is None:
        raise ServiceError(ErrorCode.CHECKPOINT_NOT_FOUND, f"No checkpoint {checkpoint_id!r} in job {job.id}.")
    return ck
