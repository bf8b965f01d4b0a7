"""Every table, imported in one place so Alembic and ``Base.metadata`` see them all."""

from app.auth.models import ApiKey, Project
from app.db import Base
from app.files.models import File
from app.idempotency.models import IdempotencyRecord
from app.jobs.models import Checkpoint, Job, JobEvent, Rollout, WorkerHost

__all__ = ["Base", "Project", "ApiKey", "File", "Job", "JobEvent", "Checkpoint", "Rollout", "WorkerHost",
           "IdempotencyRecord"]
