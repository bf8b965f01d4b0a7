"""The SDK, the CLI and openai-python against a real ``vrft-server serve`` process (Postgres + S3).

Jobs created here are cancelled right away; only the test marked ``slow`` lets one run to the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid

import httpx
import pytest

import vrft
from tests.client.conftest import CLS_GRADER, TINY_MODEL, visual_rft_jsonl
from tests.client.httpstub import Reply, StubServer


@pytest.fixture(scope="module")
def live_file(live) -> vrft.FileObject:
    return live.files.upload(visual_rft_jsonl(4), filename="colours.jsonl")


def _create(client, training_file, **kw) -> vrft.FineTuningJob:
    return client.jobs.create(model=TINY_MODEL, training_file=training_file, grader=CLS_GRADER,
                              hyperparameters={"max_steps": 1, "group_size": 2, "max_completion_tokens": 8}, **kw)


def test_live_sdk_flow(live, live_file):
    assert live_file.status == "processed"
    job = _create(live, live_file, suffix="live")
    cancelled = live.jobs.cancel(job.id)
    assert cancelled.status == "cancelled"
    assert live.jobs.retrieve(job.id).status == "cancelled"

    events = list(live.jobs.events(job.id))
    messages = [e.message for e in events]
    assert messages[0].startswith("Created fine-tuning job") and any("cancelled" in m for m in messages)
    assert [e.created_at for e in events] == sorted(e.created_at for e in events)  # oldest first
    newest_first = list(live.jobs.list_events(job.id, limit=2))
    assert [e.id for e in newest_first] == [e.id for e in reversed(events)]  # walks every page

    followed = list(live.jobs.events(job.id, follow=True))  # SSE: replays, then ends with the job
    assert [e.id for e in followed] == [e.id for e in events]
    assert list(live.jobs.checkpoints(job.id)) == []
    assert live.jobs.wait(job.id, progress=False).status == "cancelled"


def test_live_async_events_follow(live_server, live_key, live_file):
    import asyncio

    async def scenario():
        async with vrft.AsyncClient(api_key=live_key, base_url=live_server.base_url) as client:
            job = await client.jobs.create(model=TINY_MODEL, training_file=live_file.id, grader=CLS_GRADER)
            await client.jobs.cancel(job.id)
            return [e.message async for e in client.jobs.events(job.id, follow=True)]

    messages = asyncio.run(scenario())
    assert messages[0].startswith("Created fine-tuning job") and "cancelled" in messages[-1]


def test_retries_reuse_one_idempotency_key_and_create_one_job(live_server, live, live_file):
    seen_keys = []
    forward = httpx.Client(base_url=live_server.base_url, timeout=30)

    def forwarded_headers(seen):
        return {k: v for k, v in seen.headers.items() if k not in ("host", "content-length")}

    def flaky_proxy(seen):
        if seen.method == "POST" and seen.path == "/v1/fine_tuning/jobs":
            seen_keys.append(seen.headers.get("idempotency-key"))
            if len(seen_keys) <= 2:
                return Reply(503, b'{"error": {"message": "try again", "type": "service_unavailable", '
                                  b'"param": null, "code": "dependency_unavailable"}}',
                             {"Content-Type": "application/json", "Retry-After": "0"})
            if len(seen_keys) == 3:  # the server creates the job but the answer is lost on the way back
                forward.request(seen.method, seen.path, content=seen.body, headers=forwarded_headers(seen))
                return Reply(502, b"upstream connection reset", {"Content-Type": "text/plain"})
        upstream = forward.request(seen.method, seen.path, content=seen.body, headers=forwarded_headers(seen))
        return Reply(upstream.status_code, upstream.content,
                     {k: v for k, v in upstream.headers.items() if k in ("content-type", "x-poll-after-ms")})

    tag = uuid.uuid4().hex[:12]
    with StubServer(flaky_proxy) as proxy:
        client = vrft.Client(api_key=live.api_key, base_url=proxy.url, max_retries=3)
        job = _create(client, live_file.id, metadata={"tag": tag})
        with contextlib.suppress(vrft.ConflictError):  # the 1-step job may have finished during the retries
            live.jobs.cancel(job.id)
    forward.close()
    assert len(seen_keys) == 4 and len(set(seen_keys)) == 1 and seen_keys[0]
    tagged = [j for j in live.jobs.list(limit=100) if (j.metadata or {}).get("tag") == tag]
    assert [j.id for j in tagged] == [job.id]  # one job, though the server saw the POST twice


# -- CLI ---------------------------------------------------------------------------------------------
# A few runs go through a real subprocess (the console script and ``python -m vrft.cli``); the rest call
# ``vrft.cli.main()`` in this process — same parser, same client, same live server, no interpreter start-up.
def _cli(live_server, live_key, *args, script=False, timeout=120):
    env = {**os.environ, "VRFT_API_KEY": live_key, "VRFT_BASE_URL": live_server.base_url}
    if script:
        cmd = [os.path.join(os.path.dirname(sys.executable), "vrft"), *args]
    else:
        cmd = [sys.executable, "-m", "vrft.cli", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def test_cli_subprocess_upload_create_wait(live_server, live_key, tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_bytes(visual_rft_jsonl(4))
    up = _cli(live_server, live_key, "files", "upload", str(data), "--json", "--progress")
    assert up.returncode == 0, up.stderr
    file_id = json.loads(up.stdout)["id"]
    assert "upload train.jsonl" in up.stderr  # the progress bar, on stderr

    spec = tmp_path / "job.yaml"
    spec.write_text(f"model: {TINY_MODEL}\ntraining_file: {file_id}\n"
                    "grader:\n  type: visual_rft\n  name: visual_rft\n  task: classification\n"
                    "hyperparameters:\n  max_steps: 1\n  group_size: 2\n")
    created = _cli(live_server, live_key, "jobs", "create", "--spec", str(spec), "--suffix", "cli", "--json",
                   script=True)
    assert created.returncode == 0, created.stderr
    job = json.loads(created.stdout)
    assert job["user_provided_suffix"] == "cli" and job["method"]["reinforcement"]["hyperparameters"]["max_steps"] == 1
    vrft.Client(api_key=live_key, base_url=live_server.base_url).jobs.cancel(job["id"])
    waited = _cli(live_server, live_key, "jobs", "wait", job["id"])
    assert waited.returncode == 5 and "cancelled" in waited.stderr and "cancelled" in waited.stdout


def test_cli_commands(cli, tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_bytes(visual_rft_jsonl(4))
    up = cli("files", "upload", str(data), "--json")
    assert up.returncode == 0, up.stderr
    file_id = json.loads(up.stdout)["id"]
    listing = cli("files", "list")
    assert listing.returncode == 0 and file_id in listing.stdout and "FILENAME" in listing.stdout
    assert "processed" in cli("files", "show", file_id).stdout
    report = cli("files", "validation", file_id)
    assert report.returncode == 0 and "rows_valid" in report.stdout
    out = tmp_path / "copy.jsonl"
    assert cli("files", "content", file_id, "-o", str(out)).returncode == 0 and out.read_bytes() == data.read_bytes()

    created = cli("jobs", "create", "--model", TINY_MODEL, "--training-file", file_id, "--grader",
                  json.dumps(CLS_GRADER), "--hyperparameters", '{"max_steps": 1}', "--metadata", "team=cv", "--json")
    assert created.returncode == 0, created.stderr
    job = json.loads(created.stdout)
    assert job["metadata"] == {"team": "cv"}
    paused = cli("jobs", "pause", job["id"])
    if paused.returncode == 0:  # the embedded worker may have claimed it already
        assert "paused" in paused.stdout or "running" in paused.stdout
    cancel = cli("jobs", "cancel", job["id"])
    assert cancel.returncode == 0 and "cancelled" in cancel.stdout
    assert json.loads(cli("jobs", "show", job["id"], "--json").stdout)["status"] == "cancelled"
    assert job["id"] in cli("jobs", "list").stdout
    events = cli("jobs", "events", job["id"], "--follow")
    assert events.returncode == 0 and "Created fine-tuning job" in events.stdout.splitlines()[0]
    assert cli("jobs", "checkpoints", job["id"]).returncode == 0
    again = cli("jobs", "resume", job["id"])
    assert again.returncode == 1 and "invalid_state_transition" in again.stderr

    dry = cli("jobs", "create", "--model", TINY_MODEL, "--training-file", str(data), "--grader",
              json.dumps(CLS_GRADER), "--dry-run", "--json")  # a local path is uploaded first
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["dry_run"] is True and "uploaded" in dry.stderr
    cli("jobs", "cancel", json.loads(dry.stdout)["id"])

    models = cli("models", "--json")
    assert TINY_MODEL in [m["id"] for m in json.loads(models.stdout)]
    validated = cli("graders", "validate", json.dumps(CLS_GRADER))
    assert validated.returncode == 0 and json.loads(validated.stdout)["task"] == "classification"
    ran = cli("graders", "run", "--grader", json.dumps(CLS_GRADER), "--sample",
              "<think>.</think><answer>red</answer>", "--item", '{"solution": "<answer>red</answer>"}', "--json")
    assert ran.returncode == 0 and json.loads(ran.stdout)["reward"] == pytest.approx(2.0)


def test_cli_exit_codes(cli, live_server, live_key):
    missing = cli("jobs", "show", "ftjob-nope")
    assert missing.returncode == 1 and "job_not_found" in missing.stderr
    bad_json = cli("jobs", "create", "--model", TINY_MODEL, "--training-file", "file-x", "--grader", "{not json")
    assert bad_json.returncode == 2 and "--grader" in bad_json.stderr
    assert cli("jobs", "create", "--model", TINY_MODEL).returncode == 2  # no training file
    assert cli("jobs", "frobnicate").returncode == 2
    down = cli("models", "--base-url", "http://127.0.0.1:9", "--max-retries", "0")
    assert down.returncode == 4 and "cannot reach" in down.stderr
    badkey = cli("models", key="vrft-wrong")
    assert badkey.returncode == 1 and "invalid_api_key" in badkey.stderr
    invalid = cli("graders", "validate", '{"type": "visual_rft", "name": "x", "task": "juggling"}', "--json")
    assert invalid.returncode == 1 and json.loads(invalid.stdout)["error"]["code"] == "invalid_grader"


# -- openai-python ------------------------------------------------------------------------------------
def test_openai_python_works_unchanged(live_server, live_key):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(api_key=live_key, base_url=live_server.base_url + "/v1", max_retries=0)

    f = client.files.create(file=("colours.jsonl", visual_rft_jsonl(4)), purpose="fine-tune")
    assert f.id.startswith("file-") and f.status == "processed"
    job = client.fine_tuning.jobs.create(
        model=TINY_MODEL, training_file=f.id, suffix="oa", seed=3,
        method={"type": "reinforcement", "reinforcement": {
            "grader": {"type": "string_check", "name": "exact", "operation": "eq",
                       "input": "{{sample.output_text}}", "reference": "{{item.solution}}"},
            "hyperparameters": {"n_epochs": 1, "batch_size": 2}}},
    )
    assert job.id.startswith("ftjob-") and job.method.type == "reinforcement"
    assert job.method.reinforcement.grader.type == "string_check"
    assert client.fine_tuning.jobs.retrieve(job.id).id == job.id
    assert job.id in [j.id for j in client.fine_tuning.jobs.list(limit=5)]
    cancelled = client.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled"
    events = list(client.fine_tuning.jobs.list_events(job.id, limit=2))  # auto-paginates
    assert events and all(e.object == "fine_tuning.job.event" for e in events)
    assert any("Created fine-tuning job" in e.message for e in events)
    assert list(client.fine_tuning.jobs.checkpoints.list(job.id)) == []

    grader = {"type": "string_check", "name": "exact", "operation": "eq",
              "input": "{{sample.output_text}}", "reference": "{{item.answer}}"}
    validated = client.fine_tuning.alpha.graders.validate(grader=grader)
    assert validated.grader.type == "string_check"
    ran = client.fine_tuning.alpha.graders.run(grader=grader, model_sample="red", item={"answer": "red"})
    assert ran.reward == 1.0 and ran.metadata.errors.invalid_variable_error is False

    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.retrieve("ftjob-nope")


# -- one real run to the end ---------------------------------------------------------------------------
@pytest.mark.slow
def test_job_runs_to_the_end_and_adapter_downloads(live, live_file, tmp_path):
    job = live.jobs.create(model=TINY_MODEL, training_file=live_file, grader=CLS_GRADER,
                           hyperparameters={"max_steps": 1, "batch_size": 1, "group_size": 2,
                                            "max_completion_tokens": 4, "checkpoint_interval": 1})
    final = live.jobs.wait(job.id, timeout=240, progress=False)
    assert final.status == "succeeded" and final.fine_tuned_model
    raw = httpx.get(f"{live.base_url}/v1/fine_tuning/jobs/{job.id}/adapter",
                    headers={"Authorization": f"Bearer {live.api_key}"}, follow_redirects=False)
    assert raw.status_code in (200, 307)  # 307 → presigned S3 URL on another host, fetched without our key
    path = live.jobs.download_adapter(job.id, tmp_path / "adapter.tar")
    assert path.stat().st_size > 0
    folder = live.jobs.download_adapter(job.id, tmp_path / "adapter", extract=True)
    assert (folder / "adapter_config.json").is_file()
    ckpts = list(live.jobs.checkpoints(job.id))
    if ckpts:
        ck = live.jobs.download_adapter(job.id, tmp_path, checkpoint=ckpts[0].step_number)
        assert ck.stat().st_size > 0
