"""The SDK against the real app in-process (``api_client`` is an httpx.Client subclass)."""

from __future__ import annotations

import asyncio
import io
import json

import httpx
import pytest

import vrft
from tests.client.conftest import CLS_GRADER, TINY_MODEL


@pytest.fixture
def client(api_client) -> vrft.Client:
    return vrft.Client(http_client=api_client, max_retries=0)


@pytest.fixture
def training_file(client, dataset_path) -> vrft.FileObject:
    return client.files.upload(dataset_path)


# -- files -------------------------------------------------------------------------------------------
def test_upload_path_bytes_and_file_object(client, dataset_path, dataset_bytes):
    from_path = client.files.upload(dataset_path)
    assert isinstance(from_path, vrft.FileObject)
    assert from_path.id.startswith("file-") and from_path.filename == "colours.jsonl"
    assert from_path.bytes == len(dataset_bytes) and from_path.status == "processed"
    assert from_path.format == "visual_rft_jsonl" and from_path.rows == 4

    from_bytes = client.files.upload(dataset_bytes, filename="b.jsonl")
    assert from_bytes.filename == "b.jsonl" and from_bytes.bytes == len(dataset_bytes)

    fh = io.BytesIO(b"junk-before" + dataset_bytes)
    fh.seek(len(b"junk-before"))  # uploads from the current position
    from_fh = client.files.create(file=fh, filename="c.jsonl")
    assert from_fh.bytes == len(dataset_bytes) and from_fh.status == "processed"


def test_upload_progress_is_drawn(client, dataset_path):
    out = io.StringIO()
    bar = vrft.Progress("upload", dataset_path.stat().st_size, stream=out, interval=0)
    client.files.upload(dataset_path, progress=bar)
    assert "upload [####" in out.getvalue()


def test_retrieve_list_content_validation_delete(client, training_file, dataset_bytes):
    got = client.files.retrieve(training_file.id)
    assert got.id == training_file.id and got.created_at > 0
    assert training_file.id in [f.id for f in client.files.list()]
    assert client.files.content(training_file.id) == dataset_bytes

    report = client.files.validation(training_file)
    assert isinstance(report, vrft.FileValidation)
    assert report.file_id == training_file.id and report.rows_valid == 4 and report.problems == []
    assert "solution" in report.reference_fields

    deleted = client.files.delete(training_file.id)
    assert deleted.deleted is True and deleted.id == training_file.id
    with pytest.raises(vrft.NotFoundError) as err:
        client.files.retrieve(training_file.id)
    assert err.value.code == "file_not_found" and err.value.status_code == 404


def test_content_to_disk(client, training_file, dataset_bytes, tmp_path):
    path = client.files.content(training_file.id, dest=tmp_path / "sub" / "copy.jsonl")
    assert path.read_bytes() == dataset_bytes
    assert not list(tmp_path.rglob("*.part"))


def test_invalid_dataset_is_unprocessable_with_line_and_field(client):
    bad = b'{"image": "data:image/png;base64,AAAA", "problem": "p"}\nnot json\n'
    with pytest.raises(vrft.UnprocessableEntityError) as err:
        client.files.upload(bad, filename="bad.jsonl")
    exc = err.value
    assert exc.status_code == 422 and exc.code == "dataset_invalid"
    assert exc.body["error"]["validation"]["problems"]  # the full report travels in the body
    assert "dataset_invalid" in str(exc)


def test_auto_pagination_walks_every_page(client, dataset_bytes):
    ids = [client.files.upload(dataset_bytes, filename=f"p{i}.jsonl").id for i in range(5)]
    pager = client.files.list(limit=2)
    assert len(pager.data) == 2 and pager.has_more and pager.has_next_page()
    pages = list(pager.iter_pages())
    assert [len(p.data) for p in pages] == [2, 2, 1]
    listed = [f.id for f in pager]
    assert listed == list(reversed(ids))  # newest first, no duplicates, nothing missing
    second = pager.next_page()
    assert second is not None and [f.id for f in second.data] == listed[2:4]


