"""Jobs end to end through real processes: API server, Celery worker(s), Postgres, Redis, SeaweedFS."""

from __future__ import annotations

import io
import tarfile

import httpx
import redis

from tests.factories import job_body, jsonl, upload, visual_rft_rows
from tests.proxy import TcpProxy
from tests.services import S3_PORT
from tests.workers.conftest import metric_steps, wait_for, wait_status

# A reward a random tiny model earns in varying amounts, so groups have variance and GRPO updates the
# adapter (the paper's rewards score 0 for every completion of a random model: no gradient at all).
SIMILARITY = {"type": "text_similarity", "name": "similarity", "input": "{{sample.output_text}}",
              "reference": "{{item.solution}}", "evaluation_metric": "fuzzy_match"}


def _create_job(client, *, validation=False, grader=None, **hp) -> str:
    train = upload(client, jsonl(visual_rft_rows(6))).json()["id"]
    body = job_body(train)
    if grader is not None:
        body["method"]["reinforcement"]["grader"] = grader
    if validation:
        body["validation_file"] = upload(client, jsonl(visual_rft_rows(3)), filename="val.jsonl").json()["id"]
    body["method"]["reinforcement"]["hyperparameters"].update(hp)
    r = client.post("/v1/fine_tuning/jobs", json=body)
    assert r.status_code == 200, r.text
    return r.json()["id"]


def _adapter_tar(client, path: str) -> bytes:
    r = client.get(path)
    assert r.status_code == 307, r.text
    url = r.headers["location"]
    assert "X-Amz-Signature" in url
    got = httpx.get(url, timeout=30)  # presigned: no Authorization header needed
    assert got.status_code == 200
    return got.content


def test_job_succeeds_and_adapter_loads_with_peft(client, start_worker, tmp_path, celery_server):
    start_worker()
    job_id = _create_job(client, validation=True, grader=SIMILARITY, max_steps=4, checkpoint_interval=2,
                         learning_rate=0.05, group_size=4)
    job = wait_status(client, job_id, ("succeeded", "failed"))
    assert job["status"] == "succeeded", job["error"]
    assert job["fine_tuned_model"] == f"ft:vrft/tiny-qwen2-vl:{job['organization_id']}::{job_id}"
    assert job["progress"]["step"] == 4 and job["trained_tokens"] > 0 and job["finished_at"]

    assert metric_steps(client, job_id) == [1, 2, 3, 4]
    evals = [e["data"] for e in client.get(f"/v1/fine_tuning/jobs/{job_id}/events?limit=1000&type=metrics")
             .json()["data"] if e["data"].get("eval")]
    assert evals and "valid_reward_mean" in evals[0] and "similarity" in evals[0]["valid_rewards"]
    assert 0 in [e["step"] for e in evals], "the base model is evaluated before step 1"

    ckpts = client.get(f"/v1/fine_tuning/jobs/{job_id}/checkpoints").json()["data"]
    assert [c["step_number"] for c in ckpts] == [4, 2]
    assert "valid_reward_mean" in ckpts[0]["metrics"]
    ck_tar = _adapter_tar(client, f"/v1/fine_tuning/jobs/{job_id}/checkpoints/{ckpts[1]['id']}/adapter")
    assert "adapter_model.safetensors" in tarfile.open(fileobj=io.BytesIO(ck_tar)).getnames()

    rollouts = client.get(f"/v1/fine_tuning/jobs/{job_id}/rollouts").json()["data"]
    assert rollouts and rollouts[0]["image"].startswith("data:image/jpeg;base64,")
    assert len(rollouts[0]["completions"]) == 4 and "advantage" in rollouts[0]["completions"][0]
    assert any(c["advantage"] != 0 for r in rollouts for c in r["completions"])

    tar = tarfile.open(fileobj=io.BytesIO(_adapter_tar(client, f"/v1/fine_tuning/jobs/{job_id}/adapter")))
    names = tar.getnames()
    assert {"adapter_config.json", "adapter_model.safetensors", "preprocessor_config.json"} <= set(names)
    tar.extractall(tmp_path / "adapter", filter="data")

    import torch
    from peft import PeftModel

    from workers.training.model import load_model
    from workers.training.tiny import resolve_model

    base_dir = resolve_model("vrft/tiny-qwen2-vl", celery_server.env["VRFT_MODEL_CACHE"] + "/models")
    base = load_model(base_dir, device="cpu").model
    ids = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8]])
    with torch.no_grad():
        before = base(input_ids=ids).logits.clone()
        tuned = PeftModel.from_pretrained(base, tmp_path / "adapter")
        after = tuned(input_ids=ids).logits
    assert not torch.allclose(before, after), "the trained adapter must change the model's outputs"


def test_cancel_pause_resume(client, start_worker):
    start_worker()
    job_id = _create_job(client, max_steps=400, checkpoint_interval=50)
    wait_for(lambda: len(metric_steps(client, job_id)) >= 2, what="two steps")
    assert client.post(f"/v1/fine_tuning/jobs/{job_id}/pause").status_code == 200
    paused = wait_status(client, job_id, "paused", timeout=60)
    ckpts = client.get(f"/v1/fine_tuning/jobs/{job_id}/checkpoints").json()["data"]
    assert ckpts and ckpts[0]["step_number"] == paused["progress"]["step"], "pause writes a checkpoint"
    steps_at_pause = metric_steps(client, job_id)

    assert client.post(f"/v1/fine_tuning/jobs/{job_id}/resume").json()["status"] == "queued"
    wait_for(lambda: len(metric_steps(client, job_id)) >= len(steps_at_pause) + 2, what="steps after resume")
    steps = metric_steps(client, job_id)
    assert steps == list(range(1, len(steps) + 1)), "resume continues where pause stopped, no step repeats"

    cancelled = client.post(f"/v1/fine_tuning/jobs/{job_id}/cancel").json()
    assert cancelled["status"] == "cancelled"
    # the worker stops within a step: the step count stops growing and the next job runs
    next_job = _create_job(client, max_steps=1)
    assert wait_status(client, next_job, ("succeeded", "failed"))["status"] == "succeeded"
    final = job_status_after(client, job_id)
    assert final["status"] == "cancelled" and client.get(f"/v1/fine_tuning/jobs/{job_id}/checkpoints").json()["data"]


