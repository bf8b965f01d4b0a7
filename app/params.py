"""Query and path parameters shared by the routers, bounded at the edge.

A parameter outside what its column (or the trainer) can hold is a 422 naming it, never a database
error: Postgres refuses NUL bytes and integers past their column's width, and that would be a 500.
"""

from __future__ import annotations

from typing import Any

from fastapi import Header, Path, Query

from app.pagination import MAX_LIMIT

INT32_MAX = 2**31 - 1  # steps are INTEGER columns
# Every id we issue (``file-…``, ``ftjob-…``, ``ftckpt-…``) matches this.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
# An event id is ``ftevent-`` and its sequence number (a BIGINT): 18 digits always fit.
EVENT_ID_PATTERN = r"^ftevent-[0-9]{1,18}$"


def limit_query(default: int, maximum: int = MAX_LIMIT) -> Any:
    return Query(default=default, ge=1, le=maximum, description=f"Page size, 1–{maximum}.")


def cursor_query(what: str, pattern: str = ID_PATTERN) -> Any:
    return Query(default=None, pattern=pattern, description=f"Continue after this {what} id.")


def id_path(what: str) -> Any:
    return Path(pattern=ID_PATTERN, description=f"The {what} id.")


def name_query(description: str) -> Any:
    """A filter matched against a short status/type/purpose column."""
    return Query(default=None, pattern=r"^[a-z][a-z0-9_-]{0,63}$", description=description)


# The header both POSTs take; bounded by the column that stores it (a longer key would be a DB error).
IDEMPOTENCY_KEY: Any = Header(default=None, alias="Idempotency-Key", min_length=1, max_length=255,
                              description="A retry with the same key and body within 24 h gets the first response.")
