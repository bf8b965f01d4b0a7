from __future__ import annotations

from fastapi import Header

from app.auth.service import authenticate
from app.deps import DbSession


def current_project(session: DbSession, authorization: str | None = Header(default=None)) -> str:
    """The caller's project id; every query below is scoped to it."""
    return authenticate(session, authorization=authorization)