# -- jobs --------------------------------------------------------------------------------------------
def test_job_create_retrieve_list_cancel(client, training_file):
    job = client.jobs.create(model=TINY_MODEL, training_file=training_file, grader=CLS_GRADER,
                             hyperparameters={"max_steps": 3, "group_size": 2}, suffix="sdk", seed=7,
                             metadata={"owner": "tests"})
    assert isinstance(job, vrft.FineTuningJob)
    assert job.id.startswith("ftjob-") and job.status == "queued"
    assert job.method["type"] == "reinforcement"
    assert job.method["reinforcement"]["grader"]["type"] == "visual_rft"
    assert job.seed == 7 and job.metadata == {"owner": "tests"} and job.user_provided_suffix == "sdk"
    assert job.progress is not None and job.progress.total_steps == 3
    assert client.jobs.retrieve(job.id).id == job.id
    assert job.id in [j.id for j in client.jobs.list()]

    cancelled = client.jobs.cancel(job)
    assert cancelled.status == "cancelled" and cancelled.is_terminal
    with pytest.raises(vrft.ConflictError) as err:
        client.jobs.cancel(job.id)
    assert err.value.code == "invalid_state_transition" and err.value.param == "status"


def test_pause_resume_and_checkpoints(client, training_file):
    job = client.jobs.create(model=TINY_MODEL, training_file=training_file.id, grader=CLS_GRADER)
    assert client.jobs.pause(job.id).status == "paused"
    assert client.jobs.resume(job.id).status == "queued"
    assert list(client.jobs.checkpoints(job.id)) == []
    client.jobs.cancel(job.id)
    messages = [e.message for e in client.jobs.events(job.id)]  # oldest first
    assert messages[0].startswith("Created fine-tuning job") and "paused" in " ".join(messages)
    assert [e.message for e in client.jobs.list_events(job.id, limit=2)] == list(reversed(messages))


def test_wait_returns_cancelled_or_raises_when_asked(client, training_file):
    job = client.jobs.create(model=TINY_MODEL, training_file=training_file, grader=CLS_GRADER)
    out = io.StringIO()
    with pytest.raises(vrft.WaitTimeoutError) as err:
        client.jobs.wait(job.id, timeout=0.3, poll_interval=0.1,
                         progress=vrft.Progress(job.id, unit="steps", stream=out, interval=0))
    assert err.value.job.status == "queued"
    assert "queued" in out.getvalue() and "0/" in out.getvalue()
    client.jobs.cancel(job.id)
    final = client.jobs.wait(job.id, progress=False)
    assert final.status == "cancelled"
    with pytest.raises(vrft.JobCancelledError):
        client.jobs.wait(job.id, progress=False, raise_on_cancel=True)


def test_dry_run_flag_is_sent(client, training_file):
    job = client.jobs.create(model=TINY_MODEL, training_file=training_file, grader=CLS_GRADER, dry_run=True)
    assert job.dry_run is True
    client.jobs.cancel(job.id)


def test_job_errors_keep_code_and_param(client, training_file):
    with pytest.raises(vrft.UnprocessableEntityError) as err:
        client.jobs.create(model=TINY_MODEL, training_file=training_file, grader=CLS_GRADER,
                           hyperparameters={"warp_factor": 9})
    assert err.value.code == "unknown_field" and "warp_factor" in (err.value.param or "")
    with pytest.raises(vrft.NotFoundError) as err:
        client.jobs.create(model="nope/model", training_file=training_file, grader=CLS_GRADER)
    assert err.value.code == "model_not_found" and err.value.param == "model"
    with pytest.raises(vrft.NotFoundError) as err:
        client.jobs.retrieve("ftjob-doesnotexist")
    assert err.value.code == "job_not_found"
    with pytest.raises(vrft.NotFoundError):  # an unknown job is 404 before anything is written
        client.jobs.download_adapter("ftjob-doesnotexist")


def test_download_adapter_of_unfinished_job_is_conflict(client, training_file, tmp_path):
    job = client.jobs.create(model=TINY_MODEL, training_file=training_file, grader=CLS_GRADER)
    with pytest.raises(vrft.ConflictError) as err:
        client.jobs.download_adapter(job.id, tmp_path / "out")
    assert err.value.code == "invalid_state_transition"
    assert not (tmp_path / "out").exists()  # nothing half-written
    client.jobs.cancel(job.id)


def test_other_project_sees_404(client, other_client, training_file):
    other = vrft.Client(http_client=other_client, max_retries=0)
    with pytest.raises(vrft.NotFoundError):
        other.files.retrieve(training_file.id)


