"""Request dependencies. The request edge owns the transaction: commit on success, roll back on error."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy.orm import Session

from app.db import get_sessionmaker, session_scope


def get_session() -> Iterator[Session]:
    with session_scope() as session:
        yield session


async def get_session_factory():
    """For work that outlives one query (an event stream polls for minutes): a session per poll."""
    return get_sessionmaker()
