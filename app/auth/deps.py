from __future__ import annotations

from fastapi import Depends, Header
from sqlalchemy.orm import Session

from app.auth.service import authenticate
from app.deps import get_session


def current_project(
    authorization: str | None = Header(default=None), session: Session = Depends(get_session)
) -> str:
    """The caller's project id; every query below is scoped to it."""
    return authenticate(session, authorization=authorization)
