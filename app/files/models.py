from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, now


class File(Base):
    __tablename__ = "files"
    __table_args__ = (sa.Index("ix_files_project_created", "project_id", "created_at"),)

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    project_id: Mapped[str] = mapped_column(sa.ForeignKey("projects.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(sa.String(512))
    purpose: Mapped[str] = mapped_column(sa.String(32))
    bytes: Mapped[int] = mapped_column(sa.BigInteger)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    storage_key: Mapped[str] = mapped_column(sa.String(512))
    # uploaded -> processed | error
    status: Mapped[str] = mapped_column(sa.String(16), default="uploaded")
    status_details: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    # the validation report (format, rows, problems, reference_fields) once validation ran
    report: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON, nullable=True)
    created_at: Mapped[float] = mapped_column(sa.Float, default=now)
