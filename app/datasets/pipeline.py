"""The one code path: open a file, read its rows, decode every image, in row order.

``validate_dataset`` counts what comes out; ``iter_examples`` yields the valid rows. Both run the
same readers and the same checks, so a file that validated yields exactly the rows that passed.

Images are decoded on a small thread pool (Pillow releases the GIL while decoding) with a bounded
window of rows in flight, so memory stays flat whatever the file size.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from app.datasets import detect
from app.datasets.archive import open_archive
from app.datasets.images import check_image, decode_data_url
from app.datasets.jsonl import JsonlRows
from app.datasets.limits import DEFAULT_LIMITS, Limits
from app.datasets.parquet import ParquetRows
from app.datasets.report import Code, Fatal, Invalid, Problem, ValidationReport
from app.datasets.rows import METHODS, Candidate, resolve_inline
from app.errors import ErrorCode, ServiceError

_WORKERS = max(2, min(4, os.cpu_count() or 2))
_WINDOW_ROWS = 4 * _WORKERS
# Encoded image bytes in flight; decoded pixels are bounded by the worker count × the pixel limit.
_WINDOW_BYTES = 256 * 1024 * 1024
_READ_BUFFER = 1024 * 1024


@dataclass
class Outcome:
    line: int | None
    problems: list[Problem]
    example: dict | None
    is_row: bool
    image_ok: bool
    # a valid row: method → why the row cannot train with it (at least one method is left)
    unsuited: dict[str, Problem] | None = None


def _finish(candidate: Candidate, limits: Limits) -> Outcome:
    """Runs on a decode worker: the image check, then the example if the row has no problem."""
    problems = list(candidate.problems)
    size = data = None
    spec = candidate.spec
    if candidate.image is not None and spec is not None:
        try:
            data = candidate.image
            if isinstance(data, str):
                data = decode_data_url(data, spec.image_field)
            size = check_image(data, spec.image_field, limits, in_archive=candidate.in_archive)
        except Invalid as exc:
            problems.append(exc.at(candidate.line))
    example = unsuited = None
    if spec is not None and size is not None and not problems:
        unsuited = {method: why.at(candidate.line) for method, why in spec.unsuited.items()}
        if len(unsuited) == len(METHODS):  # a row no method can train on is a bad row
            problems.extend(unsuited.values())
            unsuited = None
        else:
            example = {
                "id": _example_id(spec.item, candidate.line),
                "prompt": spec.prompt,
                "image": data,
                "image_size": [size[0], size[1]],
                "item": spec.item,
            }
            if spec.chat is not None:  # the chat for the supervised trainer, its one image in place
                example["messages"], example["images"] = spec.chat, [data]
    return Outcome(candidate.line, problems, example, candidate.is_row, size is not None, unsuited)


def _example_id(item: dict, line: int | None) -> str:
    # A user's own id survives into the trainer's logs; otherwise the line makes it stable.
    own = item.get("id")
    if isinstance(own, (str, int)) and not isinstance(own, bool):
        return str(own)
    return f"line-{line}"


def _decode_in_order(candidates: Iterable[Candidate], limits: Limits) -> Iterator[Outcome]:
    window: deque[tuple[Future, int]] = deque()
    in_flight = 0
    with ThreadPoolExecutor(_WORKERS, thread_name_prefix="dataset-decode") as pool:
        try:
            try:
                for candidate in candidates:
                    cost = len(candidate.image) if candidate.image is not None else 0
                    if candidate.image is None:
                        future: Future = Future()
                        future.set_result(_finish(candidate, limits))
                    else:
                        future = pool.submit(_finish, candidate, limits)
                    window.append((future, cost))
                    in_flight += cost
                    while len(window) >= _WINDOW_ROWS or in_flight > _WINDOW_BYTES:
                        future, cost = window.popleft()
                        in_flight -= cost
                        yield future.result()
            except Fatal:
                # Rows already read are real results: report them before the reason reading stopped.
                while window:
                    yield window.popleft()[0].result()
                raise
            while window:
                yield window.popleft()[0].result()
        finally:
            # Early close (a consumer stopped iterating): drop queued work; running decodes finish.
            for future, _ in window:
                future.cancel()


class _Scan:
    """Opens the right reader for a file and reports which format it turned out to be."""

    def __init__(self, path: Path, filename: str, limits: Limits):
        self.path = Path(path)
        self.filename = filename
        self.limits = limits
        self.kind: str | None = None
        self.rows = None

    @property
    def format(self) -> str:
        if self.kind is None:
            return "unknown"
        if self.kind == detect.PARQUET:
            return "parquet"
        layout = self.rows.layout if self.rows is not None else None
        if self.kind == detect.JSONL:
            return layout or "jsonl"
        return f"archive:{layout}" if layout else "archive"

    def outcomes(self) -> Iterator[Outcome]:
        self.kind = detect.sniff(self.path, self.filename)
        with ExitStack() as stack:
            if self.kind == detect.PARQUET:
                self.rows = ParquetRows(self.path, self.limits)
                stack.callback(self.rows.close)
            elif self.kind == detect.JSONL:
                # A large buffer: data-URL lines run to hundreds of KB, and 8 KB reads cost time.
                stream = stack.enter_context(self.path.open("rb", buffering=_READ_BUFFER))
                self.rows = JsonlRows(stream, self.limits, resolve_inline, name=self.filename)
            else:
                self.rows = stack.enter_context(open_archive(self.path, self.kind, self.limits))
            yield from _decode_in_order(self.rows, self.limits)


def validate_dataset(path: Path, filename: str, limits: Limits = DEFAULT_LIMITS) -> ValidationReport:
    """Read the whole file, decode every image, and report every problem (the first N kept)."""
    report = ValidationReport(format="unknown", max_problems=limits.max_problems)
    scan = _Scan(path, filename, limits)
    common: dict[str, None] | None = None  # ordered set of fields every valid row has
    try:
        for outcome in scan.outcomes():
            report.rows_read += outcome.is_row
            report.image_count += outcome.image_ok
            for problem in outcome.problems:
                report.add(problem)
            if outcome.example is not None:
                report.rows_valid += 1
                keys = outcome.example["item"].keys()
                common = dict.fromkeys(keys) if common is None else {k: None for k in common if k in keys}
                for method, why in (outcome.unsuited or {}).items():
                    report.unsuited.setdefault(method, why)  # the first row that rules a method out
    except Fatal as stop:
        report.add(stop.problem)
    report.methods = [m for m in METHODS if m not in report.unsuited] if report.rows_valid else []
    if report.rows_valid and not report.methods:
        lines = " and ".join(f"{why.message} (rules out {method})" for method, why in report.unsuited.items())
        report.add(Problem(None, None, Code.MIXED_METHODS,
                           f"no training method suits every row: {lines}; a file holds rows of one method"))
    report.format = scan.format
    report.reference_fields = list(common or ())
    return report


def iter_examples(path: Path, filename: str, *, limits: Limits | None = None) -> Iterator[dict]:
    """Yield ``{"id", "prompt", "image", "image_size", "item"}`` for each valid row, streaming (OpenAI
    chat rows add ``"messages"`` and ``"images"``, the layout of ``workers.training.sft``).

    Rows with problems are skipped (a file the API marked ``processed`` has none). A problem that
    stops reading the file altogether raises ``ServiceError(DATASET_INVALID)``.
    """
    scan = _Scan(path, filename, limits or DEFAULT_LIMITS)
    try:
        for outcome in scan.outcomes():
            if outcome.example is not None:
                yield outcome.example
    except Fatal as stop:
        raise ServiceError(ErrorCode.DATASET_INVALID, stop.problem.message, stop.problem.field) from None
