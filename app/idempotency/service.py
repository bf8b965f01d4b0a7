"""``Idempotency-Key`` on POST: the same key and body within 24 h returns the first response."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import sqlalchemy as sa
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


def purge_expired(session: Session) -> int:
    result = session.execute(sa.delete(IdempotencyRecord).where(IdempotencyRecord.created_at < now() - TTL_S))
    return result.rowcount or 0
