"""Request dependencies. The request edge owns the transaction: commit on success, roll back on error."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends
from sqlalchemy.orm import Session

from app.db import get_sessionmaker, session_scope


def get_session() -> Iterator[Session]:
    with session_scope() as session:
        yield session


# ``scope="function"``: the transaction commits when the route returns and *before* the response is
# sent, so a failed commit answers an error (a 503 when the database is gone) rather than a 200 for
# rows that were never stored; ``on_commit`` work (enqueueing a job) runs only after it. Every
# dependency that needs the session must use this same alias, or FastAPI opens a second session.
DbSession = Annotated[Session, Depends(get_session, scope="function")]


async def get_session_factory():
    """For work that outlives one query (an event stream polls for minutes): a session per poll."""
    return get_sessionmaker()
