"""The embedded default: `vrft-server serve` with nothing configured runs jobs end to end on SQLite
and a local folder — no Postgres, no Redis, no S3 — and picks up where it was killed."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import tarfile

import httpx

from tests.factories import job_body, jsonl, upload, visual_rft_rows
from tests.services import free_port, wait_healthy
from tests.workers.conftest import metric_steps, wait_for, wait_status


def _env(tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VRFT_")}
    env.update(VRFT_DATA_DIR=str(tmp_path / "data"), VRFT_POLL_INTERVAL_MS="300",
               VRFT_MODEL_CACHE=str(tmp_path.parent / "vrft-test-models-embedded"))
    return env


def _serve(env: dict, port: int, log_name: str, tmp_path) -> subprocess.Popen:
    log = tmp_path / log_name
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(port)], env=env,
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    wait_healthy(f"http://127.0.0.1:{port}", proc, log)
    return proc


def _stop(proc: subprocess.Popen, sig=signal.SIGTERM) -> None:
    try:
        os.killpg(proc.pid, sig)  # the server and its embedded worker
    except ProcessLookupError:
        return
    proc.wait(timeout=30)


def _client(env: dict, port: int) -> httpx.Client:
    key = subprocess.run([sys.executable, "-m", "app.cli", "create-key", "--project", "solo"], env=env,
                         capture_output=True, text=True, check=True).stdout.strip()
    return httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}, timeout=30)


def test_embedded_mode_runs_a_job_with_no_services(tmp_path):
    env, port = _env(tmp_path), free_port()
    proc = _serve(env, port, "server.log", tmp_path)
    try:
        client = _client(env, port)
        ready = client.get("/readyz").json()
        assert ready["status"] == "ready", ready
        train = upload(client, jsonl(visual_rft_rows(4))).json()["id"]
        job_id = client.post("/v1/fine_tuning/jobs", json=job_body(train)).json()["id"]
        job = wait_status(client, job_id, ("succeeded", "failed"))
        assert job["status"] == "succeeded", (job["error"], (tmp_path / "server.log").read_text()[-3000:])
        r = client.get(f"/v1/fine_tuning/jobs/{job_id}/adapter")
        assert r.status_code == 200  # streamed from the local object folder
        assert "adapter_model.safetensors" in tarfile.open(fileobj=io.BytesIO(r.content)).getnames()
        assert (tmp_path / "data" / "vrft.db").exists()
    finally:
        _stop(proc)


def test_embedded_server_killed_mid_job_resumes_it_after_restart(tmp_path):
    env, port = _env(tmp_path), free_port()
    proc = _serve(env, port, "server-1.log", tmp_path)
    try:
        client = _client(env, port)
        train = upload(client, jsonl(visual_rft_rows(4))).json()["id"]
        body = job_body(train)
        body["method"]["reinforcement"]["hyperparameters"].update(max_steps=5000, checkpoint_interval=3)
        job_id = client.post("/v1/fine_tuning/jobs", json=body).json()["id"]
        ckpt = wait_for(lambda: client.get(f"/v1/fine_tuning/jobs/{job_id}/checkpoints").json()["data"],
                        what="a checkpoint")[0]["step_number"]
    finally:
        _stop(proc, signal.SIGKILL)  # no goodbye: the job is left 'running'

    proc = _serve(env, port, "server-2.log", tmp_path)
    try:
        wait_for(lambda: client.get(f"/v1/fine_tuning/jobs/{job_id}").json()["attempt"] == 2
                 and len(metric_steps(client, job_id)) > ckpt + 3, timeout=120, what="the job to resume")
        steps = metric_steps(client, job_id)
        assert steps == list(range(1, len(steps) + 1)), "resumed after its checkpoint, no step twice"
        messages = [e["message"] for e in client.get(f"/v1/fine_tuning/jobs/{job_id}/events?limit=1000").json()["data"]]
        assert any("Resuming from the checkpoint" in m for m in messages)
        assert client.post(f"/v1/fine_tuning/jobs/{job_id}/cancel").json()["status"] == "cancelled"
    finally:
        _stop(proc)