def job_status_after(client, job_id):
    return client.get(f"/v1/fine_tuning/jobs/{job_id}").json()


# Steps on the tiny model take milliseconds, so a 12-step job can finish between two polls of its
# checkpoints; a grader that takes 0.25 s per sample (4 per step) keeps each step ~1 s long, leaving
# the kill ~9 steps of margin after the first checkpoint without a test hook in the worker.
SLOW_GRADER = {"type": "python", "name": "slow",
               "source": "import time\n\ndef grade(sample, item):\n    time.sleep(0.25)\n    return 0.0\n"}


def test_worker_killed_mid_job_resumes_without_repeating_steps(client, start_worker):
    first = start_worker()
    job_id = _create_job(client, grader=SLOW_GRADER, max_steps=12, checkpoint_interval=3)
    wait_for(lambda: client.get(f"/v1/fine_tuning/jobs/{job_id}/checkpoints").json()["data"], what="a checkpoint")
    first.kill()  # SIGKILL the whole worker: parent and the child running the job
    assert client.get(f"/v1/fine_tuning/jobs/{job_id}").json()["status"] == "running", "killed mid-job"
    start_worker()
    job = wait_status(client, job_id, ("succeeded", "failed"), timeout=300)
    assert job["status"] == "succeeded", job["error"]
    assert job["attempt"] == 2
    assert metric_steps(client, job_id) == list(range(1, 13))
    messages = [e["message"] for e in client.get(f"/v1/fine_tuning/jobs/{job_id}/events?limit=1000").json()["data"]]
    assert any("Resuming from the checkpoint" in m for m in messages)
    assert sum("adapter uploaded" in m for m in messages) == 1


def test_job_survives_a_redis_flush_while_queued(client, start_worker, celery_server):
    job_id = _create_job(client, max_steps=1)
    redis.Redis.from_url(celery_server.broker).flushdb()  # the message is gone; the row is not
    start_worker()
    job = wait_status(client, job_id, ("succeeded", "failed"))
    assert job["status"] == "succeeded", job["error"]


def test_storage_outage_during_checkpoint_fails_with_storage_unavailable(client, start_worker):
    proxy = TcpProxy(S3_PORT)
    start_worker(VRFT_S3_ENDPOINT_URL=f"http://127.0.0.1:{proxy.port}")
    job_id = _create_job(client, max_steps=400, checkpoint_interval=6)
    wait_for(lambda: len(metric_steps(client, job_id)) >= 1, what="the first step")
    proxy.stop()
    job = wait_status(client, job_id, ("failed", "succeeded"), timeout=120)
    assert job["status"] == "failed"
    assert job["error"]["code"] == "storage_unavailable" and "storage" in job["error"]["message"].lower()


def test_dry_run_reports_rewards_variance_flags_and_step_time(client, start_worker):
    start_worker()
    train = upload(client, jsonl(visual_rft_rows(6))).json()["id"]
    body = job_body(train, dry_run=True, dry_run_samples=3)
    body["method"]["reinforcement"]["grader"] = SIMILARITY
    body["method"]["reinforcement"]["hyperparameters"].update(group_size=4, max_steps=50)
    job = client.post("/v1/fine_tuning/jobs", json=body).json()
    assert job["dry_run"] is True and job["progress"]["total_steps"] == 0
    job = wait_status(client, job["id"], ("succeeded", "failed"))
    assert job["status"] == "succeeded", job["error"]
    report = job["dry_run_report"]
    assert report["rows_sampled"] == 3 and report["completions"] == 12
    assert sum(report["reward_histogram"]["counts"]) == 12
    assert 0.0 <= report["zero_variance_group_fraction"] <= 1.0
    assert set(report["flag_rates"]) >= {"sample_parse_error"}
    assert report["seconds_per_step"] > 0 and report["estimated_total_seconds"] > report["seconds_per_step"]
    memory = report["memory_estimate"]  # the pre-flight estimate for the job's real batch (CPU: no verdict)
    assert memory["total_gib"] > memory["weights_gib"] > 0 and memory["fits"] is None
    assert metric_steps(client, job["id"]) == [], "a dry run trains nothing"
    assert client.get(f"/v1/fine_tuning/jobs/{job['id']}/adapter").status_code == 409


def test_missing_base_model_fails_with_model_not_found(client, start_worker):
    start_worker()
    job_id = client.post("/v1/fine_tuning/jobs", json=job_body(
        upload(client, jsonl(visual_rft_rows(2))).json()["id"], model="acme/missing-vl")).json()["id"]
    job = wait_status(client, job_id, ("succeeded", "failed"))
    assert job["status"] == "failed"
    assert job["error"]["code"] == "model_not_found" and "acme/missing-vl" in job["error"]["message"]
