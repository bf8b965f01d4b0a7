"""``/v1/fine_tuning/jobs``: thin edges over ``app.jobs.service``. The request session commits when a
route returns (``app.deps.DbSession``); what must follow the commit — enqueueing, dropping this
process's cached view — is registered with ``on_commit``."""

from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, RedirectResponse, StreamingResponse
from sqlalchemy.orm import Session

from app.auth.deps import current_project
from app.auth.service import authenticate, cached_project
from app.config import get_settings
from app.db import on_commit
from app.deps import DbSession, get_session_factory
from app.errors import ErrorCode, ServiceError, error_responses
from app.idempotency.service import body_hash, idempotent
from app.jobs import rollouts, service
from app.jobs.cache import job_cache
from app.jobs.models import Job
from app.jobs.responses import JobCheckpointList, JobEventList, JobList, JobObject, JobPlan, RolloutList
from app.jobs.schemas import JobCreate, checkpoint_object, event_object, job_object
from app.jobs.status import TERMINAL, JobStatus
from app.params import EVENT_ID_PATTERN, IDEMPOTENCY_KEY, INT32_MAX, cursor_query, id_path, limit_query, name_query
from app.queue import enqueue_job
from app.storage import get_store

router = APIRouter(prefix="/v1/fine_tuning/jobs", tags=["fine-tuning"], responses=error_responses(404))
_TAR = {200: {"content": {"application/x-tar": {}}, "description": "The adapter (a tar of PEFT files)"},
        307: {"description": "Redirect to a presigned object-storage URL"}}


def _poll_interval(job: Job) -> int:
    return get_settings().poll_interval_ms * (2 if job.status in (JobStatus.QUEUED, JobStatus.PAUSED) else 1)


def _render(session: Session, job: Job, response: Response) -> dict:
    if job.status not in TERMINAL:
        response.headers["X-Poll-After-Ms"] = str(_poll_interval(job))
    return job_object(job, queue_position=job_cache().queue_position(session, job))


@router.post("", response_model=JobObject, responses=error_responses(404, 409))
def create_job(req: JobCreate, response: Response, session: DbSession,
               project_id: str = Depends(current_project), idempotency_key: str | None = IDEMPOTENCY_KEY):
    settings = get_settings()

    def create() -> dict:
        job = service.create_job(session, project_id=project_id, req=req, settings=settings)
        on_commit(session, lambda: enqueue_job(job.id, settings))  # a worker must find the row it hears of
        return _render(session, job, response)

    return idempotent(session, project_id=project_id, key=idempotency_key,
                      request_hash=body_hash(req.model_dump()), create=create)


@router.post("/validate", response_model=JobPlan, responses=error_responses(404))
def validate_job(req: JobCreate, session: DbSession, project_id: str = Depends(current_project)):
    """vrft: every check job creation makes, and what the job would train with (no "auto" left),
    without creating it — the create-job page's live resolved values. Nothing is written: the job is
    created inside a savepoint that is rolled back, so this answers exactly what creation would."""
    savepoint = session.begin_nested()
    try:
        job = service.create_job(session, project_id=project_id, req=req, settings=get_settings())
        return {"object": "fine_tuning.job.plan", "model": job.model, "base_model": job.base,
                "method": job.method, "resolved_hyperparameters": job.resolved_hyperparameters,
                "total_steps": job.total_steps, "dry_run": job.dry_run, "resources": {"gpus": job.gpus}}
    finally:
        savepoint.rollback()


@router.get("", response_model=JobList)
def list_jobs(session: DbSession, after: str | None = cursor_query("job"), limit: int = limit_query(20),
              status: str | None = name_query("Only jobs with this status."),
              project_id: str = Depends(current_project)):
    rows, has_more = service.list_jobs(session, project_id=project_id, after=after, limit=limit, status=status)
    data = [job_object(j, queue_position=job_cache().queue_position(session, j)) for j in rows]
    return {"object": "list", "data": data, "has_more": has_more,
            "first_id": rows[0].id if rows else None, "last_id": rows[-1].id if rows else None}


