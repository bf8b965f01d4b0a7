"""Parquet as Hugging Face ``datasets`` writes it: ``image`` {bytes, path}, ``problem``, ``solution``.

Read in record batches so a large file never sits in memory whole (at most one row group's pages).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from app.datasets.limits import Limits
from app.datasets.report import Code, Invalid, fatal
from app.datasets.rows import Candidate, parse_visual, resolve_inline, to_candidate

REQUIRED = ("image", "problem", "solution")
_BATCH_ROWS = 64
# Arrow's own errors, plus what damaged metadata or strings surface as (bad UTF-8 → ValueError).
_ARROW_ERRORS = (pa.ArrowException, OSError, ValueError)


class ParquetRows:
    layout = "parquet"

    def __init__(self, path: Path, limits: Limits):
        self.limits = limits
        try:
            self._file = pq.ParquetFile(path)
        except _ARROW_ERRORS as exc:
            raise fatal(Code.PARQUET_INVALID, f"not a readable Parquet file: {exc}") from None
        schema = self._file.schema_arrow
        for column in REQUIRED:
            if schema.get_field_index(column) < 0:
                raise fatal(Code.MISSING_FIELD, f"column {column!r} is missing; the Visual-RFT layout has "
                            f"columns {', '.join(REQUIRED)} (found {', '.join(schema.names[:10])})", field=column)
        image_type = schema.field("image").type
        if not (_is_binary(image_type) or (pa.types.is_struct(image_type) and _struct_has_bytes(image_type))):
            raise fatal(Code.INVALID_FIELD, f"column 'image' is {image_type}; expected a struct with a binary "
                        "'bytes' field (Hugging Face's Image feature) or binary", field="image")
        if self._file.metadata.num_rows == 0:
            raise fatal(Code.EMPTY_FILE, "the Parquet file has no rows")

    def close(self) -> None:
        self._file.close()

    def __iter__(self) -> Iterator[Candidate]:
        row = 0
        try:
            for batch in self._file.iter_batches(batch_size=_BATCH_ROWS):
                for record in batch.to_pylist():
                    row += 1
                    if row > self.limits.max_rows:
                        yield Candidate(row, [Invalid(Code.TOO_MANY_ROWS, None, f"more than {self.limits.max_rows:,} "
                                        "rows; the rest of the file was not read. Split it").at(row)], is_row=False)
                        return
                    yield to_candidate(row, parse_visual(record), resolve_inline)
        except _ARROW_ERRORS as exc:
            raise fatal(Code.PARQUET_INVALID, f"Parquet data after row {row} is unreadable: {exc}") from None


def _is_binary(t: pa.DataType) -> bool:
    return pa.types.is_binary(t) or pa.types.is_large_binary(t)


def _struct_has_bytes(t: pa.StructType) -> bool:
    index = t.get_field_index("bytes")
    return index >= 0 and _is_binary(t.field(index).type)
