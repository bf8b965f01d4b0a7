"""What validation found: problems with stable codes, and the report the files API stores."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Code(StrEnum):
    """Stable problem codes. They are part of the API: add new ones, never rename."""

    EMPTY_FILE = "empty_file"
    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    INVALID_FIELD = "invalid_field"
    IMAGE_UNDECODABLE = "image_undecodable"
    IMAGE_TOO_LARGE = "image_too_large"
    IMAGE_NOT_FOUND = "image_not_found"
    PATH_ESCAPES_ARCHIVE = "path_escapes_archive"
    ARCHIVE_BOMB = "archive_bomb"
    ARCHIVE_INVALID = "archive_invalid"
    MANIFEST_MISSING = "manifest_missing"
    BOX_ARITY = "box_arity"
    TOO_MANY_ROWS = "too_many_rows"
    LINE_TOO_LONG = "line_too_long"
    UNSUPPORTED_FORMAT = "unsupported_format"
    NOT_AN_IMAGE = "not_an_image"
    PARQUET_INVALID = "parquet_invalid"
    INVALID_NUMBER = "invalid_number"
    DUPLICATE_KEY = "duplicate_key"
    IMAGE_ASPECT_RATIO = "image_aspect_ratio"
    MIXED_METHODS = "mixed_methods"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the upload.

    ``line`` is the 1-based JSONL line (the manifest's line inside an archive, row index + 1 in
    Parquet); ``field`` a dotted path inside that row such as ``messages[0].content[1].image_url.url``.
    Problems about the file as a whole (an archive member, a missing column) have ``line`` None, and
    name the member or column in ``message``.
    """

    line: int | None
    field: str | None
    code: str
    message: str

    def to_dict(self) -> dict:
        field = None if self.field is None else storable(self.field)
        return {"line": self.line, "field": field, "code": str(self.code), "message": storable(self.message)}


def storable(text: str) -> str:
    """``text`` with NUL and other control characters, and lone surrogates, written as escapes.

    Messages and field paths quote the user's own keys and values; the report is stored (Postgres
    refuses NUL in text, and no encoder takes a lone surrogate) and rendered, so neither may fail."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch == " " else _escape(ch) for ch in text)


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


class Invalid(Exception):
    """A row-level problem raised by a reader or checker; the caller adds the line number."""

    def __init__(self, code: Code, field: str | None, message: str):
        super().__init__(message)
        self.code = code
        self.field = field
        self.message = message

    def at(self, line: int | None) -> Problem:
        prefix = f"line {line}: " if line is not None else ""
        where = f"field '{self.field}': " if self.field else ""
        return Problem(line, self.field, self.code, f"{prefix}{where}{self.message}")


class Fatal(Exception):
    """A problem that stops reading the file (not an archive, a bomb, unreadable Parquet...)."""

    def __init__(self, problem: Problem):
        super().__init__(problem.message)
        self.problem = problem


def fatal(code: Code, message: str, line: int | None = None, field: str | None = None) -> Fatal:
    return Fatal(Invalid(code, field, message).at(line))


@dataclass
class ValidationReport:
    format: str
    rows_read: int = 0
    rows_valid: int = 0
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0
    reference_fields: list[str] = field(default_factory=list)
    image_count: int = 0
    max_problems: int = 200
    # the training methods every valid row suits, and for each other method the first row ruling it out
    methods: list[str] = field(default_factory=list)
    unsuited: dict[str, Problem] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.rows_valid > 0 and self.problem_count == 0

    def add(self, problem: Problem) -> None:
        # Keep the first N so a million bad rows cost a bounded report, but count them all.
        self.problem_count += 1
        if len(self.problems) < self.max_problems:
            self.problems.append(problem)

    def to_dict(self) -> dict:
        return {
            "format": self.format,
            "ok": self.ok,
            "rows_read": self.rows_read,
            "rows_valid": self.rows_valid,
            "image_count": self.image_count,
            "reference_fields": list(self.reference_fields),
            "problem_count": self.problem_count,
            "problems": [p.to_dict() for p in self.problems],
            "problems_truncated": self.problem_count > len(self.problems),
            "methods": list(self.methods),
            "unsuited": {method: why.to_dict() for method, why in self.unsuited.items()},
        }


def methods_of(report: dict | None) -> list[str]:
    """The methods a stored report says its file suits. Reports written before files were judged per
    method have no ``methods``: they were validated as reinforcement files, and that is all they claim."""
    report = report or {}
    return list(report.get("methods", ["reinforcement"] if report.get("ok") else []))
