"""OpenAI-style cursor pages: newest first, ``after=<id>`` continues below that object."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.errors import ErrorCode, ServiceError

MAX_LIMIT = 1000


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise ServiceError(ErrorCode.VALIDATION_ERROR, f"limit must be between 1 and {MAX_LIMIT}.", "limit")
    return limit


def page(session: Session, query, model, *, after: str | None, limit: int) -> tuple[list, bool]:
    """Rows ordered by (created_at, id) descending; returns (rows, has_more)."""
    check_limit(limit)
    if after:
        anchor = session.execute(sa.select(model.created_at, model.id).where(model.id == after)).first()
        if anchor is None:
            raise ServiceError(ErrorCode.VALIDATION_ERROR, f"Unknown cursor {after!r}.", "after")
        query = query.where(sa.tuple_(model.created_at, model.id) < sa.tuple_(anchor.created_at, anchor.id))
    rows = list(session.scalars(query.order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1)))
    return rows[:limit], len(rows) > limit
