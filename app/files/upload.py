"""Receive a multipart upload straight to a temp file on disk, counting and hashing as it streams.

Starlette's form parser spools files to an anonymous temp file we would have to copy again; parsing
the stream ourselves writes each byte once, stops at the size limit the moment it is crossed (413,
nothing stored), and yields the SHA-256 for free.

A body must end with its closing boundary. One that stops short — the client was cut off, or its
Content-Length lied — is a 400 and its temp file is deleted: storing it would validate the part
that arrived as if it were the whole file, and the user would train on fewer rows without knowing.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

from app.errors import ErrorCode, ServiceError
from app.files.names import display_name

MAX_FIELD_BYTES = 64 * 1024
# The form has two parts; a body of a million tiny fields would otherwise fill a dict in memory.
MAX_PARTS = 16


@dataclass
class ReceivedUpload:
    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None
    path: Path | None = None
    size: int = 0
    sha256: str = ""

    def discard(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


async def receive_multipart(
    stream: AsyncIterator[bytes], content_type: str, *, tmp_dir: Path, max_bytes: int
) -> ReceivedUpload:
    ctype, params = parse_options_header(content_type or "")
    boundary = params.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise ServiceError(ErrorCode.BAD_REQUEST, "Upload must be multipart/form-data with a 'file' part.")

    tmp_dir.mkdir(parents=True, exist_ok=True)
    out = ReceivedUpload()
    digest = hashlib.sha256()
    state: dict = {"headers": {}, "name": None, "is_file": False, "buf": bytearray(), "fh": None, "hdr": b"",
                   "ended": False}
    errors: list[ServiceError] = []

    def on_part_begin():
        state.update(headers={}, name=None, is_file=False, buf=bytearray())
        state["parts"] = state.get("parts", 0) + 1
        if state["parts"] > MAX_PARTS and not errors:
            errors.append(ServiceError(ErrorCode.BAD_REQUEST, f"The form has more than {MAX_PARTS} parts; send "
                                       "'purpose' and one 'file'."))

    def on_header_field(data, start, end):
        state["hdr"] = data[start:end].lower()

    def on_header_value(data, start, end):
        state["headers"][state["hdr"]] = state["headers"].get(state["hdr"], b"") + data[start:end]

    def on_headers_finished():
        _, disp = parse_options_header(state["headers"].get(b"content-disposition", b""))
        state["name"] = disp.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in disp and state["name"] == "file":
            if out.path is not None:
                errors.append(ServiceError(ErrorCode.BAD_REQUEST, "Send exactly one 'file' part.", "file"))
                return
            state["is_file"] = True
            out.filename = display_name(disp[b"filename"].decode("utf-8", "replace"))
            fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="upload-")
            out.path = Path(name)
            state["fh"] = os.fdopen(fd, "wb", buffering=1024 * 1024)

    def on_part_data(data, start, end):
        chunk = data[start:end]
        if state["is_file"]:
            out.size += len(chunk)
            if out.size > max_bytes:
                if not errors:
                    errors.append(_too_large(max_bytes))
                return
            digest.update(chunk)
            state["fh"].write(chunk)
        elif len(state["buf"]) + len(chunk) <= MAX_FIELD_BYTES:
            state["buf"].extend(chunk)

    def on_part_end():
        if state["is_file"]:
            state["fh"].close()
            state["fh"] = None
        elif state["name"]:
            out.fields[state["name"]] = state["buf"].decode("utf-8", "replace")

    def on_end():
        state["ended"] = True

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
            "on_end": on_end,
        },
    )
    try:
        async for chunk in stream:
            parser.write(chunk)
            if errors:
                raise errors[0]
        parser.finalize()
        if errors:
            raise errors[0]
        if not state["ended"]:
            raise _truncated("the body ended before the closing boundary")
    except ServiceError:
        _abandon(state, out)
        raise
    except ClientDisconnect as exc:
        _abandon(state, out)
        raise _truncated("the client closed the connection mid-body") from exc
    except Exception as exc:  # a malformed body is the client's mistake, not a 500
        _abandon(state, out)
        raise ServiceError(ErrorCode.BAD_REQUEST, f"Malformed multipart body: {exc}") from exc
    except BaseException:  # cancelled (server shutting down): still leave no temp file
        _abandon(state, out)
        raise
    _close(state)
    if out.path is None:
        raise ServiceError(ErrorCode.BAD_REQUEST, "Missing the 'file' part of the upload.", "file")
    out.sha256 = digest.hexdigest()
    return out


def _abandon(state: dict, out: ReceivedUpload) -> None:
    _close(state)
    out.discard()


def _truncated(why: str) -> ServiceError:
    return ServiceError(
        ErrorCode.BAD_REQUEST,
        f"The upload is incomplete: {why}. Nothing was stored; send the whole file again.",
        "file",
    )


def _close(state: dict) -> None:
    if state.get("fh") is not None:
        state["fh"].close()
        state["fh"] = None


def _too_large(max_bytes: int) -> ServiceError:
    return ServiceError(
        ErrorCode.FILE_TOO_LARGE,
        f"File exceeds the upload limit of {max_bytes:,} bytes (VRFT_MAX_UPLOAD_BYTES).",
        "file",
    )
