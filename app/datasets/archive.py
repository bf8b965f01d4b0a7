"""Zip and tar archives: a manifest plus images, read member by member, never extracted.

Members are looked up by name and read into memory one image at a time, so no name from the archive
ever becomes a path on disk. The one exception is a compressed tar (.tar.gz, .tar.bz2, .tar.xz):
reading its members in manifest order needs random access, so the tar inside is first decompressed
into a private temporary file, under the same expansion limits.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import posixpath
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from app.datasets.images import is_data_url
from app.datasets.jsonl import JsonlRows
from app.datasets.limits import Limits
from app.datasets.report import Code, Invalid, Problem, fatal
from app.datasets.rows import Candidate

_CODECS = {"gz": gzip.open, "bz2": bz2.open, "xz": lzma.open}
_CHUNK = 1024 * 1024
# What reading a damaged member raises (zipfile, tarfile and the codecs underneath them).
_READ_ERRORS = (
    zipfile.BadZipFile, tarfile.TarError, zlib.error, lzma.LZMAError, NotImplementedError, EOFError, OSError,
)


@dataclass
class Member:
    name: str  # normalised path inside the archive: the lookup key
    size: int  # declared uncompressed size
    handle: object  # ZipInfo or TarInfo


def expansion_budget(packed: int, limits: Limits) -> int:
    """The most bytes an archive of ``packed`` bytes may expand to."""
    return min(limits.max_archive_bytes, max(limits.archive_ratio_floor, int(packed * limits.max_archive_ratio)))


def _check_expansion(total: int, packed: int, limits: Limits, worst: str) -> None:
    if total > limits.max_archive_bytes:
        raise fatal(Code.ARCHIVE_BOMB, f"archive declares {total:,} bytes uncompressed, over the limit of "
                    f"{limits.max_archive_bytes:,}{worst}")
    if total > expansion_budget(packed, limits):
        raise fatal(Code.ARCHIVE_BOMB, f"archive expands {total / max(packed, 1):,.0f}× ({total:,} bytes from "
                    f"{packed:,}), over the limit of {limits.max_archive_ratio:g}×{worst}")


def safe_name(raw: str) -> tuple[str, str | None]:
    """(normalised name, why it is unsafe or None). Backslashes count as separators: Windows tools
    write them, and ``..\\..\\x`` must not slip past a check that only splits on '/'."""
    name = raw.replace("\\", "/")
    if "\x00" in name:
        return name, "has a NUL byte in its name"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return name, "is an absolute path"
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return name, "climbs out of the archive with '..'"
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts), None


class _Index:
    """Regular-file members by normalised name, plus notices about members we refuse to touch."""

    def __init__(self) -> None:
        self.members: dict[str, Member] = {}
        self.notices: list[Problem] = []
        self.declared = 0
        self.worst = ("", 0.0)  # member with the highest expansion ratio, for bomb messages

    def refuse(self, code: Code, raw: str, why: str) -> None:
        self.notices.append(Problem(None, None, code, f"archive member {raw!r} {why}; it was not read"))

    def add(self, raw: str, size: int, packed: int, handle: object) -> None:
        name, unsafe = safe_name(raw)
        if unsafe:
            self.refuse(Code.PATH_ESCAPES_ARCHIVE, raw, unsafe)
            return
        if name in self.members:
            self.refuse(Code.ARCHIVE_INVALID, raw, "appears twice; names must be unique")
            return
        self.members[name] = Member(name, size, handle)
        self.declared += size
        ratio = size / max(packed, 1)
        if ratio > self.worst[1]:
            self.worst = (name, ratio)

    def worst_hint(self) -> str:
        name, ratio = self.worst
        return f"; member {name!r} alone expands {ratio:,.0f}×" if name else ""


def _zip_entry_count(path: Path) -> int | None:
    """Entries the zip's end-of-central-directory record declares, read before zipfile builds an
    in-memory index of all of them. None when the record is not found (zipfile will say why)."""
    with path.open("rb") as f:
        size = f.seek(0, 2)
        tail_start = max(0, size - (22 + 0xFFFF))  # the record plus the longest possible comment
        f.seek(tail_start)
        tail = f.read()
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or at + 22 > len(tail):
            return None
        count = int.from_bytes(tail[at + 10 : at + 12], "little")
        locator = at - 20
        if count == 0xFFFF and locator >= 0 and tail[locator : locator + 4] == b"PK\x06\x07":
            # Zip64: the real count lives in the zip64 record the locator points at.
            f.seek(int.from_bytes(tail[locator + 8 : locator + 16], "little"))
            record = f.read(56)
            if record[:4] == b"PK\x06\x06" and len(record) == 56:
                count = int.from_bytes(record[32:40], "little")
        return count


class ZipArchive:
    kind = "zip"

    def __init__(self, path: Path, limits: Limits):
        entries = _zip_entry_count(path)
        if entries is not None and entries > limits.max_archive_members:
            raise fatal(Code.ARCHIVE_BOMB, f"zip declares {entries:,} members, over the limit of "
                        f"{limits.max_archive_members:,}")
        try:
            self._zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
            raise fatal(Code.ARCHIVE_INVALID, f"not a readable zip archive: {exc}") from None
        self.index = _Index()
        for info in self._zip.infolist():
            mode = info.external_attr >> 16
            if info.create_system == 3 and stat.S_ISLNK(mode):
                self.index.refuse(Code.PATH_ESCAPES_ARCHIVE, info.filename, "is a symbolic link")
            elif info.is_dir():
                if safe_name(info.filename)[1]:
                    self.index.refuse(Code.PATH_ESCAPES_ARCHIVE, info.filename, safe_name(info.filename)[1])
            elif info.flag_bits & 0x1:
                self.index.refuse(Code.ARCHIVE_INVALID, info.filename, "is encrypted")
            else:
                self.index.add(info.filename, info.file_size, info.compress_size, info)

    def open(self, member: Member) -> BinaryIO:
        return self._zip.open(member.handle)

    def close(self) -> None:
        self._zip.close()


class TarArchive:
    kind = "tar"

    def __init__(self, path: Path, limits: Limits):
        self.index = _Index()
        try:
            self._tar = tarfile.open(path, "r:")
            # Iterating reads headers only; member data is seeked over.
            for count, info in enumerate(self._tar, start=1):
                if count > limits.max_archive_members:
                    self._tar.close()
                    raise fatal(Code.ARCHIVE_BOMB, f"tar has more than {limits.max_archive_members:,} members")
                self._add(info)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise fatal(Code.ARCHIVE_INVALID, f"not a readable tar archive: {exc}") from None

    def _add(self, info: tarfile.TarInfo) -> None:
        if info.issym() or info.islnk():
            kind = "symbolic" if info.issym() else "hard"
            self.index.refuse(Code.PATH_ESCAPES_ARCHIVE, info.name, f"is a {kind} link to {info.linkname!r}")
        elif info.isdir():
            if safe_name(info.name)[1]:
                self.index.refuse(Code.PATH_ESCAPES_ARCHIVE, info.name, safe_name(info.name)[1])
        elif not info.isreg():
            self.index.refuse(Code.ARCHIVE_INVALID, info.name, "is a device, FIFO or other special file")
        else:
            self.index.add(info.name, info.size, info.size, info)

    def open(self, member: Member) -> BinaryIO:
        stream = self._tar.extractfile(member.handle)
        assert stream is not None  # only regular files are indexed
        return stream

    def close(self) -> None:
        self._tar.close()


def _decompress(path: Path, codec: str, dest: Path, limits: Limits) -> None:
    """Write the decompressed stream to ``dest``, counting bytes: headers can lie, the count cannot."""
    packed = path.stat().st_size
    budget = expansion_budget(packed, limits)
    if codec == "gz" and packed >= 18:
        # gzip's trailer states the size (mod 2**32): a cheap early refusal, never an acceptance.
        with path.open("rb") as f:
            f.seek(-4, 2)
            stated = int.from_bytes(f.read(4), "little")
        if stated > budget:
            raise fatal(Code.ARCHIVE_BOMB, f"gzip trailer states {stated:,} bytes uncompressed from {packed:,}, "
                        f"over the limit of {budget:,}")
    written = 0
    try:
        with _CODECS[codec](path, "rb") as src, dest.open("wb") as out:
            while chunk := src.read(_CHUNK):
                written += len(chunk)
                if written > budget:
                    raise fatal(Code.ARCHIVE_BOMB, f"{codec} stream expands past {budget:,} bytes from {packed:,} "
                                f"(limits: {limits.max_archive_ratio:g}× and {limits.max_archive_bytes:,} bytes); "
                                "stopped decompressing")
                out.write(chunk)
    except (OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
        raise fatal(Code.ARCHIVE_INVALID, f"{codec} stream is corrupt: {exc}") from None
    with dest.open("rb") as f:
        f.seek(257)
        if f.read(5) != b"ustar":
            raise fatal(Code.UNSUPPORTED_FORMAT, f"the {codec} file holds no tar archive; we read .jsonl, .zip, "
                        ".tar, .tar.gz and .parquet")


def _choose_manifest(index: _Index) -> Member:
    def hidden(name: str) -> bool:
        return any(part.startswith(".") or part == "__MACOSX" for part in name.split("/"))

    manifests = [m for m in index.members.values() if m.name.lower().endswith(".jsonl") and not hidden(m.name)]
    if not manifests:
        raise fatal(Code.MANIFEST_MISSING, "the archive holds no .jsonl manifest; add one whose rows reference "
                    "the images by paths relative to it")
    depth = min(m.name.count("/") for m in manifests)
    shallowest = sorted(m.name for m in manifests if m.name.count("/") == depth)
    if len(shallowest) > 1:
        raise fatal(Code.ARCHIVE_INVALID, f"{len(shallowest)} candidate manifests at the same level: "
                    f"{', '.join(shallowest[:5])}; keep exactly one .jsonl file there")
    return index.members[shallowest[0]]


class ArchiveRows:
    """The manifest's rows as ``Candidate``s, with their images read from the archive."""

    def __init__(self, archive: ZipArchive | TarArchive, limits: Limits):
        self.archive = archive
        self.limits = limits
        self.manifest: Member | None = None
        self.base = ""
        self.bytes_read = 0
        self.rows: JsonlRows | None = None

    @property
    def layout(self) -> str | None:
        return self.rows.layout if self.rows else None

    def __iter__(self) -> Iterator[Candidate]:
        for notice in self.archive.index.notices:
            yield Candidate(None, [notice], is_row=False)
        # Chosen after the notices are out, so a missing manifest does not hide an unsafe member.
        self.manifest = _choose_manifest(self.archive.index)
        self.base = posixpath.dirname(self.manifest.name)
        try:
            stream = self.archive.open(self.manifest)
        except _READ_ERRORS as exc:
            raise fatal(Code.ARCHIVE_INVALID, f"manifest {self.manifest.name!r} is unreadable: {exc}") from None
        with stream:
            self.rows = JsonlRows(_Guarded(stream, self.manifest.name), self.limits, self.resolve,
                                  in_archive=True, name=f"manifest {self.manifest.name!r}")
            yield from self.rows

    def resolve(self, ref: str | bytes, field: str) -> bytes | str:
        if isinstance(ref, bytes) or is_data_url(ref):
            return ref
        if "://" in ref:
            raise Invalid(Code.INVALID_FIELD, field, "remote URLs are not fetched; put the image in the archive")
        joined, unsafe = safe_name(posixpath.join(self.base, ref.replace("\\", "/")))
        if unsafe or ref.startswith(("/", "\\")):
            raise Invalid(Code.PATH_ESCAPES_ARCHIVE, field, f"{ref!r} points outside the archive; use a path "
                          f"relative to the manifest {self.manifest.name!r}")
        member = self.archive.index.members.get(joined)
        if member is None:
            raise Invalid(Code.IMAGE_NOT_FOUND, field, f"{ref!r} is not in the archive (looked for {joined!r})")
        return self._read(member, field)

    def _read(self, member: Member, field: str) -> bytes:
        # Rows may reference one member many times; count every read so that cannot multiply work.
        if self.bytes_read + member.size > self.limits.max_archive_bytes:
            raise fatal(Code.ARCHIVE_BOMB, f"rows reference members totalling over "
                        f"{self.limits.max_archive_bytes:,} bytes; stopped reading")
        try:
            with self.archive.open(member) as stream:
                data = stream.read(member.size + 1)
        except _READ_ERRORS as exc:
            raise Invalid(Code.ARCHIVE_INVALID, field, f"archive member {member.name!r} is unreadable: {exc}") from None
        self.bytes_read += len(data)
        if len(data) > member.size:
            raise fatal(Code.ARCHIVE_BOMB, f"member {member.name!r} decompresses past its declared "
                        f"{member.size:,} bytes; the archive's headers are false")
        return data


