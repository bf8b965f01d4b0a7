"""Builders for test datasets. Every image and archive is generated here; nothing binary is committed."""

from __future__ import annotations

import base64
import functools
import io
import json
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

from PIL import Image


def image_bytes(size=(8, 6), fmt="PNG", color=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, fmt)
    return buf.getvalue()


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def huge_png(width: int, height: int) -> bytes:
    """A real, complete 1-bit PNG of any size: rows of zeros deflate to almost nothing.

    Built by hand (streamed through zlib) because Pillow would need width×height bytes of memory.
    """
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    z = zlib.compressobj(1)  # level 1: zeros still shrink ~230×, in a third of the time of 9
    parts = []
    rows_per_step = max(1, (4 << 20) // len(row))
    for start in range(0, height, rows_per_step):
        parts.append(z.compress(row * min(rows_per_step, height - start)))
    parts.append(z.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


def visual_row(image: str, problem="What is this?", solution="<answer>cat</answer>", **extra) -> dict:
    return {"image": image, "problem": problem, "solution": solution, **extra}


def openai_row(image_url: str, text="What is this?", **refs) -> dict:
    return {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": text},
                    {"type": "image_url", "image_url": {"url": image_url}},
                ],
            }
        ],
        **refs,
    }


def jsonl_bytes(rows) -> bytes:
    """Rows are dicts (dumped as JSON) or raw bytes/str lines written as they are."""
    out = []
    for row in rows:
        if isinstance(row, dict):
            out.append(json.dumps(row).encode())
        elif isinstance(row, str):
            out.append(row.encode())
        else:
            out.append(row)
    return b"\n".join(out) + b"\n"


def write_zip(path: Path, members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def write_tar(path: Path, members: dict[str, bytes], mode="w") -> Path:
    with tarfile.open(path, mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def codes(report) -> list[tuple]:
    """(line, field, code) of every kept problem, for compact assertions."""
    return [(p.line, p.field, p.code) for p in report.problems]


@functools.lru_cache(maxsize=4)
def deflated_zeros(size: int, chunk: int = 1 << 20) -> tuple[bytes, int]:
    """(raw deflate stream, crc32) of ``size`` zero bytes, built in milliseconds.

    One chunk is compressed with a full flush (a byte-aligned block with no back-references), and
    that block repeated: the stream is valid deflate, exactly what a compressor would emit, without
    spending seconds compressing hundreds of megabytes.
    """
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = z.compress(bytes(chunk)) + z.flush(zlib.Z_FULL_FLUSH)
    count, rest = divmod(size, chunk)
    tail = z.compress(bytes(rest)) + z.flush(zlib.Z_FINISH)
    crc = 0
    zeros = bytes(chunk)
    for _ in range(count):
        crc = zlib.crc32(zeros, crc)
    crc = zlib.crc32(bytes(rest), crc)
    return block * count + tail, crc


def raw_zip(members: list[tuple[str, bytes, int, int, int]]) -> bytes:
    """A zip from pre-deflated members ``(name, deflated, crc, declared_size, stored_crc)``.

    Written by hand so a test can state any uncompressed size in the headers, true or false.
    """
    local, central = bytearray(), bytearray()
    for name, deflated, _crc, declared, stored_crc in members:
        encoded = name.encode()
        offset = len(local)
        fields = struct.pack("<HHHHHIII", 20, 0, 8, 0, 0, stored_crc, len(deflated), declared)
        local += b"PK\x03\x04" + fields + struct.pack("<HH", len(encoded), 0) + encoded + deflated
        central += (
            b"PK\x01\x02" + struct.pack("<H", 20) + fields
            + struct.pack("<HHHHHII", len(encoded), 0, 0, 0, 0, 0, offset) + encoded
        )
    end = b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, len(members), len(members), len(central), len(local), 0)
    return bytes(local + central + end)
