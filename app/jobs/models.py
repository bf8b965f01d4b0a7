from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, now

# SQLite only auto-increments an INTEGER PRIMARY KEY, Postgres wants BIGINT for a long-lived log.
BigIntPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        sa.Index("ix_jobs_project_created", "project_id", "created_at"),
        sa.Index("ix_jobs_status", "status"),
    )

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    project_id: Mapped[str] = mapped_column(sa.ForeignKey("projects.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(sa.String(256))  # as asked: a base model id or an ft: name
    # a job on an ft: model: the base model under it and the adapter it starts from (null otherwise)
    base_model: Mapped[str | None] = mapped_column(sa.String(256), nullable=True)
    init_adapter_key: Mapped[str | None] = mapped_column(sa.String(512), nullable=True)
    status: Mapped[str] = mapped_column(sa.String(24))  # an app.jobs.status.JobStatus
    training_file_id: Mapped[str] = mapped_column(sa.ForeignKey("files.id"))
    validation_file_id: Mapped[str | None] = mapped_column(sa.ForeignKey("files.id"), nullable=True)
    suffix: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    seed: Mapped[int] = mapped_column(sa.BigInteger)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", sa.JSON, nullable=True)
    # the method as accepted (grader normalised) and the hyperparameters with "auto" still visible
    method: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    # what the worker trains with: app.jobs.hyperparameters.ResolvedHyperparameters as JSON
    resolved_hyperparameters: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON, nullable=True)
    dry_run: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    dry_run_samples: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)  # rows a dry run samples
    dry_run_report: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON, nullable=True)
    # devices the job runs on (``resources.gpus``): one rank per device, claimed only by a worker with that many free
    gpus: Mapped[int] = mapped_column(sa.Integer, default=1, server_default="1")

    # cancel | pause, set by the API while running, honoured by the worker between steps
    control_request: Mapped[str | None] = mapped_column(sa.String(16), nullable=True)
    attempt: Mapped[int] = mapped_column(sa.Integer, default=0)
    worker_id: Mapped[str | None] = mapped_column(sa.String(128), nullable=True)
    heartbeat_at: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    enqueued_at: Mapped[float | None] = mapped_column(sa.Float, nullable=True)

    step: Mapped[int] = mapped_column(sa.Integer, default=0)
    total_steps: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    trained_tokens: Mapped[int | None] = mapped_column(sa.BigInteger, nullable=True)
    fine_tuned_model: Mapped[str | None] = mapped_column(sa.String(512), nullable=True)
    adapter_key: Mapped[str | None] = mapped_column(sa.String(512), nullable=True)
    latest_reward: Mapped[float | None] = mapped_column(sa.Float, nullable=True)

    error_code: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)  # an app.jobs.status.JobErrorCode
    error_message: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    error_param: Mapped[str | None] = mapped_column(sa.String(128), nullable=True)

    created_at: Mapped[float] = mapped_column(sa.Float, default=now)
    started_at: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    estimated_finish: Mapped[float | None] = mapped_column(sa.Float, nullable=True)

    @property
    def base(self) -> str:
        """The base model the job's weights rest on (``model`` itself unless that is an ft: name)."""
        return self.base_model or self.model


class JobEvent(Base):
    __tablename__ = "job_events"
    __table_args__ = (sa.Index("ix_job_events_job_seq", "job_id", "seq"),)

    seq: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(sa.ForeignKey("jobs.id", ondelete="CASCADE"))
    created_at: Mapped[float] = mapped_column(sa.Float, default=now)
    level: Mapped[str] = mapped_column(sa.String(8), default="info")
    type: Mapped[str] = mapped_column(sa.String(16), default="message")  # message | metrics
    message: Mapped[str] = mapped_column(sa.Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON, nullable=True)

    @property
    def public_id(self) -> str:
        return f"ftevent-{self.seq:012d}"


class Checkpoint(Base):
    __tablename__ = "checkpoints"
    __table_args__ = (sa.UniqueConstraint("job_id", "step"),)

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    job_id: Mapped[str] = mapped_column(sa.ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    step: Mapped[int] = mapped_column(sa.Integer)
    storage_key: Mapped[str] = mapped_column(sa.String(512))  # the packed adapter (.tar)
    state_key: Mapped[str | None] = mapped_column(sa.String(512), nullable=True)  # full resume state (.tar)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON, nullable=True)
    created_at: Mapped[float] = mapped_column(sa.Float, default=now)


class Rollout(Base):
    """A few sampled rollouts per step, for the dashboard's rollout browser."""

    __tablename__ = "rollouts"
    __table_args__ = (sa.Index("ix_rollouts_job_step", "job_id", "step"),)

    seq: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(sa.ForeignKey("jobs.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(sa.Integer)
    data: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    created_at: Mapped[float] = mapped_column(sa.Float, default=now)


class WorkerHost(Base):
    """A host agent (``vrft-worker --gpus``) and its devices, written by the agent every heartbeat.

    "Registered" means seen within ``heartbeat_stale_s``: job creation refuses a ``resources.gpus``
    no registered host can offer (app.jobs.resources). ``busy`` maps each device in use to its job.
    """

    __tablename__ = "worker_hosts"

    id: Mapped[str] = mapped_column(sa.String(200), primary_key=True)  # host:pid of the agent
    host: Mapped[str] = mapped_column(sa.String(256))
    devices: Mapped[list[str]] = mapped_column(sa.JSON)  # e.g. ["cuda:0", "cuda:1"] or ["cpu:0", "cpu:1"]
    busy: Mapped[dict[str, str]] = mapped_column(sa.JSON)  # device -> job id
    started_at: Mapped[float] = mapped_column(sa.Float, default=now)
    last_seen: Mapped[float] = mapped_column(sa.Float, default=now, index=True)
