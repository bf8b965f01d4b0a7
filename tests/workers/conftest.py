"""Real processes for the pipeline tests: an API server on Postgres + SeaweedFS with a Redis broker,
and `vrft-worker` processes (Celery, prefork) that we can start, kill and restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import SESSION_TAG, start_live_server, stop_live_server

REDIS_DB = 1 + os.getpid() % 14
FAST_RECOVERY = {
    "VRFT_HEARTBEAT_INTERVAL_S": "1",
    "VRFT_HEARTBEAT_STALE_S": "8",
    "VRFT_RECONCILE_INTERVAL_S": "1",
    "VRFT_LOST_MESSAGE_AFTER_S": "4",
    "VRFT_STORAGE_RETRY_DELAYS_S": "[0.5, 0.5]",
}


@pytest.fixture(scope="session")
def celery_server(database, s3_server):
    broker = f"redis://127.0.0.1:6379/{REDIS_DB}"
    import redis

    redis.Redis.from_url(broker).flushdb()
    # one operator model whose folder is gone, to see a job fail with model_not_found
    # python graders on: the kill test slows its steps with one (test_pipeline.SLOW_GRADER)
    extra = {"VRFT_BROKER_URL": broker, "VRFT_BASE_MODELS": '{"acme/missing-vl": "/nonexistent/acme-vl"}',
             "VRFT_PYTHON_GRADER_ENABLED": "true", **FAST_RECOVERY}
    server = start_live_server("celery", extra_env=extra, worker=False)
    server.broker = broker
    yield server
    stop_live_server(server)


class Worker:
    """``vrft-worker`` with ``args`` in its own process group (so a kill takes its children too)."""

    def __init__(self, env: dict, log_path: Path, *args: str):
        self.log_path = log_path
        self.proc = subprocess.Popen([sys.executable, "-m", "workers.cli", *args, "--loglevel", "WARNING"], env=env,
                                     stdout=open(log_path, "ab"), stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self, sig=signal.SIGKILL, *, group: bool = True, timeout: float = 30):
        """``sig`` to the whole group (or, ``group=False``, to the worker alone, to let it stop its own
        children), then SIGKILL to the group if it has not exited within ``timeout``."""
        try:
            os.killpg(self.proc.pid, sig) if group else self.proc.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def start_worker(celery_server, tmp_path):
    workers: list[Worker] = []

    def start(**env_overrides) -> Worker:
        w = Worker({**celery_server.env, **env_overrides}, tmp_path / f"worker-{len(workers)}.log")
        workers.append(w)
        return w

    yield start
    for w in workers:
        w.kill(signal.SIGTERM if w.proc.poll() is None else signal.SIGKILL)


@pytest.fixture
def client(celery_server):
    key = celery_server.create_key(f"pipeline-{SESSION_TAG}-{time.time_ns()}")
    with httpx.Client(base_url=celery_server.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as c:
        yield c


def wait_for(fn, timeout: float = 180, interval: float = 0.5, what: str = "condition"):
    deadline = time.time() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def job_status(client, job_id):
    return client.get(f"/v1/fine_tuning/jobs/{job_id}").json()


def wait_status(client, job_id, statuses, timeout=240):
    statuses = (statuses,) if isinstance(statuses, str) else statuses
    return wait_for(lambda: (j := job_status(client, job_id))["status"] in statuses and j, timeout,
                    what=f"{job_id} to reach {statuses}")


def metric_steps(client, job_id) -> list[int]:
    events = client.get(f"/v1/fine_tuning/jobs/{job_id}/events?limit=1000&type=metrics").json()["data"]
    return [e["data"]["step"] for e in reversed(events) if not e["data"].get("eval")]
