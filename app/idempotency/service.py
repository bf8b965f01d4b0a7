"""``Idempotency-Key`` on POST: the same key and body within 24 h returns the first response."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import now
from app.errors import ErrorCode, ServiceError
from app.idempotency.models import IdempotencyRecord

TTL_S = 24 * 3600


def body_hash(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def idempotent_response(session: Session, project_id: str, key: str, request_hash: str) -> Any | None:
    """The stored body for this key, None if it is new; 409 if the key was used for another body."""
    record = session.get(IdempotencyRecord, (project_id, key))
    if record is None:
        return None
    if record.created_at < now() - TTL_S:
        session.delete(record)
        session.flush()
        return None
    if record.request_hash != request_hash:
        raise ServiceError(
            ErrorCode.IDEMPOTENCY_CONFLICT,
            "This Idempotency-Key was already used with a different request body.",
            "Idempotency-Key",
        )
    return record.body


def remember(session: Session, project_id: str, key: str, request_hash: str, status_code: int, body: Any) -> None:
    """Stored in the same transaction as the object it describes, so a replay can't miss it."""
    session.add(IdempotencyRecord(project_id=project_id, key=key, request_hash=request_hash,
                                  status_code=status_code, body=body))
    session.flush()


def idempotent(session: Session, *, project_id: str, key: str | None, request_hash: str,
               create: Callable[[], Any]) -> Any:
    """``create()``'s response body, made at most once per ``key`` and request body.

    A retry replays the stored body; a key reused for another body is a 409. When a concurrent
    request with the same key wins the race, our insert of the record fails: everything ``create()``
    did is rolled back (its ``on_commit`` work dropped, its ``on_rollback`` clean-up run) and we
    answer what the winner answered.
    """
    if not key:
        return create()
    if (replay := idempotent_response(session, project_id, key, request_hash)) is not None:
        return replay
    body = create()
    try:
        remember(session, project_id, key, request_hash, 200, body)
    except IntegrityError:
        session.rollback()
        replay = idempotent_response(session, project_id, key, request_hash)
        if replay is None:  # the winner rolled back after all: nothing to replay, the client retries
            raise ServiceError(ErrorCode.IDEMPOTENCY_CONFLICT, "A concurrent request with this Idempotency-Key "
                               "did not complete; retry.", "Idempotency-Key") from None
        return replay
    return body


def purge_expired(session: Session) -> int:
    result = session.execute(sa.delete(IdempotencyRecord).where(IdempotencyRecord.created_at < now() - TTL_S))
    return result.rowcount or 0
