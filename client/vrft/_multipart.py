"""A streamed ``multipart/form-data`` body for uploads.

The body is ``preamble + file bytes + epilogue``; its length is known up front (so the server can
refuse an oversized upload before reading it) and the file is read in 1 MiB chunks, never whole.
Each retry builds a fresh iterator (re-opening the path or seeking the file object back).
"""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import IO, Union

CHUNK = 1024 * 1024
FileSource = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, IO[bytes]]


def _quote(value: str) -> str:
    # What browsers do: percent-escape the characters that would end the quoted string or the header.
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


class MultipartUpload:
    def __init__(self, source: FileSource, *, fields: dict[str, str], filename: str | None = None,
                 content_type: str = "application/octet-stream"):
        self._path: Path | None = None
        self._bytes: bytes | None = None
        self._fh: IO[bytes] | None = None
        self._start = 0  # where a file object's upload begins (its position when handed over)
        if isinstance(source, (bytes, bytearray, memoryview)):
            self._bytes = bytes(source)
            size = len(self._bytes)
            default_name = "upload.jsonl"
        elif isinstance(source, (str, os.PathLike)):
            self._path = Path(source)
            if not self._path.is_file():
                raise FileNotFoundError(f"No such file: {self._path}")
            size = self._path.stat().st_size
            default_name = self._path.name
        elif hasattr(source, "read"):
            self._fh = source
            if not source.seekable():
                raise ValueError("A file object to upload must be seekable (so a retry can re-send it).")
            self._start = start = source.tell()
            source.seek(0, io.SEEK_END)
            size = source.tell() - start
            source.seek(start)
            default_name = os.path.basename(getattr(source, "name", "") or "") or "upload.jsonl"
        else:
            raise TypeError(f"Cannot upload a {type(source).__name__}: pass a path, bytes or a binary file object.")
        self.filename = filename or default_name
        self.file_size = size
        self.boundary = f"vrft-{uuid.uuid4().hex}"
        parts = []
        for name, value in fields.items():
            parts.append(
                f'--{self.boundary}\r\nContent-Disposition: form-data; name="{_quote(name)}"\r\n\r\n{value}\r\n'
            )
        parts.append(
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="file"; filename="{_quote(self.filename)}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        )
        self._preamble = "".join(parts).encode("utf-8")
        self._epilogue = f"\r\n--{self.boundary}--\r\n".encode("ascii")

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    @property
    def content_length(self) -> int:
        return len(self._preamble) + self.file_size + len(self._epilogue)

    def headers(self) -> dict[str, str]:
        return {"Content-Type": self.content_type, "Content-Length": str(self.content_length)}

    def _file_chunks(self) -> Iterator[bytes]:
        if self._bytes is not None:
            view = memoryview(self._bytes)
            for i in range(0, len(view), CHUNK):
                yield bytes(view[i : i + CHUNK])
        elif self._path is not None:
            with open(self._path, "rb") as fh:
                while chunk := fh.read(CHUNK):
                    yield chunk
        else:
            assert self._fh is not None
            self._fh.seek(self._start)
            remaining = self.file_size
            while remaining > 0 and (chunk := self._fh.read(min(CHUNK, remaining))):
                remaining -= len(chunk)
                yield chunk

    def iter_body(self, on_progress: Callable[[int], None] | None = None) -> Iterator[bytes]:
        """A fresh iterator over the whole body; ``on_progress(n)`` after each file chunk is sent."""
        yield self._preamble
        for chunk in self._file_chunks():
            yield chunk
            if on_progress is not None:
                on_progress(len(chunk))
        yield self._epilogue

    async def aiter_body(self, on_progress: Callable[[int], None] | None = None) -> AsyncIterator[bytes]:
        for chunk in self.iter_body(on_progress):
            yield chunk
