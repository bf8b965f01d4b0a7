"""What a job may ask for (``"resources": {"gpus": N}``) and what the workers have to offer.

Host agents (``vrft-worker --gpus``, workers/agent.py) keep a row each in ``worker_hosts``: their
devices, which of them are busy, and when they last wrote. A host is *registered* while that write
is younger than ``heartbeat_stale_s`` — the same patience the reconciler has with a job's heartbeat.
Every other worker (the embedded one, a Celery worker) runs one job on one device, so one device is
always on offer; more needs a registered host that has that many.
"""

from __future__ import annotations

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from app.config import Settings
from app.db import now
from app.errors import ErrorCode, ServiceError
from app.jobs.models import WorkerHost

MAX_GPUS = 64  # the most devices one job may ask for (the bound; what is on offer is checked against hosts)
GONE_AFTER_S = 24 * 3600  # a killed agent's row (it never left) is dropped after a day, by any agent's beat
PARAM = "resources.gpus"


class Resources(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    gpus: int = Field(default=1, ge=1, le=MAX_GPUS, description="Devices the job runs on, one rank per device.")


def registered_hosts(session: Session, settings: Settings) -> list[WorkerHost]:
    return list(session.scalars(sa.select(WorkerHost).where(WorkerHost.last_seen >= now() - settings.heartbeat_stale_s)
                                .order_by(WorkerHost.id)))


def check(session: Session, resources: Resources | None, *, batch_size: int, settings: Settings) -> int:
    """The job's device count, or a 422 naming ``resources.gpus`` when no worker could run it."""
    gpus = (resources or Resources()).gpus
    if gpus == 1:
        return 1
    if gpus > batch_size:
        raise ServiceError(ErrorCode.VALIDATION_ERROR,
                           f"resources.gpus is {gpus} but batch_size is {batch_size}: each device takes whole "
                           "prompts (with their groups) of a step, so ask for at most batch_size devices.", PARAM)
    hosts = registered_hosts(session, settings)
    largest = max(hosts, key=lambda h: len(h.devices), default=None)
    if largest is None or len(largest.devices) < gpus:
        offer = (f"the largest registered host, {largest.host}, has {len(largest.devices)} "
                 f"({', '.join(largest.devices)})") if largest else "no multi-device host is registered"
        raise ServiceError(ErrorCode.VALIDATION_ERROR,
                           f"resources.gpus is {gpus} but no worker can offer that many devices: {offer}. "
                           "Start `vrft-worker --gpus …` on a host with enough devices, or ask for fewer.", PARAM)
    return gpus


def running_on(devices: list[str], host: str) -> str:
    """The job event that says where a job runs."""
    n = len(devices)
    return f"Running on {n} device{'s' if n != 1 else ''} ({', '.join(devices)}) on host {host}"


# -- the registry, as the agents write it -----------------------------------------------------
def beat(session: Session, agent_id: str, *, host: str, devices: list[str], busy: dict[str, str]) -> None:
    """Insert or refresh an agent's row (a row deleted meanwhile, say by an operator, comes back)."""
    session.execute(sa.delete(WorkerHost).where(WorkerHost.last_seen < now() - GONE_AFTER_S))
    row = session.get(WorkerHost, agent_id)
    if row is None:
        session.add(WorkerHost(id=agent_id, host=host, devices=devices, busy=busy, started_at=now(), last_seen=now()))
    else:
        row.devices, row.busy, row.last_seen = devices, busy, now()


def leave(session: Session, agent_id: str) -> None:
    session.execute(sa.delete(WorkerHost).where(WorkerHost.id == agent_id))