def test_authentication_error(anon_client):
    anon = vrft.Client(http_client=anon_client, max_retries=0)
    with pytest.raises(vrft.AuthenticationError) as err:
        list(anon.models.list())
    assert err.value.status_code == 401 and err.value.code in ("missing_api_key", "invalid_api_key")
    bad = vrft.Client(api_key="vrft-wrong", http_client=anon_client, max_retries=0)
    with pytest.raises(vrft.AuthenticationError) as err:
        bad.files.list()
    assert err.value.code == "invalid_api_key"


# -- graders and models -----------------------------------------------------------------------------
def test_graders_validate_and_run(client):
    normalised = client.graders.validate(CLS_GRADER)
    assert normalised.grader["type"] == "visual_rft" and normalised.grader["task"] == "classification"
    good = client.graders.run(CLS_GRADER, "<think>it is red</think> <answer>red</answer>",
                              {"solution": "<answer>red</answer>"})
    assert isinstance(good, vrft.GraderRunResult) and good.reward == pytest.approx(2.0)
    bad = client.graders.run(CLS_GRADER, "red", {"solution": "<answer>red</answer>"})
    assert bad.reward < good.reward and isinstance(bad.errors, dict)
    with pytest.raises(vrft.UnprocessableEntityError) as err:
        client.graders.validate({"type": "visual_rft", "name": "x", "task": "juggling"})
    assert err.value.code == "invalid_grader" and err.value.param


def test_models_list(client):
    ids = [m.id for m in client.models.list()]
    assert TINY_MODEL in ids
    assert client.models.retrieve(TINY_MODEL).owned_by == "vrft"


# -- async client -----------------------------------------------------------------------------------
def test_async_client_same_surface(app, api_client, dataset_bytes):
    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver",
                                     headers=dict(api_client.headers)) as http:
            client = vrft.AsyncClient(http_client=http, max_retries=0)
            f = await client.files.upload(dataset_bytes, filename="a.jsonl")
            assert f.status == "processed"
            assert (await client.files.content(f.id)) == dataset_bytes
            assert (await client.files.validation(f.id)).rows_valid == 4
            job = await client.jobs.create(model=TINY_MODEL, training_file=f, grader=CLS_GRADER)
            page = await client.jobs.list(limit=1)
            assert page.data[0].id == job.id
            assert job.id in [j.id async for j in client.jobs.list(limit=1)]
            assert (await client.jobs.pause(job.id)).status == "paused"
            assert (await client.jobs.resume(job.id)).status == "queued"
            assert (await client.jobs.cancel(job.id)).status == "cancelled"
            assert (await client.jobs.wait(job.id, progress=False)).status == "cancelled"
            assert [c async for c in client.jobs.checkpoints(job.id)] == []
            result = await client.graders.run(CLS_GRADER, "<think>.</think><answer>red</answer>",
                                              {"solution": "<answer>red</answer>"})
            assert result.reward == pytest.approx(2.0)
            assert TINY_MODEL in [m.id async for m in client.models.list()]
            with pytest.raises(vrft.NotFoundError):
                await client.jobs.retrieve("ftjob-nope")
            await client.close()

    asyncio.run(scenario())


def test_models_allow_new_fields():
    job = vrft.FineTuningJob.model_validate({"id": "ftjob-1", "status": "running", "brand_new": {"x": 1}})
    assert job.brand_new == {"x": 1} and job.to_dict()["brand_new"] == {"x": 1}
    assert json.loads(json.dumps(job.to_dict()))["status"] == "running"


def test_visual_rft_helper_rows_upload(client, tmp_path):
    from vrft import datasets

    rows = [datasets.visual_rft_record(_png(), "What colour?", "<answer>red</answer>")]
    path = datasets.write_jsonl(tmp_path / "one.jsonl", rows * 3)
    assert client.files.upload(path).status == "processed"
    openai_path = datasets.write_jsonl(tmp_path / "oa.jsonl", rows * 3, format="openai")
    uploaded = client.files.upload(openai_path)
    assert uploaded.status == "processed" and uploaded.format and "openai" in uploaded.format
    assert "solution" in client.files.validation(uploaded.id).reference_fields


def _png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (12, 12), (255, 0, 0)).save(buf, format="PNG")
    return buf.getvalue()
