"""Object storage: one interface, two backends (S3 through boto3, or a local folder).

Objects move file-to-file or stream-to-stream — never whole in memory — so a 1 GB dataset upload or
a multi-GB adapter costs a few MB of RAM. S3 uploads go through boto3's transfer manager, which
switches to multipart above ``multipart_threshold``.

Every S3 call has a connect timeout, a read timeout and a bounded number of tries (Settings
``s3_connect_timeout_s``, ``s3_read_timeout_s``, ``s3_max_attempts``): storage that hangs fails the
call with ``STORAGE_UNAVAILABLE`` (503) in bounded time instead of holding a request or a worker.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from app.config import Settings, get_settings
from app.errors import ErrorCode, ServiceError

CHUNK = 1024 * 1024


class ObjectStore(Protocol):
    def put_file(self, key: str, path: Path) -> None: ...
    def get_file(self, key: str, path: Path) -> None: ...
    def open_read(self, key: str) -> Iterator[bytes]: ...
    def size(self, key: str) -> int | None: ...
    def delete(self, key: str) -> None: ...
    def delete_prefix(self, prefix: str) -> None: ...
    def presigned_url(self, key: str, ttl_s: int, filename: str | None = None) -> str | None: ...
    def local_path(self, key: str) -> Path | None: ...
    def ping(self) -> None: ...


def _unavailable(exc: Exception) -> ServiceError:
    return ServiceError(ErrorCode.STORAGE_UNAVAILABLE, f"object storage is unavailable: {exc}")


class LocalStore:
    """Objects as files under a folder; writes land atomically via a temp file + rename."""

    def __init__(self, root: Path):
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise ValueError(f"object key escapes the store: {key!r}")
        return path

    def local_path(self, key: str) -> Path:
        """Where the object lives on disk (it may not exist), for serving it without a copy."""
        return self._path(key)

    def put_file(self, key: str, path: Path) -> None:
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".part-")
        os.close(fd)
        try:
            shutil.copyfile(path, tmp)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get_file(self, key: str, path: Path) -> None:
        src = self._path(key)
        if not src.exists():
            raise FileNotFoundError(key)
        shutil.copyfile(src, path)

    def open_read(self, key: str) -> Iterator[bytes]:
        src = self._path(key)
        if not src.exists():
            raise FileNotFoundError(key)

        def chunks() -> Iterator[bytes]:
            with open(src, "rb") as fh:
                while block := fh.read(CHUNK):
                    yield block

        return chunks()

    def size(self, key: str) -> int | None:
        p = self._path(key)
        return p.stat().st_size if p.exists() else None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> None:
        p = self._path(prefix.rstrip("/"))
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)

    def presigned_url(self, key: str, ttl_s: int, filename: str | None = None) -> str | None:
        return None  # the API streams local objects itself

    def ping(self) -> None:
        if not os.access(self.root, os.W_OK):
            raise _unavailable(PermissionError(f"{self.root} is not writable"))


class S3Store:
    def __init__(self, settings: Settings):
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        kwargs = {}
        if settings.s3_access_key_id:
            kwargs = {
                "aws_access_key_id": settings.s3_access_key_id,
                "aws_secret_access_key": settings.s3_secret_access_key,
            }
        config = Config(signature_version="s3v4", s3={"addressing_style": "path"},
                        # total_max_attempts counts the first try; botocore's max_attempts would not
                        retries={"total_max_attempts": settings.s3_max_attempts, "mode": "standard"},
                        connect_timeout=settings.s3_connect_timeout_s, read_timeout=settings.s3_read_timeout_s)
        self.client = boto3.client("s3", endpoint_url=settings.s3_endpoint_url, region_name=settings.s3_region,
                                   config=config, **kwargs)
        # A presigned URL's signature covers its host: sign with the address clients will use.
        self.signer = self.client
        if settings.s3_public_endpoint_url:
            self.signer = boto3.client("s3", endpoint_url=settings.s3_public_endpoint_url,
                                       region_name=settings.s3_region, config=config, **kwargs)
        self.bucket = settings.s3_bucket
        self.transfer = TransferConfig(multipart_threshold=64 * CHUNK, multipart_chunksize=16 * CHUNK)

    def _call(self, fn, *args, **kwargs):
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(*args, **kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise FileNotFoundError(args[0] if args else "") from exc
            raise _unavailable(exc) from exc
        except (BotoCoreError, Boto3Error) as exc:
            # Boto3Error: the transfer manager wraps what failed under upload_file (S3UploadFailedError).
            raise _unavailable(exc) from exc

    def ensure_bucket(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            self._call(self.client.create_bucket, Bucket=self.bucket)
        except BotoCoreError as exc:  # unreachable: a 503 for the caller, and get_store() retries next time
            raise _unavailable(exc) from exc

    def put_file(self, key: str, path: Path) -> None:
        self._call(self.client.upload_file, str(path), self.bucket, key, Config=self.transfer)

    def get_file(self, key: str, path: Path) -> None:
        self._call(self.client.download_file, self.bucket, key, str(path), Config=self.transfer)

    def open_read(self, key: str) -> Iterator[bytes]:
        obj = self._call(self.client.get_object, Bucket=self.bucket, Key=key)
        return obj["Body"].iter_chunks(CHUNK)

    def local_path(self, key: str) -> None:
        return None  # objects are remote; presigned_url hands them out

    def size(self, key: str) -> int | None:
        try:
            return self._call(self.client.head_object, Bucket=self.bucket, Key=key)["ContentLength"]
        except FileNotFoundError:
            return None

    def delete(self, key: str) -> None:
        self._call(self.client.delete_object, Bucket=self.bucket, Key=key)

    def delete_prefix(self, prefix: str) -> None:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in self._call(lambda: list(paginator.paginate(Bucket=self.bucket, Prefix=prefix))):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                self._call(self.client.delete_objects, Bucket=self.bucket, Delete={"Objects": keys})

    def presigned_url(self, key: str, ttl_s: int, filename: str | None = None) -> str | None:
        params = {"Bucket": self.bucket, "Key": key}
        if filename:
            from app.files.names import content_disposition

            params["ResponseContentDisposition"] = content_disposition(filename)
        return self.signer.generate_presigned_url("get_object", Params=params, ExpiresIn=ttl_s)

    def ping(self) -> None:
        self._call(self.client.head_bucket, Bucket=self.bucket)


def make_store(settings: Settings) -> ObjectStore:
    if settings.s3_bucket:
        store = S3Store(settings)
        store.ensure_bucket()
        return store
    return LocalStore(settings.data_dir / "objects")


@lru_cache
def get_store() -> ObjectStore:
    return make_store(get_settings())
