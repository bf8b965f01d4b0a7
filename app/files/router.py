from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from app.auth.deps import current_project
from app.config import get_settings
from app.db import on_commit, on_rollback
from app.deps import DbSession
from app.errors import ErrorCode, ServiceError, error_responses
from app.files import service
from app.files.names import content_disposition
from app.files.responses import FileDeleted, FileList, FileObject, FileValidation
from app.files.schemas import file_object, validation_object
from app.files.scratch import process_scratch_dir
from app.files.upload import receive_multipart
from app.idempotency.service import body_hash, idempotent
from app.params import IDEMPOTENCY_KEY, cursor_query, id_path, limit_query, name_query
from app.storage import get_store

router = APIRouter(prefix="/v1/files", tags=["files"], responses=error_responses(404))


# The body is read as a stream (see upload.py), so FastAPI cannot describe it: say what it is.
_UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file", "purpose"],
    "properties": {"file": {"type": "string", "format": "binary"},
                   "purpose": {"type": "string", "enum": ["fine-tune"]}}}}}}}


@router.post("", response_model=FileObject, responses=error_responses(400, 409, 413), openapi_extra=_UPLOAD_BODY)
async def upload_file(request: Request, session: DbSession, project_id: str = Depends(current_project),
                      idempotency_key: str | None = IDEMPOTENCY_KEY):
    settings = get_settings()
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > settings.max_upload_bytes + 1024 * 1024:
        raise ServiceError(
            ErrorCode.FILE_TOO_LARGE,
            f"File exceeds the upload limit of {settings.max_upload_bytes:,} bytes (VRFT_MAX_UPLOAD_BYTES).",
            "file",
        )
    received = await receive_multipart(
        request.stream(),
        request.headers.get("content-type", ""),
        tmp_dir=process_scratch_dir(settings.data_dir / "tmp"),
        max_bytes=settings.max_upload_bytes,
    )
    try:
        return await run_in_threadpool(_store_upload, session, idempotency_key, project_id, received, settings)
    except BaseException:
        received.discard()
        raise


def _store_upload(session: Session, idem_key: str | None, project_id: str, received, settings):
    purpose = received.fields.get("purpose", "").strip()
    if not purpose:
        raise ServiceError(ErrorCode.BAD_REQUEST, "Missing form field 'purpose' (use 'fine-tune').", "purpose")
    store = get_store()
    created: list[bool] = []

    def create() -> dict:
        file, background = service.create_file(
            session, project_id=project_id, filename=received.filename, purpose=purpose, tmp_path=received.path,
            size=received.size, sha256=received.sha256, store=store, settings=settings,
        )
        created.append(background)
        # No object without a row: if this transaction does not commit (an error, a failed commit, a
        # concurrent request with the same Idempotency-Key winning), the stored object goes too.
        on_rollback(session, lambda: service.forget_object(store, file.storage_key))
        on_rollback(session, received.discard)
        if background:  # the temp file outlives the request: a background validation reads it
            on_commit(session, lambda: service.validate_in_background(file.id, file.filename, received.path,
                                                                      settings))
        return file_object(file)

    body = idempotent(session, project_id=project_id, key=idem_key,
                      request_hash=body_hash([received.sha256, purpose, received.filename]), create=create)
    if not any(created):  # a replay, or validated inline: the temp file is no longer needed
        received.discard()
    return body


@router.get("", response_model=FileList)
def list_files(
    session: DbSession,
    after: str | None = cursor_query("file"),
    limit: int = limit_query(100),
    purpose: str | None = name_query("Only files with this purpose."),
    # only newest-first pages exist; an 'asc' would be accepted and ignored, so it is refused instead
    order: Literal["desc"] = "desc",
    project_id: str = Depends(current_project),
):
    rows, has_more = service.list_files(session, project_id=project_id, after=after, limit=limit, purpose=purpose)
    return {"object": "list", "data": [file_object(f) for f in rows], "has_more": has_more,
            "first_id": rows[0].id if rows else None, "last_id": rows[-1].id if rows else None}


@router.get("/{file_id}", response_model=FileObject)
def retrieve_file(session: DbSession, file_id: str = id_path("file"), project_id: str = Depends(current_project)):
    return file_object(service.get_file(session, project_id=project_id, file_id=file_id))


@router.get("/{file_id}/validation", response_model=FileValidation)
def file_validation(session: DbSession, file_id: str = id_path("file"), project_id: str = Depends(current_project)):
    return validation_object(service.get_file(session, project_id=project_id, file_id=file_id))


@router.get("/{file_id}/content", response_class=StreamingResponse,
            responses={200: {"content": {"application/octet-stream": {}}, "description": "The file as uploaded"}})
def file_content(session: DbSession, file_id: str = id_path("file"), project_id: str = Depends(current_project)):
    file = service.get_file(session, project_id=project_id, file_id=file_id)
    try:
        chunks = get_store().open_read(file.storage_key)
    except FileNotFoundError as exc:
        raise ServiceError(ErrorCode.FILE_NOT_FOUND, f"The content of {file_id} is missing from storage.") from exc
    return StreamingResponse(
        chunks,
        media_type="application/octet-stream",
        headers={"Content-Disposition": content_disposition(file.filename), "Content-Length": str(file.bytes)},
    )


@router.delete("/{file_id}", response_model=FileDeleted, responses=error_responses(409))
def delete_file(session: DbSession, file_id: str = id_path("file"), project_id: str = Depends(current_project)):
    service.delete_file(session, project_id=project_id, file_id=file_id, store=get_store())
    return {"id": file_id, "object": "file", "deleted": True}
