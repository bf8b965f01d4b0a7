from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, RedirectResponse, StreamingResponse
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.auth.deps import current_project
from app.auth.service import authenticate, cached_project
from app.config import get_settings
from app.deps import get_session, get_session_factory
from app.errors import ErrorCode, ServiceError
from app.idempotency.service import body_hash, idempotent_response, remember
from app.jobs import service
from app.jobs.models import Job, Rollout
from app.jobs.schemas import TERMINAL, JobCreate, checkpoint_object, event_object, job_object
from app.jobs.views import job_views
from app.queue import enqueue_job
from app.storage import LocalStore, get_store

router = APIRouter(prefix="/v1/fine_tuning/jobs", tags=["fine-tuning"])


def _poll_interval(job: Job) -> int:
    return get_settings().poll_interval_ms * (2 if job.status in ("queued", "paused") else 1)


def _render(session: Session, job: Job, response: Response) -> dict:
    if job.status not in TERMINAL:
        response.headers["X-Poll-After-Ms"] = str(_poll_interval(job))
    return job_object(job, queue_position=service.queue_position(session, job))


@router.post("")
def create_job(
    req: JobCreate,
    request: Request,
    response: Response,
    project_id: str = Depends(current_project),
    session: Session = Depends(get_session),
):
    settings = get_settings()
    idem_key = request.headers.get("idempotency-key")
    request_hash = body_hash(req.model_dump())
    if idem_key and (replay := idempotent_response(session, project_id, idem_key, request_hash)) is not None:
        return replay
    job = service.create_job(session, project_id=project_id, req=req, settings=settings)
    body = _render(session, job, response)
    try:
        if idem_key:
            remember(session, project_id, idem_key, request_hash, 200, body)
        session.commit()  # the row exists before any worker can hear of it
    except IntegrityError:
        if not idem_key:
            raise
        session.rollback()
        return idempotent_response(session, project_id, idem_key, request_hash)
    enqueue_job(job.id, settings)
    return body


@router.get("")
def list_jobs(
    after: str | None = None,
    limit: int = Query(default=20),
    status: str | None = None,
    project_id: str = Depends(current_project),
    session: Session = Depends(get_session),
):
    rows, has_more = service.list_jobs(session, project_id=project_id, after=after, limit=limit, status=status)
    return {"object": "list", "data": [job_object(j, queue_position=job_views().queue_position(session, j)) for j in rows],
            "has_more": has_more, "first_id": rows[0].id if rows else None, "last_id": rows[-1].id if rows else None}


@router.get("/{job_id}")
async def retrieve_job(job_id: str, authorization: str | None = Header(default=None),
                       session_factory=Depends(get_session_factory)):
    """The polling hot path: answered from the per-process view cache when it can (see views.py)."""
    views = job_views()
    project_id = cached_project(authorization)
    view = views.get(job_id, project_id) if project_id else None
    if view is None:
        try:
            view = await run_in_threadpool(_load_view, session_factory, authorization, job_id)
        except BaseException:
            views.reload_failed(job_id)
            raise
    return Response(view.body, media_type="application/json", headers=view.headers)


def _load_view(session_factory, authorization: str | None, job_id: str):
    generation = job_views().generation(job_id)
    with session_factory() as session:
        project_id = authenticate(session, authorization=authorization)
        job = service.get_job(session, project_id=project_id, job_id=job_id)
        headers: dict[str, str] = {}
        if job.status not in TERMINAL:
            headers["X-Poll-After-Ms"] = str(_poll_interval(job))
        body = job_object(job, queue_position=job_views().queue_position(session, job))
    return job_views().put(job_id, project_id, body, headers, generation)


def _committed(session: Session, job: Job, response: Response) -> dict:
    """For writes: commit, *then* drop this process's cached view — dropping it before the commit would
    let a concurrent poll re-cache the old state."""
    body = _render(session, job, response)
    session.commit()
    job_views().invalidate(job.id)
    return body


@router.post("/{job_id}/cancel")
def cancel_job(job_id: str, response: Response, project_id: str = Depends(current_project),
               session: Session = Depends(get_session)):
    return _committed(session, service.cancel_job(session, project_id=project_id, job_id=job_id), response)


