from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.auth.deps import current_project
from app.config import get_settings
from app.deps import get_session
from app.errors import ErrorCode, ServiceError
from app.files import service
from app.files.schemas import file_object, validation_object
from app.files.upload import receive_multipart
from app.idempotency.service import body_hash, idempotent_response, remember
from app.storage import get_store

router = APIRouter(prefix="/v1/files", tags=["files"])


@router.post("")
async def upload_file(
    request: Request, project_id: str = Depends(current_project), session: Session = Depends(get_session)
):
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
        tmp_dir=settings.data_dir / "tmp",
        max_bytes=settings.max_upload_bytes,
    )
    try:
        return await run_in_threadpool(_store_upload, session, request, project_id, received, settings)
    except BaseException:
        received.discard()
        raise


def _store_upload(session: Session, request: Request, project_id: str, received, settings):
    purpose = received.fields.get("purpose", "").strip()
    if not purpose:
        raise ServiceError(ErrorCode.BAD_REQUEST, "Missing form field 'purpose' (use 'fine-tune').", "purpose")
    idem_key = request.headers.get("idempotency-key")
    request_hash = body_hash([received.sha256, purpose, received.filename])
    if idem_key and (replay := idempotent_response(session, project_id, idem_key, request_hash)) is not None:
        received.discard()
        return replay
    store = get_store()
    file, background = service.create_file(
        session, project_id=project_id, filename=received.filename, purpose=purpose, tmp_path=received.path,
        size=received.size, sha256=received.sha256, store=store, settings=settings,
    )
    body = file_object(file)
    try:
        if idem_key:
            remember(session, project_id, idem_key, request_hash, 200, body)
        session.commit()
    except IntegrityError:
        if not idem_key:
            raise
        # a concurrent request with the same Idempotency-Key won the race: answer what it answered
        session.rollback()
        store.delete(file.storage_key)
        received.discard()
        return idempotent_response(session, project_id, idem_key, request_hash)
    if background:
        service.validate_in_background(file.id, file.filename, received.path, settings)
    else:
        received.discard()
    return body


@router.get("")
def list_files(
    after: str | None = None,
    limit: int = Query(default=100),
    purpose: str | None = None,
    order: str = "desc",
    project_id: str = Depends(current_project),
    session: Session = Depends(get_session),
):
    rows, has_more = service.list_files(session, project_id=project_id, after=after, limit=limit, purpose=purpose)
    return {"object": "list", "data": [file_object(f) for f in rows], "has_more": has_more,
            "first_id": rows[0].id if rows else None, "last_id": rows[-1].id if rows else None}


@router.get("/{file_id}")
def retrieve_file(file_id: str, project_id: str = Depends(current_project), session: Session = Depends(get_session)):
    return file_object(service.get_file(session, project_id=project_id, file_id=file_id))


@router.get("/{file_id}/validation")
def file_validation(file_id: str, project_id: str = Depends(current_project), session: Session = Depends(get_session)):
    return validation_object(service.get_file(session, project_id=project_id, file_id=file_id))


@router.get("/{file_id}/content")
def file_content(file_id: str, project_id: str = Depends(current_project), session: Session = Depends(get_session)):
    file = service.get_file(session, project_id=project_id, file_id=file_id)
    try:
        chunks = get_store().open_read(file.storage_key)
    except FileNotFoundError as exc:
        raise ServiceError(ErrorCode.FILE_NOT_FOUND, f"The content of {file_id} is missing from storage.") from exc
    return StreamingResponse(
        chunks,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{file.filename}"', "Content-Length": str(file.bytes)},
    )


@router.delete("/{file_id}")
def delete_file(file_id: str, project_id: str = Depends(current_project), session: Session = Depends(get_session)):
    service.delete_file(session, project_id=project_id, file_id=file_id, store=get_store())
    return {"id": file_id, "object": "file", "deleted": True}
