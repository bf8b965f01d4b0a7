"""The CLI and SDK create supervised jobs: `vrft jobs create --method supervised` needs no grader, a
file that does not suit the method is refused naming its line, and the SDK's method_type builds
OpenAI's shape."""

from __future__ import annotations

import json

from tests.client.conftest import TINY_MODEL
from tests.factories import chat_rows, jsonl
from vrft.resources._shared import build_job_body


def test_cli_creates_a_supervised_job_without_a_grader(cli, tmp_path):
    data = tmp_path / "answers.jsonl"
    data.write_bytes(jsonl(chat_rows(2)))
    created = cli("jobs", "create", "--method", "supervised", "--model", TINY_MODEL, "--training-file", str(data),
                  "--hyperparameters", '{"max_steps": 1, "batch_size": 2}', "--json")
    assert created.returncode == 0, created.stderr
    job = json.loads(created.stdout)
    assert job["method"]["type"] == "supervised" and job["resolved_hyperparameters"]["max_steps"] == 1
    assert cli("jobs", "cancel", job["id"]).returncode in (0, 1)  # it may already have finished

    refused = cli("jobs", "create", "--model", TINY_MODEL, "--training-file", job["training_file"], "--grader",
                  '{"type": "visual_rft", "name": "v", "task": "classification"}')
    assert refused.returncode == 1 and "file_unsuited_for_method" in refused.stderr and "line 1" in refused.stderr
    assert cli("jobs", "create", "--model", TINY_MODEL, "--training-file", "file-x").returncode == 2  # no grader


def test_gpus_reach_the_server_as_resources(cli, live, tmp_path):
    data = tmp_path / "answers.jsonl"
    data.write_bytes(jsonl(chat_rows(2)))
    # no host on the test server offers 3 devices: the server names the field, so it was sent
    r = cli("jobs", "create", "--method", "supervised", "--gpus", "3", "--model", TINY_MODEL, "--training-file",
            str(data), "--hyperparameters", '{"max_steps": 1, "batch_size": 2}')
    assert r.returncode == 1 and "resources.gpus" in r.stderr, r.stderr
    job = live.jobs.create(model=TINY_MODEL, training_file=live.files.create(file=data).id,
                           method_type="supervised", gpus=1, hyperparameters={"max_steps": 1, "batch_size": 2})
    assert job.model_extra["resources"] == {"gpus": 1}  # echoed as sent
    assert cli("jobs", "cancel", job.id).returncode in (0, 1)  # it may already have finished


def test_sdk_method_type_builds_openais_shape():
    body = build_job_body(model="m", training_file="file-1", grader=None, method_type="supervised",
                          hyperparameters={"n_epochs": 2})
    assert body["method"] == {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}}
