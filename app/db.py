"""Engine, sessions and the declarative Base (with an explicit constraint naming convention).

Edges own the transaction: request dependencies and task wrappers open a ``session_scope`` and
commit; services only ``flush``. Work that must follow the commit — enqueueing a job, dropping a
cached view, starting a background validation — is registered with ``on_commit(session, fn)`` and
runs only once the rows it depends on are committed (never, if the transaction rolls back).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache

import sqlalchemy as sa
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from app.config import get_settings

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def now() -> float:
    """Unix seconds; every timestamp column stores this (the API speaks Unix seconds)."""
    return time.time()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # WAL lets the embedded worker write while the API reads
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return sa.create_engine(url, pool_size=20, max_overflow=20, pool_pre_ping=True)


_ON_COMMIT = "vrft.on_commit"
_ON_ROLLBACK = "vrft.on_rollback"


def _callbacks(session: Session, kind: str) -> list[Callable[[], object]]:
    if not session.in_transaction():
        session.begin()  # tie the callback to a transaction, so a rollback before any query still counts
    return session.info.setdefault(kind, [])


def on_commit(session: Session, callback: Callable[[], object]) -> None:
    """Run ``callback`` once this session's transaction commits; drop it if it rolls back."""
    _callbacks(session, _ON_COMMIT).append(callback)


def on_rollback(session: Session, callback: Callable[[], object]) -> None:
    """Run ``callback`` if this session's transaction ends without committing (an error, a failed
    commit, a rollback) — to undo what lives outside the database, e.g. an object already in storage."""
    _callbacks(session, _ON_ROLLBACK).append(callback)


@event.listens_for(Session, "after_commit")
def _run_on_commit(session: Session) -> None:
    session.info.pop(_ON_ROLLBACK, None)
    for callback in session.info.pop(_ON_COMMIT, []):
        callback()


@event.listens_for(Session, "after_transaction_end")
def _run_on_rollback(session: Session, transaction) -> None:
    # The outermost transaction ended without after_commit: nothing it did is visible, so nothing may be
    # announced, and what it made outside the database is undone. Callbacks belong to the outermost
    # transaction, not to savepoints.
    if transaction.parent is None:
        session.info.pop(_ON_COMMIT, None)
        for callback in session.info.pop(_ON_ROLLBACK, []):
            callback()


@lru_cache
def get_engine() -> Engine:
    settings = get_settings()
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return make_engine(settings.resolved_database_url)


@lru_cache
def get_sessionmaker() -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(), expire_on_commit=False)


@contextmanager
def session_scope() -> Iterator[Session]:
    """A unit of work for code outside a request (workers, background validation)."""
    session = get_sessionmaker()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