class _Guarded:
    """The manifest stream, with damage found mid-read (bad CRC, corrupt deflate) made a Fatal."""

    def __init__(self, stream: BinaryIO, name: str):
        self._stream = stream
        self._name = name

    def readline(self, limit: int = -1) -> bytes:
        try:
            return self._stream.readline(limit)
        except _READ_ERRORS as exc:
            raise fatal(Code.ARCHIVE_INVALID, f"manifest {self._name!r} is damaged: {exc}") from None


@contextmanager
def open_archive(path: Path, kind: str, limits: Limits) -> Iterator[ArchiveRows]:
    """``kind`` is "zip", "tar", or a codec name ("gz", "bz2", "xz") for a compressed tar."""
    with ExitStack() as stack:
        packed = path.stat().st_size
        if kind in _CODECS:
            # Beside the upload, not in the system temp folder: the API's start-up sweep of its
            # scratch folders then also removes this if the process is killed mid-validation.
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vrft-dataset-", dir=path.parent)))
            _decompress(path, kind, tmp / "archive.tar", limits)
            path = tmp / "archive.tar"
        archive = ZipArchive(path, limits) if kind == "zip" else TarArchive(path, limits)
        stack.callback(archive.close)
        # Declared sizes first, before any member is decompressed; reads are counted again later.
        _check_expansion(archive.index.declared, packed, limits, archive.index.worst_hint())
        yield ArchiveRows(archive, limits)