@router.post("/{job_id}/pause")
def pause_job(job_id: str, response: Response, project_id: str = Depends(current_project),
              session: Session = Depends(get_session)):
    return _committed(session, service.pause_job(session, project_id=project_id, job_id=job_id), response)


@router.post("/{job_id}/resume")
def resume_job(job_id: str, response: Response, project_id: str = Depends(current_project),
               session: Session = Depends(get_session)):
    job = service.resume_job(session, project_id=project_id, job_id=job_id)
    body = _committed(session, job, response)
    enqueue_job(job.id, get_settings())
    return body


@router.get("/{job_id}/events")
def list_events(
    job_id: str,
    request: Request,
    after: str | None = None,
    limit: int = Query(default=20),
    type: str | None = None,
    stream: bool = False,
    project_id: str = Depends(current_project),
    session: Session = Depends(get_session),
    session_factory=Depends(get_session_factory),
):
    job = service.get_job(session, project_id=project_id, job_id=job_id)
    if stream:
        # a reconnecting EventSource sends the last id it saw: continue after it, don't replay
        last = request.headers.get("last-event-id", "")
        start = int(last.removeprefix("ftevent-")) if last.removeprefix("ftevent-").isdigit() else 0
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


@router.get("/{job_id}/checkpoints")
def list_checkpoints(job_id: str, after: str | None = None, limit: int = Query(default=10),
                     project_id: str = Depends(current_project), session: Session = Depends(get_session)):
    job = service.get_job(session, project_id=project_id, job_id=job_id)
    rows, has_more = service.list_checkpoints(session, job=job, after=after, limit=limit)
    return {"object": "list", "data": [checkpoint_object(c, job) for c in rows], "has_more": has_more,
            "first_id": rows[0].id if rows else None, "last_id": rows[-1].id if rows else None}


def _download(key: str, filename: str):
    store = get_store()
    if isinstance(store, LocalStore):
        path = store.local_path(key)
        if not path.exists():
            raise ServiceError(ErrorCode.NOT_FOUND, "The adapter is missing from storage.")
        return FileResponse(path, media_type="application/x-tar", filename=filename)
    url = store.presigned_url(key, get_settings().presigned_url_ttl_s, filename=filename)
    return RedirectResponse(url, status_code=307)


@router.get("/{job_id}/adapter")
def download_adapter(job_id: str, project_id: str = Depends(current_project),
                     session: Session = Depends(get_session)):
    job = service.get_job(session, project_id=project_id, job_id=job_id)
    if not job.adapter_key:
        raise ServiceError(ErrorCode.INVALID_STATE,
                           f"Job {job.id} has no final adapter (status '{job.status}'); "
                           "checkpoint adapters are under /checkpoints/{id}/adapter.", "status")
    return _download(job.adapter_key, f"{job.id}-adapter.tar")


@router.get("/{job_id}/checkpoints/{checkpoint_id}/adapter")
def download_checkpoint_adapter(job_id: str, checkpoint_id: str, project_id: str = Depends(current_project),
                                session: Session = Depends(get_session)):
    job = service.get_job(session, project_id=project_id, job_id=job_id)
    ck = service.get_checkpoint(session, job=job, checkpoint_id=checkpoint_id)
    return _download(ck.storage_key, f"{job.id}-step-{ck.step}-adapter.tar")


@router.get("/{job_id}/rollouts")
def list_rollouts(job_id: str, step: int | None = None, limit: int = Query(default=20, ge=1, le=200),
                  project_id: str = Depends(current_project), session: Session = Depends(get_session)):
    """vrft: sampled rollouts (prompt, image thumbnail, completions, rewards, advantages) per step."""
    import sqlalchemy as sa

    job = service.get_job(session, project_id=project_id, job_id=job_id)
    query = sa.select(Rollout).where(Rollout.job_id == job.id)
    if step is not None:
        query = query.where(Rollout.step == step)
    rows = session.scalars(query.order_by(Rollout.seq.desc()).limit(limit))
    return {"object": "list", "data": [{"object": "fine_tuning.job.rollout", "step": r.step, **r.data} for r in rows],
            "has_more": False}
