"""``GET /v1/models``: the base models a job may name, then the project's fine-tuned models."""

from __future__ import annotations

from typing import Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session

from app import catalog
from app.config import Settings
from app.jobs.models import Job


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Model(_Open):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    root: str | None = None
    parent: str | None = None
    fine_tuning_job: str | None = None


class ModelList(_Open):
    object: Literal["list"]
    data: list[Model]


def list_models(session: Session, *, project_id: str, settings: Settings) -> list[dict]:
    data = [{"id": name, "object": "model", "created": 0,
             "owned_by": "vrft" if location.startswith("builtin:") else "operator"}
            for name, location in sorted(catalog.base_models(settings).items())]
    tuned = session.scalars(sa.select(Job).where(Job.project_id == project_id, Job.fine_tuned_model.is_not(None))
                            .order_by(Job.created_at.desc()))
    data += [{"id": j.fine_tuned_model, "object": "model", "created": int(j.finished_at or j.created_at),
              "owned_by": project_id, "root": j.model, "parent": j.model, "fine_tuning_job": j.id} for j in tuned]
    return data
