"""Supervised fine-tuning end to end on the live server (embedded worker, Postgres, SeaweedFS), driven
by openai-python: an image chat file trains and memorises per-image answers, and a reinforcement job
started from that job's ft: model begins exactly where it ended and publishes an adapter that loads on
the plain base model."""

from __future__ import annotations

import io
import json
import tarfile
import time

import httpx
import pytest

from tests.factories import chat_rows, jsonl

EXACT = {"type": "string_check", "name": "exact", "operation": "eq", "input": "{{sample.output_text}}",
         "reference": "{{item.solution}}"}
# the tiny random model learns three short answers in ~40 steps at this rate (tests/training/test_sft.py)
SFT_HP = {"max_steps": 40, "batch_size": 3, "learning_rate": 0.01, "max_completion_tokens": 8,
          "lora": {"r": 8, "alpha": 16, "dropout": 0.0}}


def _wait(client, job_id: str, timeout: float = 400):
    deadline = time.time() + timeout
    while True:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in ("succeeded", "failed", "cancelled"):
            return job
        assert time.time() < deadline, f"{job_id} still {job.status}"
        time.sleep(1)


def _metrics(live_server, key: str, job_id: str) -> list[dict]:
    r = httpx.get(f"{live_server.base_url}/v1/fine_tuning/jobs/{job_id}/events?limit=1000&type=metrics",
                  headers={"Authorization": f"Bearer {key}"})
    return [e["data"] for e in reversed(r.json()["data"])]  # oldest first


def test_supervised_job_then_rft_from_its_ft_model(live_server, tmp_path):
    openai = pytest.importorskip("openai")
    key = live_server.create_key()
    client = openai.OpenAI(api_key=key, base_url=live_server.base_url + "/v1", max_retries=0)
    answers = client.files.create(file=("answers.jsonl", jsonl(chat_rows(3))), purpose="fine-tune")
    assert answers.status == "processed" and answers.model_extra["methods"] == ["supervised"]

    sft = client.fine_tuning.jobs.create(
        model="vrft/tiny-qwen2-vl", training_file=answers.id, validation_file=answers.id, seed=0, suffix="sft",
        # the grader (a vrft extension of the supervised block) scores greedy answers at each evaluation
        method={"type": "supervised", "supervised": {"hyperparameters": SFT_HP, "grader": EXACT}})
    assert sft.method.type == "supervised"
    done = _wait(client, sft.id)
    assert done.status == "succeeded", done.error
    steps = [m for m in _metrics(live_server, key, sft.id) if not m.get("eval")]
    evals = [m for m in _metrics(live_server, key, sft.id) if m.get("eval")]
    assert steps[-1]["train_loss"] < 0.2 * steps[0]["train_loss"] and steps[-1]["train_mean_token_accuracy"] > 0.9
    assert evals[0]["step"] == 0 and evals[0]["valid_rewards"]["exact"] == 0.0
    final = evals[-1]
    assert final["valid_rewards"]["exact"] >= 0.9, final  # exact answers on the training images
    assert final["valid_loss"] < evals[0]["valid_loss"]

    prompts = chat_rows(3)
    for row in prompts:
        row["messages"].pop()  # the same images and question, ending with the user's turn
    questions = client.files.create(file=("questions.jsonl", jsonl(prompts)), purpose="fine-tune")
    assert questions.model_extra["methods"] == ["reinforcement"]
    rft = client.fine_tuning.jobs.create(
        model=done.fine_tuned_model, training_file=questions.id, validation_file=questions.id, seed=0,
        method={"type": "reinforcement", "reinforcement": {"grader": EXACT, "hyperparameters": {
            "max_steps": 2, "batch_size": 3, "group_size": 2, "max_completion_tokens": 8, "learning_rate": 1e-6}}})
    assert rft.model == done.fine_tuned_model
    chained = _wait(client, rft.id)
    assert chained.status == "succeeded", chained.error
    assert chained.fine_tuned_model.startswith("ft:vrft/tiny-qwen2-vl:")  # named after the base, not nested
    start = next(m for m in _metrics(live_server, key, rft.id) if m.get("eval"))
    assert start["step"] == 0 and start["valid_rewards"] == final["valid_rewards"]  # begins where SFT ended

    # its adapter stands alone on the base model: SFT's and its own, composed
    got = httpx.get(f"{live_server.base_url}/v1/fine_tuning/jobs/{rft.id}/adapter",
                    headers={"Authorization": f"Bearer {key}"}, follow_redirects=True, timeout=60)
    assert got.status_code == 200
    folder = tmp_path / "adapter"
    tarfile.open(fileobj=io.BytesIO(got.content)).extractall(folder, filter="data")
    assert json.loads((folder / "adapter_config.json").read_text())["r"] == 16 + 8  # rft's r 16 + sft's r 8

    # callable by name at once; two RFT steps at lr 1e-6 leave the SFT model's greedy answer as it was
    image = prompts[0]["messages"][0]["content"][0]
    ask = [{"role": "user", "content": [image, {"type": "text", "text": "Colour code?"}]}]
    replies = [client.chat.completions.create(model=m, messages=ask, max_tokens=8, temperature=0)
               for m in (done.fine_tuned_model, chained.fine_tuned_model)]
    assert replies[0].choices[0].message.content == replies[1].choices[0].message.content