@router.get("/{job_id}", response_model=JobObject)
async def retrieve_job(job_id: str = id_path("job"), authorization: str | None = Header(default=None),
                       session_factory=Depends(get_session_factory)):
    """The polling hot path: answered from the per-process cache when it can (see cache.py)."""
    cache = job_cache()
    project_id = cached_project(authorization)
    view = cache.get(job_id, project_id) if project_id else None
    if view is None:
        try:
            view = await run_in_threadpool(_load_view, session_factory, authorization, job_id)
        except BaseException:
            cache.reload_failed(job_id)
            raise
    return Response(view.body, media_type="application/json", headers=view.headers)


def _load_view(session_factory, authorization: str | None, job_id: str):
    generation = job_cache().generation(job_id)
    with session_factory() as session:
        project_id = authenticate(session, authorization=authorization)
        job = service.get_job(session, project_id=project_id, job_id=job_id)
        headers: dict[str, str] = {}
        if job.status not in TERMINAL:
            headers["X-Poll-After-Ms"] = str(_poll_interval(job))
        body = job_object(job, queue_position=job_cache().queue_position(session, job))
    return job_cache().put(job_id, project_id, body, headers, generation)


def _written(session: Session, job: Job, response: Response) -> dict:
    """For writes: drop this process's cached view once the write commits — dropping it before the
    commit would let a concurrent poll re-cache the old state."""
    job_id = job.id
    on_commit(session, lambda: job_cache().invalidate(job_id))
    return _render(session, job, response)


@router.post("/{job_id}/cancel", response_model=JobObject, responses=error_responses(404, 409))
def cancel_job(response: Response, session: DbSession, job_id: str = id_path("job"),
               project_id: str = Depends(current_project)):
    return _written(session, service.cancel_job(session, project_id=project_id, job_id=job_id), response)


@router.post("/{job_id}/pause", response_model=JobObject, responses=error_responses(404, 409))
def pause_job(response: Response, session: DbSession, job_id: str = id_path("job"),
              project_id: str = Depends(current_project)):
    return _written(session, service.pause_job(session, project_id=project_id, job_id=job_id), response)


@router.post("/{job_id}/resume", response_model=JobObject, responses=error_responses(404, 409))
def resume_job(response: Response, session: DbSession, job_id: str = id_path("job"),
               project_id: str = Depends(current_project)):
    job = service.resume_job(session, project_id=project_id, job_id=job_id)
    settings = get_settings()
    on_commit(session, lambda: enqueue_job(job.id, settings))
    return _written(session, job, response)


