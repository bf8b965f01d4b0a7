"""API keys: ``vrft_<random>`` shown once, stored as SHA-256, one project per key."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.auth.models import ApiKey, Project
from app.errors import ErrorCode, ServiceError
from app.ids import new_id

KEY_PREFIX = "vrft_"
# Keys are checked on every poll; a short cache saves a query per request. Revocation (not exposed
# through the API yet) would take at most this long to bite.
_CACHE_TTL_S = 30.0
_cache: dict[str, tuple[str, float]] = {}
_cache_lock = threading.Lock()


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(session: Session, *, project_name: str) -> tuple[Project, str]:
    """Create the project if needed and a new key for it; returns the plaintext key (shown once)."""
    project = session.scalar(sa.select(Project).where(Project.name == project_name))
    if project is None:
        project = Project(id=new_id("proj"), name=project_name)
        session.add(project)
        session.flush()
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiKey(id=new_id("key"), project_id=project.id, key_hash=hash_key(key), prefix=key[:12]))
    session.flush()
    return project, key


def cached_project(authorization: str | None) -> str | None:
    """The project of a recently seen key, without touching the database (None: ask ``authenticate``)."""
    if not authorization or not authorization[:7].lower() == "bearer ":
        return None
    hit = _cache.get(hash_key(authorization[7:].strip()))
    return hit[0] if hit and hit[1] > time.monotonic() else None


def authenticate(session: Session, *, authorization: str | None) -> str:
    """Return the project id for a ``Bearer`` header, or raise 401."""
    if not authorization:
        raise ServiceError(ErrorCode.MISSING_API_KEY, "Missing API key: send 'Authorization: Bearer <key>'.")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ServiceError(ErrorCode.INVALID_API_KEY, "Malformed Authorization header: expected 'Bearer <key>'.")
    digest = hash_key(token)
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(digest)
    if hit and hit[1] > now:
        return hit[0]
    project_id = session.scalar(
        sa.select(ApiKey.project_id).where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))
    )
    if project_id is None:
        raise ServiceError(ErrorCode.INVALID_API_KEY, "Invalid API key.")
    with _cache_lock:
        if len(_cache) > 10_000:
            _cache.clear()
        _cache[digest] = (project_id, now + _CACHE_TTL_S)
    return project_id
