"""The host agent (`vrft-worker --gpus cpu:2`, workers/agent.py) through the service, in real processes:
API on Postgres + SeaweedFS, the agent, torchrun ranks with gloo on CPU."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.factories import chat_rows, job_body, jsonl, supervised_body, upload, visual_rft_rows
from tests.workers.conftest import Worker, metric_steps, wait_for, wait_status
from tests.workers.test_pipeline import SIMILARITY, SLOW_GRADER, _adapter_tar

pytestmark = pytest.mark.slow


class AgentProcess(Worker):
    def __init__(self, env: dict, log_path: Path, spec: str):
        super().__init__(env, log_path, "--gpus", spec)

    def stop(self) -> None:
        """SIGTERM to the agent alone: it stops its launches and leaves the registry itself."""
        if self.proc.poll() is None:
            self.kill(signal.SIGTERM, group=False, timeout=60)


@pytest.fixture
def agent(celery_server, tmp_path):
    started = AgentProcess(celery_server.env, tmp_path / "agent.log", "cpu:2")
    engine = sa.create_engine(celery_server.env["VRFT_DATABASE_URL"])
    started.host_row = lambda: _host_row(engine, started.proc.pid)
    wait_for(started.host_row, timeout=60, what="the agent to register")
    yield started
    started.stop()
    engine.dispose()


def _host_row(engine, pid: int):
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT devices, busy FROM worker_hosts WHERE id LIKE :id"),
                            {"id": f"%:{pid}"}).first()


def _create(client, *, gpus: int | None, grader=SIMILARITY, rows: int = 6, **hp):
    train = upload(client, jsonl(visual_rft_rows(rows))).json()["id"]
    body = job_body(train)
    body["method"]["reinforcement"]["grader"] = grader
    body["method"]["reinforcement"]["hyperparameters"].update(hp)
    if gpus is not None:
        body["resources"] = {"gpus": gpus}
    return client.post("/v1/fine_tuning/jobs", json=body)


def _messages(client, job_id) -> list[str]:
    return [e["message"] for e in client.get(f"/v1/fine_tuning/jobs/{job_id}/events?limit=1000").json()["data"]]


def _rank_pids(job_id: str) -> dict[int, int]:
    """RANK → pid of the job's rank processes (torchrun's children running workers.job_rank)."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            if b"workers.job_rank" not in cmdline or job_id.encode() not in cmdline:
                continue
            env = dict(kv.split(b"=", 1) for kv in (entry / "environ").read_bytes().split(b"\0") if b"=" in kv)
        except (OSError, ValueError):
            continue
        if b"RANK" in env:
            found[int(env[b"RANK"])] = int(entry.name)
    return found


def test_a_two_device_job_succeeds_and_its_adapter_loads(client, agent, celery_server, tmp_path):
    r = _create(client, gpus=2, max_steps=3, checkpoint_interval=3, learning_rate=0.05, group_size=4)
    assert r.status_code == 200, r.text
    assert r.json()["resources"] == {"gpus": 2}
    job = wait_status(client, r.json()["id"], ("succeeded", "failed"))
    assert job["status"] == "succeeded", (job["error"], agent.log()[-3000:])
    assert job["resources"] == {"gpus": 2}
    messages = _messages(client, job["id"])
    assert any(m.startswith("Running on 2 devices (cpu:0, cpu:1) on host ") for m in messages), messages
    events = client.get(f"/v1/fine_tuning/jobs/{job['id']}/events?limit=1000&type=metrics").json()["data"]
    assert sorted(e["data"]["step"] for e in events) == [1, 2, 3]
    assert all(e["data"]["world_size"] == 2 for e in events), "rank 0 reports the step of both ranks"

    tar = tarfile.open(fileobj=io.BytesIO(_adapter_tar(client, f"/v1/fine_tuning/jobs/{job['id']}/adapter")))
    tar.extractall(tmp_path / "adapter", filter="data")
    import torch
    from peft import PeftModel

    from workers.training.model import load_model
    from workers.training.tiny import resolve_model

    base = load_model(resolve_model("vrft/tiny-qwen2-vl", celery_server.env["VRFT_MODEL_CACHE"] + "/models"),
                      device="cpu").model
    ids = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8]])
    with torch.no_grad():
        before = base(input_ids=ids).logits.clone()
        after = PeftModel.from_pretrained(base, tmp_path / "adapter")(input_ids=ids).logits
    assert not torch.allclose(before, after), "the two ranks' adapter must change the model's outputs"
    wait_for(lambda: agent.host_row().busy == {}, timeout=30, what="the devices to be free again")


