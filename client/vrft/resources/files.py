"""``client.files``: upload (streamed multipart), list, retrieve, content, delete, validation."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from vrft._base import RequestOptions
from vrft._multipart import FileSource, MultipartUpload
from vrft._progress import Progress
from vrft.errors import VrftError
from vrft.pagination import AsyncPager, SyncPager
from vrft.resources._shared import FILES, file_id, resolve_dest
from vrft.types import FileDeleted, FileObject, FileValidation, Page

if TYPE_CHECKING:
    from vrft._client import AsyncClient, Client

FileRef = str | FileObject


def _bar_for(upload: MultipartUpload, progress: bool | Progress) -> Progress | None:
    if not progress:
        return None
    return progress if isinstance(progress, Progress) else Progress(f"upload {upload.filename}", upload.file_size)


class Files:
    def __init__(self, client: Client):
        self._client = client

    def upload(self, file: FileSource, purpose: str = "fine-tune", filename: str | None = None,
               progress: bool | Progress = False) -> FileObject:
        """Upload a dataset (path, bytes or seekable binary file), streamed from disk in 1 MiB chunks.

        Small files are validated before the response (an invalid one raises ``UnprocessableEntityError``
        with ``code == "dataset_invalid"``); large ones come back ``status="uploaded"`` and are validated
        in the background — see ``wait_processed()``.
        """
        upload = MultipartUpload(file, fields={"purpose": purpose}, filename=filename)
        bar = _bar_for(upload, progress)

        def body() -> Iterator[bytes]:  # a fresh stream (and progress from zero) for every attempt
            if bar is not None:
                bar.update(0)
            return upload.iter_body(bar.advance if bar is not None else None)

        try:
            response = self._client.request(RequestOptions("POST", FILES, content=body, headers=upload.headers()))
        finally:
            if bar is not None:
                bar.close()
        return FileObject.model_validate(response.json())

    def create(self, *, file: FileSource, purpose: str = "fine-tune", filename: str | None = None) -> FileObject:
        """openai-python's name for ``upload``."""
        return self.upload(file, purpose=purpose, filename=filename)

    def list(self, *, purpose: str | None = None, limit: int | None = None,
             after: str | None = None) -> SyncPager[FileObject]:
        def fetch(cursor: str | None) -> Page[FileObject]:
            return self._client.call("GET", FILES, Page[FileObject],
                                     params={"purpose": purpose, "limit": limit, "after": cursor})
        return SyncPager(fetch, after)

    def retrieve(self, file: FileRef) -> FileObject:
        return self._client.call("GET", f"{FILES}/{file_id(file)}", FileObject)

    def validation(self, file: FileRef) -> FileValidation:
        """The validation report: rows read/valid, format, and each problem ``{line, field, code, message}``."""
        return self._client.call("GET", f"{FILES}/{file_id(file)}/validation", FileValidation)

    def content(self, file: FileRef, dest: str | os.PathLike[str] | None = None) -> bytes | Path:
        """The file's bytes; with ``dest``, streams them to disk instead and returns the path."""
        fid = file_id(file)
        with self._client.download(f"{FILES}/{fid}/content") as response:
            if dest is None:
                return response.read()
            path = resolve_dest(dest, fid)
            tmp = path.with_name(path.name + ".part")
            with open(tmp, "wb") as fh:
                for chunk in response.iter_bytes(1024 * 1024):
                    fh.write(chunk)
            tmp.replace(path)
            return path

    def delete(self, file: FileRef) -> FileDeleted:
        return self._client.call("DELETE", f"{FILES}/{file_id(file)}", FileDeleted)

    def wait_processed(self, file: FileRef, timeout: float = 600.0, poll_interval: float = 1.0) -> FileObject:
        """Poll until the file is ``processed`` or ``error`` (large uploads validate in the background)."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            obj = self.retrieve(file)
            if obj.status != "uploaded":
                return obj
            if time.monotonic() > deadline:
                raise VrftError(f"File {obj.id} still 'uploaded' after {timeout:g}s")
            self._client.sleep(poll_interval)


class AsyncFiles:
    def __init__(self, client: AsyncClient):
        self._client = client

    async def upload(self, file: FileSource, purpose: str = "fine-tune", filename: str | None = None,
                     progress: bool | Progress = False) -> FileObject:
        upload = MultipartUpload(file, fields={"purpose": purpose}, filename=filename)
        bar = _bar_for(upload, progress)

        def body() -> AsyncIterator[bytes]:
            if bar is not None:
                bar.update(0)
            return upload.aiter_body(bar.advance if bar is not None else None)

        try:
            response = await self._client.request(
                RequestOptions("POST", FILES, content=body, headers=upload.headers()))
        finally:
            if bar is not None:
                bar.close()
        return FileObject.model_validate(response.json())

    async def create(self, *, file: FileSource, purpose: str = "fine-tune",
                     filename: str | None = None) -> FileObject:
        return await self.upload(file, purpose=purpose, filename=filename)

    def list(self, *, purpose: str | None = None, limit: int | None = None,
             after: str | None = None) -> AsyncPager[FileObject]:
        async def fetch(cursor: str | None) -> Page[FileObject]:
            return await self._client.call("GET", FILES, Page[FileObject],
                                           params={"purpose": purpose, "limit": limit, "after": cursor})
        return AsyncPager(fetch, after)

    async def retrieve(self, file: FileRef) -> FileObject:
        return await self._client.call("GET", f"{FILES}/{file_id(file)}", FileObject)

    async def validation(self, file: FileRef) -> FileValidation:
        return await self._client.call("GET", f"{FILES}/{file_id(file)}/validation", FileValidation)

    async def content(self, file: FileRef, dest: str | os.PathLike[str] | None = None) -> bytes | Path:
        fid = file_id(file)
        async with self._client.download(f"{FILES}/{fid}/content") as response:
            if dest is None:
                return await response.aread()
            path = resolve_dest(dest, fid)
            tmp = path.with_name(path.name + ".part")
            with open(tmp, "wb") as fh:
                async for chunk in response.aiter_bytes(1024 * 1024):
                    fh.write(chunk)
            tmp.replace(path)
            return path

    async def delete(self, file: FileRef) -> FileDeleted:
        return await self._client.call("DELETE", f"{FILES}/{file_id(file)}", FileDeleted)

    async def wait_processed(self, file: FileRef, timeout: float = 600.0, poll_interval: float = 1.0) -> FileObject:
        import time

        deadline = time.monotonic() + timeout
        while True:
            obj = await self.retrieve(file)
            if obj.status != "uploaded":
                return obj
            if time.monotonic() > deadline:
                raise VrftError(f"File {obj.id} still 'uploaded' after {timeout:g}s")
            await self._client.sleep(poll_interval)
