"""Moving bytes between the worker and object storage: datasets in (cached per file id), adapters and
checkpoints out (packed as .tar), with bounded retries so a storage blip doesn't fail a long job."""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

import structlog

from app.errors import ErrorCode, ServiceError
from app.storage import ObjectStore

log = structlog.get_logger(__name__)



class StorageUnavailable(Exception):
    """Storage stayed unreachable through every retry."""


def with_retries(what: str, fn, *args, **kwargs):
    from app.config import get_settings

    delays = get_settings().storage_retry_delays_s
    for attempt, delay in enumerate((*delays, None)):
        try:
            return fn(*args, **kwargs)
        except FileNotFoundError:
            raise
        except (ServiceError, OSError) as exc:
            if isinstance(exc, ServiceError) and exc.code is not ErrorCode.STORAGE_UNAVAILABLE:
                raise
            if delay is None:
                raise StorageUnavailable(f"{what} failed after {attempt + 1} attempts: {exc}") from exc
            log.warning("storage.retry", what=what, attempt=attempt + 1, error=str(exc))
            time.sleep(delay)


def pack(folder: Path, dest: Path, *, exclude: tuple[str, ...] = ()) -> Path:
    """A flat .tar of ``folder``'s files (the API's adapter artifact format)."""
    with tarfile.open(dest, "w") as tar:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.name not in exclude:
                tar.add(path, arcname=str(path.relative_to(folder)))
    return dest


def unpack(archive: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")  # our own archives, but never trust paths anyway
    return dest


def upload_folder(store: ObjectStore, folder: Path, key: str, *, exclude: tuple[str, ...] = ()) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        archive = pack(folder, Path(tmp) / "artifact.tar", exclude=exclude)
        with_retries(f"upload {key}", store.put_file, key, archive)


def download_folder(store: ObjectStore, key: str, dest: Path) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "artifact.tar"
        with_retries(f"download {key}", store.get_file, key, archive)
        return unpack(archive, dest)


def cached_dataset(store: ObjectStore, key: str, file_id: str, cache_dir: Path) -> Path:
    """The dataset file on local disk, downloaded once per file id (files are immutable)."""
    target = cache_dir / "datasets" / file_id / "data"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
    os.close(fd)
    try:
        with_retries(f"download dataset {file_id}", store.get_file, key, Path(tmp))
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def clear(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