def test_a_two_device_supervised_job_succeeds(client, agent):
    train = upload(client, jsonl(chat_rows(4))).json()["id"]
    r = client.post("/v1/fine_tuning/jobs", json=supervised_body(train) | {"resources": {"gpus": 2}})
    assert r.status_code == 200, r.text
    job = wait_status(client, r.json()["id"], ("succeeded", "failed"))
    assert job["status"] == "succeeded", (job["error"], agent.log()[-3000:])
    events = client.get(f"/v1/fine_tuning/jobs/{job['id']}/events?limit=1000&type=metrics").json()["data"]
    assert sorted(e["data"]["step"] for e in events) == [1, 2] and all(e["data"]["world_size"] == 2 for e in events)
    wait_for(lambda: agent.host_row().busy == {}, timeout=30, what="the devices to be free again")


def test_a_killed_rank_takes_the_job_down_and_it_resumes_without_repeating_steps(client, agent):
    r = _create(client, gpus=2, grader=SLOW_GRADER, max_steps=10, checkpoint_interval=3)
    job_id = r.json()["id"]
    wait_for(lambda: client.get(f"/v1/fine_tuning/jobs/{job_id}/checkpoints").json()["data"], what="a checkpoint")
    ranks = _rank_pids(job_id)
    assert set(ranks) == {0, 1}, ranks
    os.kill(ranks[1], signal.SIGKILL)
    assert client.get(f"/v1/fine_tuning/jobs/{job_id}").json()["status"] == "running", "killed mid-job"
    wait_for(lambda: ranks[0] not in _rank_pids(job_id).values(), timeout=60, what="torchrun to stop rank 0")
    job = wait_status(client, job_id, ("succeeded", "failed"), timeout=300)
    assert job["status"] == "succeeded", (job["error"], agent.log()[-3000:])
    assert job["attempt"] == 2
    assert metric_steps(client, job_id) == list(range(1, 11)), "no step recorded twice"
    messages = _messages(client, job_id)
    assert any("A rank of the job on" in m and "re-queued to resume" in m for m in messages), messages
    assert any("Resuming from the checkpoint" in m for m in messages)
    assert sum("adapter uploaded" in m for m in messages) == 1
    wait_for(lambda: agent.host_row().busy == {}, timeout=30, what="the devices to be free again")


# Run in the live server's environment (its database): an agent whose launch ended — torchrun exiting 1
# after a rank failed — with or without a note from rank 1, the way workers/job_rank.py leaves one.
SETTLE = """
import json, subprocess, sys, tempfile
from pathlib import Path
from app.config import get_settings
from app.db import session_scope
from app.jobs import lifecycle
from app.jobs.models import Job
from workers.agent import Agent, Launch

agent = Agent(["cpu:0", "cpu:1"], get_settings(), reconcile=False)
out = []
for job_id, note in json.loads(sys.argv[1]):
    worker_id = agent.id + "/cpu:0,cpu:1"
    with session_scope() as session:
        assert lifecycle.claim(session, job_id, worker_id)
    notes = Path(tempfile.mkdtemp())
    if note:
        (notes / "rank-1.json").write_text(json.dumps(note))
    ranks = subprocess.Popen([sys.executable, "-c", "raise SystemExit(1)"])
    agent.running[job_id] = Launch(job_id, worker_id, ["cpu:0", "cpu:1"], ranks, notes)
    free_while_running = agent.free
    ranks.wait()
    agent.reap()
    with session_scope() as session:
        job = session.get(Job, job_id)
        out.append([free_while_running, agent.free, notes.exists(), job.status, job.error_code, job.error_message])
agent.stop()
print("RESULT " + json.dumps(out))
"""


