"""Files: store an upload, validate it (inline when small, in the background when large), list, delete."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import sqlalchemy as sa
import structlog
from sqlalchemy.orm import Session

from app.config import Settings
from app.datasets.report import methods_of
from app.db import session_scope
from app.errors import ErrorCode, ServiceError
from app.files.models import File
from app.files.scratch import process_scratch_dir, sweep_stale
from app.ids import new_id
from app.jobs.status import ACTIVE as ACTIVE_JOB_STATUSES  # jobs that still read their files
from app.pagination import page
from app.storage import ObjectStore

log = structlog.get_logger(__name__)

PURPOSES = ("fine-tune",)


def dataset_limits(settings: Settings):
    from app.datasets import Limits

    return Limits(
        max_image_pixels=settings.max_image_pixels,
        max_rows=settings.max_rows,
        max_archive_ratio=settings.max_archive_ratio,
        max_archive_bytes=settings.max_archive_bytes,
    )


def storage_key(project_id: str, file_id: str) -> str:
    return f"{project_id}/files/{file_id}/data"


def report_summary(report: dict) -> str:
    if report.get("ok"):
        return f"{report['rows_valid']} valid rows ({report['format']}; suits {' and '.join(methods_of(report))})"
    problems = report.get("problems") or []
    count = report.get("problem_count", len(problems))
    if not problems:
        return "dataset has no valid rows"
    return f"{count} problem(s); first: {describe_problem(problems[0])}"


def describe_problem(p: dict) -> str:
    if p["message"].startswith(("line ", "field ")):  # a row problem's message names its place already
        return p["message"]
    where = []
    if p.get("line") is not None:
        where.append(f"line {p['line']}")
    if p.get("field"):
        where.append(f"field '{p['field']}'")
    return (", ".join(where) + ": " if where else "") + p["message"]


def invalid_dataset_error(report: dict) -> ServiceError:
    problems = report.get("problems") or []
    first = problems[0] if problems else {"line": None, "field": None, "message": "dataset has no valid rows"}
    return ServiceError(
        ErrorCode.DATASET_INVALID,
        f"Dataset is invalid — {report_summary(report)}. Nothing was stored.",
        param=first.get("field"),
        extra={"line": first.get("line"), "validation": report},
    )


def create_file(
    session: Session,
    *,
    project_id: str,
    filename: str,
    purpose: str,
    tmp_path: Path,
    size: int,
    sha256: str,
    store: ObjectStore,
    settings: Settings,
) -> tuple[File, bool]:
    """Store a received upload. Returns (file, needs_background_validation).

    Small files are validated before anything is stored: an invalid one raises 422 and leaves no
    object and no row. Large files are stored as ``uploaded`` and validated after the response.

    The row is flushed before the object is written, so a row the database refuses never leaves an
    object behind; the caller deletes the object if the commit itself fails.
    """
    from app.datasets import validate_dataset

    if purpose not in PURPOSES:
        raise ServiceError(ErrorCode.INVALID_PURPOSE, f"Unknown purpose {purpose!r}; expected one of {PURPOSES}.",
                           "purpose")
    if size == 0:
        raise ServiceError(ErrorCode.DATASET_INVALID, "The file is empty. Nothing was stored.", "file")

    file = File(
        id=new_id("file"), project_id=project_id, filename=filename, purpose=purpose, bytes=size, sha256=sha256,
        status="uploaded",
    )
    file.storage_key = storage_key(project_id, file.id)
    inline = size <= settings.inline_validation_bytes
    if inline:
        report = validate_dataset(tmp_path, filename, dataset_limits(settings)).to_dict()
        if not report["ok"]:
            raise invalid_dataset_error(report)
        file.report = report
        file.status = "processed"
        file.status_details = None
    session.add(file)
    session.flush()
    try:
        store.put_file(file.storage_key, tmp_path)
    except BaseException:
        # A put that timed out waiting for S3's answer may still have landed; the row will not.
        forget_object(store, file.storage_key)
        raise
    return file, not inline


def forget_object(store: ObjectStore, key: str) -> None:
    """Delete an object whose row did not commit, best effort: if storage is down too, the failure
    the caller is already raising is the one to report."""
    try:
        store.delete(key)
    except Exception:
        log.warning("files.orphan_delete_failed", storage_key=key, exc_info=True)


def validate_in_background(file_id: str, filename: str, tmp_path: Path, settings: Settings) -> threading.Thread:
    """Validate a large upload after the response; ``uploaded → processed | error``."""

    def run() -> None:
        from app.datasets import validate_dataset
        from app.datasets.report import storable

        try:
            report = validate_dataset(tmp_path, filename, dataset_limits(settings)).to_dict()
            status = "processed" if report["ok"] else "error"
            details = None if report["ok"] else report_summary(report)
        except Exception as exc:  # a validator bug must still end the file's 'uploaded' state
            log.exception("file.validation_crashed", file_id=file_id)
            report, status, details = None, "error", storable(f"validation failed unexpectedly: {exc}")
        finally:
            tmp_path.unlink(missing_ok=True)
        try:
            _finish_validation(file_id, status, report, details)
        except sa.exc.DBAPIError as exc:
            if isinstance(exc, sa.exc.OperationalError):
                raise  # the database is down: the start-up pass revalidates the file later
            # The database refused this report (a bug in what we stored): end 'uploaded' anyway.
            log.exception("file.report_not_stored", extra={"file_id": file_id})
            _finish_validation(file_id, "error", None, "validation finished, but its report could not be stored")

    thread = threading.Thread(target=run, name=f"validate-{file_id}", daemon=True)
    thread.start()
    return thread


def _finish_validation(file_id: str, status: str, report: dict | None, details: str | None) -> None:
    with session_scope() as session:
        session.execute(
            sa.update(File).where(File.id == file_id).values(status=status, report=report, status_details=details)
        )


def resume_pending_validations(settings: Settings, store: ObjectStore, *, before: float | None = None) -> list[str]:
    """Recover what a server that stopped (or was killed) left behind. Called at API start-up.

    Temp files of dead processes are removed, and every file still 'uploaded' — its validation was
    cut short, or never started because the process died between commit and hand-off — is fetched
    from storage and validated again. "Every" means created before this call (``before``, default
    now), with no grace period: another live API process validating the same file meanwhile only
    writes the same result twice, while waiting would leave a file stuck until the next restart.
    """
    import tempfile

    from app.db import now

    tmp_root = settings.data_dir / "tmp"
    sweep_stale(tmp_root)
    cutoff = now() if before is None else before
    with session_scope() as session:
        pending = session.execute(sa.select(File.id, File.filename, File.storage_key).where(
            File.status == "uploaded", File.created_at < cutoff)).all()
    resumed = []
    for file_id, filename, key in pending:
        fd, name = tempfile.mkstemp(dir=process_scratch_dir(tmp_root), prefix="revalidate-")
        os.close(fd)
        try:
            store.get_file(key, Path(name))
        except Exception as exc:  # the object is gone or storage is down: say so, don't loop forever
            Path(name).unlink(missing_ok=True)
            with session_scope() as session:
                session.execute(sa.update(File).where(File.id == file_id, File.status == "uploaded").values(
                    status="error", status_details=f"validation was interrupted and the upload is unreadable: {exc}"))
            continue
        validate_in_background(file_id, filename, Path(name), settings)
        resumed.append(file_id)
    return resumed


def get_file(session: Session, *, project_id: str, file_id: str, param: str | None = None) -> File:
    file = session.scalar(sa.select(File).where(File.id == file_id, File.project_id == project_id))
    if file is None:
        raise ServiceError(ErrorCode.FILE_NOT_FOUND, f"No file with id {file_id!r}.", param)
    return file


def list_files(session: Session, *, project_id: str, after: str | None, limit: int, purpose: str | None):
    query = sa.select(File).where(File.project_id == project_id)
    if purpose:
        query = query.where(File.purpose == purpose)
    return page(session, query, File, after=after, limit=limit)


def delete_file(session: Session, *, project_id: str, file_id: str, store: ObjectStore) -> None:
    from app.jobs.models import Job

    file = get_file(session, project_id=project_id, file_id=file_id)
    in_use = session.scalar(
        sa.select(Job.id).where(
            sa.or_(Job.training_file_id == file_id, Job.validation_file_id == file_id),
            Job.status.in_(ACTIVE_JOB_STATUSES),
        ).limit(1)
    )
    if in_use:
        raise ServiceError(ErrorCode.FILE_IN_USE, f"File {file_id} is used by active job {in_use}.", "file_id")
    # a finished job keeps its reference for provenance; the row goes, the object goes
    session.execute(sa.update(Job).where(Job.validation_file_id == file_id).values(validation_file_id=None))
    store.delete(file.storage_key)
    session.delete(file)
    session.flush()
