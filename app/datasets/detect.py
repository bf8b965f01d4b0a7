"""Tell the container apart by its first bytes; the file name only breaks ties and sharpens messages."""

from __future__ import annotations

import tarfile
from pathlib import Path

from app.datasets.report import Code, fatal

JSONL = "jsonl"
ZIP = "zip"
TAR = "tar"
PARQUET = "parquet"
# Compressed streams that may hold a tar; the value is the codec name used by archive.py.
COMPRESSED = {b"\x1f\x8b": "gz", b"BZh": "bz2", b"\xfd7zXZ\x00": "xz"}

_HEAD = 512


def sniff(path: Path, filename: str) -> str:
    """One of JSONL, ZIP, TAR, PARQUET, or a codec from COMPRESSED; raises ``Fatal`` otherwise."""
    name = filename.lower()
    if path.stat().st_size == 0:
        raise fatal(Code.EMPTY_FILE, f"{filename} is empty (0 bytes)")
    with path.open("rb") as f:
        head = f.read(_HEAD)

    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return ZIP
    if head.startswith(b"PAR1"):
        return PARQUET
    if head[257:262] == b"ustar":
        return TAR
    for magic, codec in COMPRESSED.items():
        if head.startswith(magic):
            return codec

    if name.endswith(".zip"):
        raise fatal(Code.ARCHIVE_INVALID, f"{filename} is named .zip but is not a zip archive")
    if name.endswith(".parquet"):
        raise fatal(Code.PARQUET_INVALID, f"{filename} is named .parquet but lacks Parquet's 'PAR1' header")
    if name.endswith(".tar") and _is_old_tar(path):
        return TAR  # pre-POSIX tar has no 'ustar' magic; trust the name if tarfile agrees
    if name.endswith((".tar", ".tgz", ".tar.gz", ".tar.bz2", ".tar.xz")):
        raise fatal(Code.ARCHIVE_INVALID, f"{filename} is named like a tar archive but is not one")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise fatal(Code.INVALID_UTF8, f"{filename} is UTF-16 text; save it as UTF-8")
    if b"\x00" in head:
        raise fatal(
            Code.UNSUPPORTED_FORMAT,
            f"{filename} is binary (starts {head[:8]!r}) and not a format we read: upload .jsonl, "
            ".zip, .tar, .tar.gz or .parquet",
        )
    return JSONL


def _is_old_tar(path: Path) -> bool:
    try:
        with tarfile.open(path, "r:") as tar:
            return tar.next() is not None
    except (tarfile.TarError, OSError, EOFError):
        return False