def test_an_ended_launch_frees_its_devices_and_settles_its_job(client, celery_server):
    """A rank's note (rank 1 writes no rows) fails the job with its code; no note — a rank died —
    re-queues it; either way the launch's devices are free again."""
    jobs = []
    for note in ({"code": "grader_error", "message": "The grader failed: boom"}, None):
        train = upload(client, jsonl(visual_rft_rows(2))).json()["id"]
        jobs.append([client.post("/v1/fine_tuning/jobs", json=job_body(train)).json()["id"], note])  # no worker runs
    proc = subprocess.run([sys.executable, "-c", SETTLE, json.dumps(jobs)], env=celery_server.env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    failed, requeued = json.loads(line[len("RESULT "):])
    assert failed == [[], ["cpu:0", "cpu:1"], False, "failed", "grader_error", "The grader failed: boom"]
    assert requeued[:5] == [[], ["cpu:0", "cpu:1"], False, "queued", None]
    events = [e["message"] for e in client.get(f"/v1/fine_tuning/jobs/{jobs[1][0]}/events").json()["data"]]
    assert any("A rank of the job on" in m and "exited with 1" in m and "re-queued" in m for m in events), events
    client.post(f"/v1/fine_tuning/jobs/{jobs[1][0]}/cancel")


def test_two_one_device_jobs_run_side_by_side(client, agent):
    jobs = [_create(client, gpus=None, grader=SLOW_GRADER, max_steps=4).json()["id"] for _ in range(2)]
    third = _create(client, gpus=None, max_steps=1).json()["id"]
    # both devices busy at once, one job each: the agent runs them side by side
    busy = wait_for(lambda: (row := agent.host_row()) and len(row.busy) == 2 and row.busy, what="both devices busy")
    assert sorted(busy) == ["cpu:0", "cpu:1"] and sorted(busy.values()) == sorted(jobs)
    assert client.get(f"/v1/fine_tuning/jobs/{third}").json()["status"] == "queued", "no device is oversubscribed"
    for job_id in [*jobs, third]:
        job = wait_status(client, job_id, ("succeeded", "failed"))
        assert job["status"] == "succeeded", (job["error"], agent.log()[-3000:])
        assert job["resources"] == {"gpus": 1}
    placed = [next(m for m in _messages(client, j) if m.startswith("Running on 1 device ")) for j in jobs]
    assert sorted(p.split("(")[1].split(")")[0] for p in placed) == ["cpu:0", "cpu:1"]
    wait_for(lambda: agent.host_row().busy == {}, timeout=30, what="the devices to be free again")


def test_more_devices_than_any_host_offers_is_a_422_naming_resources_gpus(client, agent):
    for resources, expect in [({"gpus": 3}, "no worker can offer"), ({"gpus": 0}, ""), ({"gpus": "2"}, ""),
                              ({"gpus": 2.0}, ""), ({"gpu": 2}, "")]:
        train = upload(client, jsonl(visual_rft_rows(4))).json()["id"]
        body = job_body(train) | {"resources": resources}
        body["method"]["reinforcement"]["hyperparameters"]["batch_size"] = 4  # room for 3 devices' shares
        r = client.post("/v1/fine_tuning/jobs", json=body)
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["param"] in ("resources.gpus", "resources.gpu"), error
        assert expect in error["message"]
    r = _create(client, gpus=2, batch_size=1)
    assert r.status_code == 422 and r.json()["error"]["param"] == "resources.gpus", r.text
    assert "batch_size" in r.json()["error"]["message"]
    r = _create(client, gpus=2, max_steps=1)
    assert r.status_code == 200, "two devices are on offer"
    client.post(f"/v1/fine_tuning/jobs/{r.json()['id']}/cancel")


def test_an_agent_leaves_the_registry_when_it_stops(celery_server, tmp_path):
    engine = sa.create_engine(celery_server.env["VRFT_DATABASE_URL"])
    started = AgentProcess(celery_server.env, tmp_path / "agent.log", "cpu:1")
    try:
        row = wait_for(lambda: _host_row(engine, started.proc.pid), timeout=60, what="the agent to register")
        assert row.devices == ["cpu:0"] and row.busy == {}
        started.stop()
        assert started.proc.returncode == 0
        assert _host_row(engine, started.proc.pid) is None
    finally:
        started.stop()
        engine.dispose()
    bad = subprocess.run([sys.executable, "-m", "workers.cli", "--gpus", "cpu:x"], env=celery_server.env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "cpu:N" in bad.stderr


def test_only_hosts_seen_recently_count_as_registered(db_session):
    from app.config import get_settings
    from app.db import now
    from app.errors import ServiceError
    from app.jobs import resources
    from app.jobs.models import WorkerHost

    settings = get_settings()
    ask = resources.Resources(gpus=4)
    with pytest.raises(ServiceError, match="no multi-device host is registered") as err:
        resources.check(db_session, ask, batch_size=8, settings=settings)
    assert err.value.param == "resources.gpus"
    assert resources.check(db_session, None, batch_size=1, settings=settings) == 1, "one device is always on offer"
    db_session.add(WorkerHost(id="gone:1", host="gone", devices=[f"cuda:{i}" for i in range(8)], busy={},
                              last_seen=now() - settings.heartbeat_stale_s - 1))
    db_session.add(WorkerHost(id="here:2", host="here", devices=["cuda:0", "cuda:1"], busy={}, last_seen=now()))
    db_session.flush()
    with pytest.raises(ServiceError, match="largest registered host, here, has 2 ") as err:
        resources.check(db_session, ask, batch_size=8, settings=settings)
    assert resources.check(db_session, resources.Resources(gpus=2), batch_size=8, settings=settings) == 2
    resources.beat(db_session, "gone:1", host="gone", devices=["cuda:0", "cuda:1", "cuda:2", "cuda:3"], busy={})
    db_session.flush()
    assert resources.check(db_session, ask, batch_size=8, settings=settings) == 4, "a host that beats again counts"
    db_session.add(WorkerHost(id="dead:3", host="dead", devices=["cuda:0"], busy={},
                              last_seen=now() - resources.GONE_AFTER_S - 1))
    db_session.flush()
    resources.beat(db_session, "here:2", host="here", devices=["cuda:0", "cuda:1"], busy={})
    db_session.flush()
    assert db_session.get(WorkerHost, "dead:3") is None, "an agent that never left is forgotten after a day"


def test_one_device_workers_leave_multi_device_jobs_to_the_agents(api_client, db_session):
    """The embedded and Celery workers (run_job: one device) neither pick nor claim a 2-device job, and
    the reconciler does not re-send it to the broker; an agent with two free devices can take it."""
    from app.db import now
    from app.jobs import lifecycle
    from app.jobs.models import WorkerHost

    db_session.add(WorkerHost(id="big:1", host="big", devices=["cuda:0", "cuda:1"], busy={}, last_seen=now()))
    db_session.flush()
    fid = upload(api_client, jsonl(visual_rft_rows(2))).json()["id"]
    r = api_client.post("/v1/fine_tuning/jobs", json=job_body(fid) | {"resources": {"gpus": 2}})
    assert r.status_code == 200, r.text
    job_id = r.json()["id"]
    assert lifecycle.next_queued(db_session) != (job_id, 2)
    assert job_id not in lifecycle.queued_jobs(db_session, enqueued_before=now() + 1)
    assert not lifecycle.claim(db_session, job_id, "one-device-worker")
    assert lifecycle.claim(db_session, job_id, "big:1/cuda:0,cuda:1", max_gpus=2)
