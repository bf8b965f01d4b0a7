"""The host agent: ``vrft-worker --gpus 0,1,2,3`` (or ``--gpus cpu:2``, two CPU ranks for tests and CI).

One process owns the listed devices. Every tick it

- registers them (``worker_hosts``, app/jobs/resources.py: job creation refuses a ``resources.gpus``
  no registered host can offer) and renews the lease of each job it runs;
- takes the oldest queued job this host could run from the jobs table — Postgres is the queue, as for
  the embedded worker, so no broker is needed — and claims it once that many of its devices are free
  (the oldest job waits for its devices rather than being overtaken by smaller ones: a 4-device job
  is not starved by a stream of 1-device jobs);
- launches the job's ranks with ``torchrun --standalone --nproc-per-node N -m workers.job_rank`` on
  exactly those devices (``CUDA_VISIBLE_DEVICES``; on CPU, gloo and one thread per rank);
- reaps ended launches: their devices are free again, and a job still ``running`` under the launch's
  worker id lost a rank (torchrun stops every rank when one dies) — it is failed with what the rank
  noted, or re-queued to resume from its last checkpoint like any crashed job (lifecycle.requeue_crashed).

A device is busy exactly while a launch that holds it has not been reaped, so none can leak: free
devices are computed from the launches, never kept as a separate count. Four 1-device jobs or one
4-device job, never more than the devices. The agent dying takes its launches with it
(PR_SET_PDEATHSIG): their leases go silent and the reconciler re-queues the jobs.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import structlog

from app.config import Settings, get_settings
from app.db import session_scope
from app.jobs import lifecycle, resources
from app.jobs.models import Job
from app.jobs.service import add_event
from app.jobs.status import JobErrorCode
from workers.reconciler import reconcile_once

log = structlog.get_logger("vrft.agent")


def parse_devices(spec: str) -> list[str]:
    """``"0,1,3"`` → ``["cuda:0", "cuda:1", "cuda:3"]``; ``"cpu:2"`` → ``["cpu:0", "cpu:1"]``."""
    spec = spec.strip()
    if spec.startswith("cpu:"):
        count = spec.removeprefix("cpu:")
        if not count.isdigit() or not 1 <= int(count) <= resources.MAX_GPUS:
            raise ValueError(f"--gpus {spec!r}: cpu:N takes a count of CPU ranks, 1 to {resources.MAX_GPUS}")
        return [f"cpu:{i}" for i in range(int(count))]
    ids = [part.strip() for part in spec.split(",")]
    if not ids or not all(i.isdigit() for i in ids) or len(set(ids)) != len(ids):
        raise ValueError(f"--gpus {spec!r}: give distinct GPU ids separated by commas (0,1,2,3), or cpu:N")
    return [f"cuda:{i}" for i in ids]


def device_env(devices: list[str]) -> dict[str, str]:
    """The environment that shows a launch its devices and no others."""
    if devices[0].startswith("cpu:"):
        # no GPU visible (the trainer's "auto" device is the CPU, the process group gloo); one thread
        # per rank unless the operator says otherwise: cpu:N means N ranks sharing this host's cores
        return {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    return {"CUDA_VISIBLE_DEVICES": ",".join(d.removeprefix("cuda:") for d in devices)}


def _die_with_parent() -> None:
    """In the launched torchrun: SIGTERM when the agent dies (torchrun then stops its ranks)."""
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Launch:
    job_id: str
    worker_id: str  # what the job's rows say holds it (the agent's id and the devices)
    devices: list[str]
    proc: subprocess.Popen
    notes: Path  # where a failing rank other than 0 says why (workers/job_rank.py)


class Agent:
    def __init__(self, devices: list[str], settings: Settings, *, reconcile: bool = True):
        self.devices, self.settings, self.reconcile = devices, settings, reconcile
        self.host = socket.gethostname()
        self.id = f"{self.host}:{os.getpid()}"
        self.running: dict[str, Launch] = {}
        self._next_beat = self._next_reconcile = 0.0

    @property
    def busy(self) -> dict[str, str]:
        return {d: launch.job_id for launch in self.running.values() for d in launch.devices}

    @property
    def free(self) -> list[str]:
        busy = self.busy
        return [d for d in self.devices if d not in busy]

    def tick(self) -> None:
        self.reap()
        if time.monotonic() >= self._next_beat:
            self.beat()
        if self.reconcile and time.monotonic() >= self._next_reconcile:
            reconcile_once(self.settings, resend_queued=False)
            self._next_reconcile = time.monotonic() + self.settings.reconcile_interval_s
        while self.take():
            pass

    def beat(self) -> None:
        """The registry row and the leases of the jobs running here, in one transaction."""
        with session_scope() as session:
            resources.beat(session, self.id, host=self.host, devices=self.devices, busy=self.busy)
            for launch in self.running.values():
                lifecycle.heartbeat(session, launch.job_id, launch.worker_id)
        self._next_beat = time.monotonic() + self.settings.heartbeat_interval_s

    def take(self) -> bool:
        """Claim and launch the oldest queued job this host can run, if its devices are free now."""
        with session_scope() as session:
            queued = lifecycle.next_queued(session, max_gpus=len(self.devices))
        if queued is None:
            return False
        job_id, gpus = queued
        free = self.free
        if gpus > len(free) or job_id in self.running:
            # it waits for its devices, and nothing behind it overtakes it; or it is back in the queue
            # (a lease lost to a database outage) while its old launch still runs: wait for that to end
            return False
        devices = free[:gpus]
        worker_id = f"{self.id}/{','.join(devices)}"
        with session_scope() as session:
            if not lifecycle.claim(session, job_id, worker_id, max_gpus=len(free)):
                return False  # another worker took it, or it was cancelled meanwhile
            job = session.get(Job, job_id)
            add_event(session, job_id, f"Worker {worker_id} started attempt {job.attempt}")
            add_event(session, job_id, resources.running_on(devices, self.host))
            ranks = 1 if job.dry_run else gpus  # a dry run times one step on one device (workers/dry_run.py)
        log.info("job.claimed", job_id=job_id, worker_id=worker_id, devices=devices)
        try:
            self.running[job_id] = self._launch(job_id, worker_id, devices, ranks)
        except Exception as exc:  # torchrun would not start: the job goes back to the queue
            log.error("agent.launch_failed", job_id=job_id, error=str(exc))
            with session_scope() as session:
                lifecycle.requeue_crashed(session, job_id, worker_id, max_attempts=self.settings.max_job_attempts,
                                          why=f"Its ranks could not be started on {self.host} ({exc})")
            return False
        self.beat()
        return True

    def _launch(self, job_id: str, worker_id: str, devices: list[str], ranks: int) -> Launch:
        scratch = self.settings.data_dir / "work"
        scratch.mkdir(parents=True, exist_ok=True)
        notes = Path(tempfile.mkdtemp(prefix=f"vrft-ranks-{job_id}-", dir=scratch))
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
               "--nproc-per-node", str(ranks), "--max-restarts", "0", "-m", "workers.job_rank", job_id]
        env = {**os.environ, **device_env(devices), "VRFT_WORKER_ID": worker_id, "VRFT_RANK_NOTES": str(notes)}
        proc = subprocess.Popen(cmd, env=env, start_new_session=True, preexec_fn=_die_with_parent)
        return Launch(job_id, worker_id, devices, proc, notes)

    def reap(self) -> None:
        ended = [launch for launch in self.running.values() if launch.proc.poll() is not None]
        for launch in ended:
            try:
                self._settle(launch)
            except Exception as exc:  # the database is away: the silent lease lets the reconciler re-queue it
                log.warning("agent.settle_failed", job_id=launch.job_id, error=str(exc))
            finally:
                del self.running[launch.job_id]  # its devices are free from here on, whatever happened
                shutil.rmtree(launch.notes, ignore_errors=True)
        if ended:
            try:
                self.beat()
            except Exception as exc:
                log.warning("agent.beat_failed", error=str(exc))

    def _settle(self, launch: Launch) -> None:
        """A launch ended: a job it leaves ``running`` lost a rank (rank 0 writes every other end)."""
        code = launch.proc.returncode
        note = next((json.loads(p.read_text()) for p in sorted(launch.notes.glob("rank-*.json"))), None)
        with session_scope() as session:
            if note is not None:
                failed = lifecycle.fail(session, launch.job_id, launch.worker_id, JobErrorCode(note["code"]),
                                        note["message"])
                outcome = "failed" if failed else "ended"
            else:
                status = lifecycle.requeue_crashed(
                    session, launch.job_id, launch.worker_id, max_attempts=self.settings.max_job_attempts,
                    why=f"A rank of the job on {self.host} stopped (torchrun exited with {code})")
                outcome = str(status) if status else "ended"
        log.info("agent.launch_ended", job_id=launch.job_id, exit_code=code, outcome=outcome)

    def stop(self) -> None:
        """Stop every launch (their jobs go back to the queue to resume) and leave the registry."""
        for launch in self.running.values():
            _signal_group(launch.proc, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for launch in self.running.values():
            try:
                launch.proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                _signal_group(launch.proc, signal.SIGKILL)
                launch.proc.wait()
        self.reap()
        with session_scope() as session:
            resources.leave(session, self.id)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def main(spec: str, *, loglevel: str = "INFO", reconcile: bool = True) -> int:
    from app.logging_setup import configure_logging

    try:
        devices = parse_devices(spec)
    except ValueError as exc:
        print(f"vrft-worker: {exc}", file=sys.stderr)
        return 2
    settings = get_settings()
    configure_logging(settings, level=loglevel)
    agent = Agent(devices, settings, reconcile=reconcile)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    log.info("agent.started", agent_id=agent.id, devices=devices)
    while not stop.is_set():
        try:
            agent.tick()
        except Exception as exc:  # database not ready yet, or a blip: the next tick retries
            log.warning("agent.tick_failed", error=str(exc))
            stop.wait(2.0)
        stop.wait(0.5)
    agent.stop()
    log.info("agent.stopped", agent_id=agent.id)
    return 0
