"""``POST /v1/chat/completions`` (thin: app/chat/service.py decides, app/chat/transport.py delivers)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.auth.deps import current_project
from app.chat import service, transport
from app.chat.schemas import ChatCompletion, ChatCompletionCreate
from app.chat.streaming import sse
from app.config import get_settings
from app.deps import DbSession
from app.errors import error_responses

router = APIRouter(prefix="/v1/chat", tags=["chat"])


def _prepare(session: Session, req: ChatCompletionCreate, project_id: str) -> dict:
    """Resolve the model and check the images (database and Pillow work: off the event loop)."""
    settings = get_settings()
    target = service.resolve_model(session, project_id=project_id, name=req.model, settings=settings)
    # Read-only, and the answer may take a minute: give the connection back to the pool now rather than
    # hold one per waiting chat request.
    session.commit()
    return service.worker_request(req, target, settings)


@router.post("/completions", response_model=ChatCompletion, responses={
    **error_responses(400, 404), 200: {"content": {"text/event-stream": {}},
                                      "description": "A chat.completion, or with stream=true its chunks as SSE"}})
async def create_chat_completion(req: ChatCompletionCreate, session: DbSession,
                                 project_id: str = Depends(current_project)):
    worker_req = await run_in_threadpool(_prepare, session, req, project_id)
    if not req.stream:
        answer = await transport.generate(worker_req, get_settings())
        return JSONResponse(service.completion(req, worker_req["id"], answer))
    events = transport.stream(worker_req, get_settings())
    # The first event is awaited before the response starts: a refusal (a prompt too long for the
    # model, a busy worker) is still this response's 4xx/503, not an event inside a 200.
    first = await anext(events)
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    usage = (lambda answer: service.completion(req, worker_req["id"], answer)["usage"]) if include_usage else None
    return StreamingResponse(sse(events, first, request_id=worker_req["id"], model=req.model, n=req.n, usage=usage),
                             media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
