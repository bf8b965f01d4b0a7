"""Stream a JSONL file (or archive manifest) line by line; never hold more than one line in memory."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from app.datasets.limits import Limits
from app.datasets.report import Code, Invalid, Problem, fatal
from app.datasets.rows import Candidate, brief, parse_row, row_format, to_candidate
from app.datasets.values import loads

_BOM = b"\xef\xbb\xbf"
_SKIP_CHUNK = 1024 * 1024


@dataclass
class Line:
    number: int
    value: object = None
    problem: Problem | None = None
    is_row: bool = True


def read_lines(stream: BinaryIO, limits: Limits) -> Iterator[Line]:
    """Each non-blank line parsed as JSON, or the problem with it. Stops past ``max_rows`` rows."""
    number = rows = 0
    while True:
        raw = stream.readline(limits.max_line_bytes + 1)
        if not raw:
            return
        number += 1
        if len(raw) > limits.max_line_bytes and not raw.endswith(b"\n"):
            length = len(raw) + _skip_rest_of_line(stream)
            rows += 1
            yield Line(number, problem=Invalid(
                Code.LINE_TOO_LONG, None,
                f"line is {length:,} bytes or more, over the limit of {limits.max_line_bytes:,}; "
                "pack large images in an archive instead of inlining them",
            ).at(number))
            continue
        if number == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM):]  # editors on Windows write one; it is not content
        if not raw.strip():
            continue
        rows += 1
        if rows > limits.max_rows:
            yield Line(number, is_row=False, problem=Invalid(
                Code.TOO_MANY_ROWS, None,
                f"more than {limits.max_rows:,} rows; the rest of the file was not read. Split it",
            ).at(number))
            return
        yield _parse(number, raw)


def _parse(number: int, raw: bytes) -> Line:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Line(number, problem=Invalid(
            Code.INVALID_UTF8, None,
            f"byte 0x{raw[exc.start]:02x} at byte {exc.start + 1} is not UTF-8; save the file as UTF-8",
        ).at(number))
    try:
        value = loads(text)
    except json.JSONDecodeError as exc:
        return Line(number, problem=Invalid(
            Code.INVALID_JSON, None, f"not JSON: {exc.msg} at column {exc.colno}"
        ).at(number))
    except RecursionError:
        return Line(number, problem=Invalid(Code.INVALID_JSON, None, "JSON nested too deeply").at(number))
    if not isinstance(value, dict):
        return Line(number, problem=Invalid(
            Code.NOT_AN_OBJECT, None, f"each line must be a JSON object, got a {type(value).__name__}"
        ).at(number))
    return Line(number, value)


def _skip_rest_of_line(stream: BinaryIO) -> int:
    skipped = 0
    while True:
        chunk = stream.readline(_SKIP_CHUNK)
        skipped += len(chunk)
        if not chunk or chunk.endswith(b"\n"):
            return skipped


class JsonlRows:
    """The rows of one JSONL stream as ``Candidate``s.

    The layout (OpenAI RFT or Visual-RFT) is set by the first row whose keys show one; every later
    row must follow it. ``layout`` is readable while and after iterating.
    """

    def __init__(
        self,
        stream: BinaryIO,
        limits: Limits,
        resolve: Callable[[str | bytes, str], bytes | str],
        *,
        in_archive: bool = False,
        name: str = "the file",
    ):
        self.stream = stream
        self.limits = limits
        self.resolve = resolve
        self.in_archive = in_archive
        self.name = name
        self.layout: str | None = None

    def __iter__(self) -> Iterator[Candidate]:
        rows = 0
        for line in read_lines(self.stream, self.limits):
            rows += line.is_row
            if line.problem is not None:
                yield Candidate(line.number, [line.problem], is_row=line.is_row)
                continue
            obj = line.value
            layout = self.layout or row_format(obj)
            if layout is None:
                yield Candidate(line.number, [Invalid(
                    Code.MISSING_FIELD, None,
                    "row has neither 'messages' (OpenAI RFT layout) nor 'image' and 'problem' "
                    f"(Visual-RFT layout); its keys are {brief(sorted(obj)[:10])}",
                ).at(line.number)])
                continue
            self.layout = layout
            spec = parse_row(obj, layout)
            yield to_candidate(line.number, spec, self.resolve, in_archive=self.in_archive)
        if rows == 0:
            raise fatal(Code.EMPTY_FILE, f"{self.name} has no rows (only blank lines)")