@router.get("/{job_id}/events", response_model=JobEventList,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "The event list, or with stream=true a server-sent event stream"}})
def list_events(
    request: Request,
    session: DbSession,
    job_id: str = id_path("job"),
    after: str | None = cursor_query("event", EVENT_ID_PATTERN),
    limit: int = limit_query(20),
    type: str | None = name_query("Only events of this type (message | metrics)."),
    stream: bool = False,
    last_event_id: str | None = Header(default=None, pattern=r"^(ftevent-)?[0-9]{1,18}$",
                                       description="Where a reconnecting EventSource continues"),
    project_id: str = Depends(current_project),
    session_factory=Depends(get_session_factory),
):
    job = service.get_job(session, project_id=project_id, job_id=job_id)
    if stream:
        # a reconnecting EventSource sends the last id it saw: continue after it, don't replay
        start = int(last_event_id.removeprefix("ftevent-")) if last_event_id else 0
        return StreamingResponse(_sse(session_factory, project_id, job.id, start), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    rows, has_more = service.list_events(session, job=job, after=after, limit=limit, type=type)
    return {"object": "list", "data": [event_object(e) for e in rows], "has_more": has_more}


async def _sse(session_factory, project_id: str, job_id: str, seq: int = 0):
    """Every event oldest-first, then new ones as they are written; ends when the job ends. A comment
    line every ~15 s of silence keeps proxies from closing a stream during a long step."""
    quiet = 0.0
    while True:
        def poll(seq=seq):
            with session_factory() as session:
                job = service.get_job(session, project_id=project_id, job_id=job_id)
                return job.status, service.events_since(session, job_id=job_id, seq=seq)

        status, events = await run_in_threadpool(poll)
        for ev in events:
            seq = ev.seq
            yield f"id: {ev.public_id}\nevent: {ev.type}\ndata: {json.dumps(event_object(ev))}\n\n"
        if status in TERMINAL and not events:
            yield "event: done\ndata: {}\n\n"
            return
        quiet = 0.0 if events else quiet + 1.0
        if quiet >= 15:
            quiet = 0.0
            yield ": keep-alive\n\n"
        await asyncio.sleep(0.5 if events else 1.0)


@router.get("/{job_id}/checkpoints", response_model=JobCheckpointList)
def list_checkpoints(session: DbSession, job_id: str = id_path("job"), after: str | None = cursor_query("checkpoint"),
                     limit: int = limit_query(10), project_id: str = Depends(current_project)):
    job = service.get_job(session, project_id=project_id, job_id=job_id)
    rows, has_more = service.list_checkpoints(session, job=job, after=after, limit=limit)
    return {"object": "list", "data": [checkpoint_object(c, job) for c in rows], "has_more": has_more,
            "first_id": rows[0].id if rows else None, "last_id": rows[-1].id if rows else None}


def _download(key: str, filename: str):
    store = get_store()
    path = store.local_path(key)
    if path is not None:  # a local folder: serve the file; S3: hand out a presigned URL
        if not path.exists():
            raise ServiceError(ErrorCode.NOT_FOUND, "The adapter is missing from storage.")
        return FileResponse(path, media_type="application/x-tar", filename=filename)
    url = store.presigned_url(key, get_settings().presigned_url_ttl_s, filename=filename)
    return RedirectResponse(url, status_code=307)


@router.get("/{job_id}/adapter", response_class=Response, responses={**_TAR, **error_responses(404, 409)})
def download_adapter(session: DbSession, job_id: str = id_path("job"), project_id: str = Depends(current_project)):
    job = service.get_job(session, project_id=project_id, job_id=job_id)
    if not job.adapter_key:
        raise ServiceError(ErrorCode.INVALID_STATE,
                           f"Job {job.id} has no final adapter (status '{job.status}'); "
                           "checkpoint adapters are under /checkpoints/{id}/adapter.", "status")
    return _download(job.adapter_key, f"{job.id}-adapter.tar")


@router.get("/{job_id}/checkpoints/{checkpoint_id}/adapter", response_class=Response, responses=_TAR)
def download_checkpoint_adapter(session: DbSession, job_id: str = id_path("job"),
                                checkpoint_id: str = id_path("checkpoint"),
                                project_id: str = Depends(current_project)):
    job = service.get_job(session, project_id=project_id, job_id=job_id)
    ck = service.get_checkpoint(session, job=job, checkpoint_id=checkpoint_id)
    return _download(ck.storage_key, f"{job.id}-step-{ck.step}-adapter.tar")


@router.get("/{job_id}/rollouts", response_model=RolloutList)
def list_rollouts(session: DbSession, job_id: str = id_path("job"),
                  step: int | None = Query(default=None, ge=0, le=INT32_MAX, description="Only this step's rollouts."),
                  limit: int = limit_query(20, maximum=200), project_id: str = Depends(current_project)):
    """vrft: sampled rollouts (prompt, image thumbnail, completions, rewards, advantages) per step."""
    job = service.get_job(session, project_id=project_id, job_id=job_id)
    return {"object": "list", "data": rollouts.list_rollouts(session, job=job, step=step, limit=limit),
            "has_more": False}
