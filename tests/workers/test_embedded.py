"""The embedded default: `vrft-server serve` with nothing configured runs jobs end to end on SQLite
and a local folder — no Postgres, no Redis, no S3."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile

import httpx

from tests.factories import job_body, jsonl, upload, visual_rft_rows
from tests.services import free_port, wait_healthy
from tests.workers.conftest import wait_status


def test_embedded_mode_runs_a_job_with_no_services(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("VRFT_")}
    env["VRFT_DATA_DIR"] = str(tmp_path / "data")
    env["VRFT_MODEL_CACHE"] = str(tmp_path.parent / "vrft-test-models-embedded")
    port = free_port()
    log = open(tmp_path / "server.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(port)], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base, proc, tmp_path / "server.log")
        key = subprocess.run([sys.executable, "-m", "app.cli", "create-key", "--project", "solo"], env=env,
                             capture_output=True, text=True, check=True).stdout.strip()
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30)
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
        proc.terminate()
        proc.wait(timeout=30)
