from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, now


class IdempotencyRecord(Base):
    """The first response to a POST carrying an ``Idempotency-Key``, replayed for 24 h."""

    __tablename__ = "idempotency_records"

    project_id: Mapped[str] = mapped_column(sa.ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(sa.String(64))
    status_code: Mapped[int] = mapped_column(sa.Integer)
    body: Mapped[Any] = mapped_column(sa.JSON)
    created_at: Mapped[float] = mapped_column(sa.Float, default=now)
