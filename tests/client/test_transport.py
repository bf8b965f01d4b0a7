"""Retries, idempotency keys, redirects, configuration and parsing — against real local HTTP servers."""

from __future__ import annotations

import asyncio
import io
import json
import tarfile
import time

import httpx
import pytest

import vrft
from tests.client.httpstub import Reply, StubServer
from vrft._base import normalise_base_url, parse_retry_after
from vrft._multipart import MultipartUpload
from vrft.resources._shared import parse_sse, safe_extract

JOB = {"id": "ftjob-1", "object": "fine_tuning.job", "status": "queued", "model": "m"}


def fast(client: vrft.Client) -> vrft.Client:
    client.sleep = lambda s: None  # type: ignore[method-assign]  # keep the test quick; delays are checked apart
    return client


def test_base_url_forms_and_env(monkeypatch):
    for raw in ("http://h:8000", "http://h:8000/", "http://h:8000/v1", "http://h:8000/v1/", "h:8000"):
        assert normalise_base_url(raw) == "http://h:8000"
    monkeypatch.setenv("VRFT_BASE_URL", "http://envhost:9/v1")
    monkeypatch.setenv("VRFT_API_KEY", "vrft-env")
    client = vrft.Client()
    assert client.base_url == "http://envhost:9" and client.api_key == "vrft-env"
    assert client.url("/v1/files") == "http://envhost:9/v1/files"
    assert client.headers()["Authorization"] == "Bearer vrft-env"
    monkeypatch.delenv("VRFT_BASE_URL")
    assert vrft.Client().base_url == "http://127.0.0.1:8000"


def test_retry_after_parsing():
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({}) is None
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 < parse_retry_after({"retry-after": date}) <= 31
    assert vrft.Client.backoff(0, httpx.Response(503, headers={"retry-after": "2"})) == 2.0
    delays = [vrft.Client.backoff(a) for a in range(6)]
    assert 0.375 <= delays[0] <= 0.5 and delays[-1] <= 8.0 and delays[3] > delays[1]


def test_post_retried_on_503_with_one_idempotency_key():
    calls = []

    def handler(seen):
        calls.append(seen)
        if len(calls) <= 2:
            return Reply(503, json.dumps({"error": {"message": "down", "type": "x", "param": None,
                                                    "code": "dependency_unavailable"}}).encode(),
                         {"Content-Type": "application/json", "Retry-After": "0"})
        return Reply(200, json.dumps(JOB).encode())

    with StubServer(handler) as server:
        client = fast(vrft.Client(api_key="k", base_url=server.url, max_retries=2))
        job = client.jobs.create(model="m", training_file="file-1", grader={"type": "x"})
    assert job.id == "ftjob-1" and len(calls) == 3
    keys = {c.headers["idempotency-key"] for c in calls}
    assert len(keys) == 1 and len(keys.pop()) == 36
    assert all(c.headers["authorization"] == "Bearer k" for c in calls)
    assert json.loads(calls[0].body) == json.loads(calls[2].body)


def test_gives_up_after_max_retries_and_keeps_the_error():
    with StubServer(lambda s: Reply(503, b'{"error": {"message": "busy", "code": "storage_unavailable"}}')) as server:
        client = fast(vrft.Client(api_key="k", base_url=server.url, max_retries=1))
        with pytest.raises(vrft.InternalServerError) as err:
            client.jobs.retrieve("ftjob-1")
        assert len(server.requests) == 2
    assert err.value.status_code == 503 and err.value.code == "storage_unavailable"


def test_4xx_are_not_retried_but_429_is():
    statuses = iter([429, 200])
    with StubServer(lambda s: Reply(next(statuses), json.dumps(JOB).encode())) as server:
        assert fast(vrft.Client(api_key="k", base_url=server.url)).jobs.retrieve("ftjob-1").status == "queued"
    with StubServer(lambda s: Reply(409, b'{"error": {"message": "no", "code": "invalid_state_transition",'
                                         b' "param": "status"}}')) as server:
        with pytest.raises(vrft.ConflictError) as err:
            fast(vrft.Client(api_key="k", base_url=server.url)).jobs.cancel("ftjob-1")
        assert len(server.requests) == 1
    assert err.value.param == "status"


def test_uploads_are_re_streamed_on_retry(tmp_path):
    data = b'{"a": 1}\n' * 1000
    path = tmp_path / "d.jsonl"
    path.write_bytes(data)
    bodies = []

    def handler(seen):
        bodies.append(seen.body)
        if len(bodies) == 1:
            return Reply(502, b"bad gateway", {"Content-Type": "text/plain"})
        return Reply(200, json.dumps({"id": "file-1", "object": "file", "bytes": len(data)}).encode())

    with StubServer(handler) as server:
        f = fast(vrft.Client(api_key="k", base_url=server.url)).files.upload(path)
    assert f.id == "file-1" and len(bodies) == 2 and bodies[0] == bodies[1]
    assert data in bodies[1] and b'name="purpose"' in bodies[1] and b'filename="d.jsonl"' in bodies[1]
    assert server.requests[0].headers["content-length"] == str(len(bodies[0]))


def test_connection_errors_become_api_connection_error():
    with StubServer(lambda s: None) as server:  # every connection is dropped
        client = fast(vrft.Client(api_key="k", base_url=server.url, max_retries=2))
        with pytest.raises(vrft.APIConnectionError):
            client.models.list()
        assert len(server.requests) == 3

    def slow(seen):
        time.sleep(1.0)
        return Reply(200, b'{"object": "list", "data": [], "has_more": false}')

    with StubServer(slow) as server:
        client = fast(vrft.Client(api_key="k", base_url=server.url, timeout=0.2, max_retries=1))
        with pytest.raises(vrft.APITimeoutError):
            client.files.list()
        assert len(server.requests) == 2


def test_async_client_retries_like_the_sync_one():
    """The async driver runs the same plan: 503 with Retry-After is waited out with the same key, a
    dropped connection is retried, and the last error keeps the server's code."""
    calls = []

    def handler(seen):
        calls.append(seen)
        if len(calls) == 1:
            return Reply(503, b'{"error": {"message": "down", "code": "dependency_unavailable"}}',
                         {"Content-Type": "application/json", "Retry-After": "1.5"})
        if len(calls) == 2:
            return None  # connection dropped
        return Reply(200, json.dumps(JOB).encode())

    async def scenario(url):
        sleeps = []
        client = vrft.AsyncClient(api_key="k", base_url=url, max_retries=2)

        async def record(seconds):
            sleeps.append(seconds)

        client.sleep = record  # type: ignore[method-assign]
        try:
            job = await client.jobs.create(model="m", training_file="file-1", grader={"type": "x"})
        finally:
            await client.close()
        return job, sleeps

    with StubServer(handler) as server:
        job, sleeps = asyncio.run(scenario(server.url))
    assert job.id == "ftjob-1" and len(calls) == 3
    assert len({c.headers["idempotency-key"] for c in calls}) == 1
    assert sleeps[0] == 1.5 and 0.75 <= sleeps[1] <= 1.0  # Retry-After, then jittered backoff for attempt 1

    async def give_up(url):
        client = vrft.AsyncClient(api_key="k", base_url=url, max_retries=1)
        client.sleep = lambda s: asyncio.sleep(0)  # type: ignore[method-assign]
        try:
            await client.jobs.retrieve("ftjob-1")
        finally:
            await client.close()

    with StubServer(lambda s: Reply(503, b'{"error": {"message": "busy", "code": "storage_unavailable"}}')) as server:
        with pytest.raises(vrft.InternalServerError) as err:
            asyncio.run(give_up(server.url))
        assert len(server.requests) == 2
    assert err.value.code == "storage_unavailable" and err.value.body["error"]["message"] == "busy"


def test_status_error_classes():
    cases = {400: vrft.BadRequestError, 401: vrft.AuthenticationError, 404: vrft.NotFoundError,
             409: vrft.ConflictError, 413: vrft.PayloadTooLargeError, 422: vrft.UnprocessableEntityError,
             429: vrft.RateLimitError, 500: vrft.InternalServerError, 503: vrft.InternalServerError}

    def handler(seen):  # /v1/files/file-<status>
        status = int(seen.path.rsplit("-", 1)[1])
        body = {"error": {"message": "m", "type": "t", "param": "p", "code": f"c{status}"}}
        return Reply(status, json.dumps(body).encode(), {"Content-Type": "application/json", "X-Request-ID": "req-9"})

    with StubServer(handler) as server:
        client = vrft.Client(api_key="k", base_url=server.url, max_retries=0)
        for status, cls in cases.items():
            with pytest.raises(cls) as err:
                client.files.retrieve(f"file-{status}")
            exc = err.value
            assert isinstance(exc, vrft.APIStatusError) and isinstance(exc, vrft.VrftError)
            assert (exc.status_code, exc.code, exc.param, exc.message, exc.request_id) == (
                status, f"c{status}", "p", "m", "req-9")
            assert exc.body["error"]["code"] == f"c{status}"


def _tar_bytes() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in {"adapter_config.json": b'{"r": 4}', "adapter_model.safetensors": b"\0" * 64}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_adapter_redirect_drops_authorization_for_the_other_host(tmp_path):
    blob = _tar_bytes()
    with StubServer(lambda s: Reply(200, blob, {"Content-Type": "application/x-tar",
                                                "Content-Disposition": 'attachment; filename="j-adapter.tar"'})) as s3:
        def api(seen):
            return Reply(307, b"", {"Location": f"{s3.url}/bucket/key?X-Amz-Signature=abc"})

        with StubServer(api) as server:
            client = vrft.Client(api_key="secret-key", base_url=server.url)
            out = client.jobs.download_adapter("ftjob-1", tmp_path)
            folder = client.jobs.download_adapter("ftjob-1", tmp_path / "unpacked", extract=True,
                                                  checkpoint="ftckpt-3")
        assert server.requests[0].headers["authorization"] == "Bearer secret-key"
        assert server.requests[1].path == "/v1/fine_tuning/jobs/ftjob-1/checkpoints/ftckpt-3/adapter"
        assert all("authorization" not in r.headers for r in s3.requests)
        assert s3.requests[0].path == "/bucket/key?X-Amz-Signature=abc"
    assert out == tmp_path / "j-adapter.tar" and out.read_bytes() == blob
    assert (folder / "adapter_config.json").read_text() == '{"r": 4}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["j-adapter.tar", "unpacked"]


def test_async_adapter_download_follows_the_redirect_and_retries_the_storage_host(tmp_path):
    """The async download: a 503 from the storage host is retried (the shared retry plan), the
    redirect target never sees our key, and a body cut short leaves no partial file behind."""
    blob = _tar_bytes()
    s3_calls = []

    def s3_handler(seen):
        s3_calls.append(seen)
        if len(s3_calls) == 1:
            return Reply(503, b"slow down", {"Content-Type": "text/plain"})
        return Reply(200, blob, {"Content-Type": "application/x-tar",
                                 "Content-Disposition": 'attachment; filename="j-adapter.tar"'})

    async def download(url, dest, **kw):
        client = vrft.AsyncClient(api_key="secret-key", base_url=url)
        client.sleep = lambda s: asyncio.sleep(0)  # type: ignore[method-assign]
        try:
            return await client.jobs.download_adapter("ftjob-1", dest, **kw)
        finally:
            await client.close()

    with StubServer(s3_handler) as s3:
        with StubServer(lambda s: Reply(307, b"", {"Location": f"{s3.url}/bucket/key"})) as server:
            folder = asyncio.run(download(server.url, tmp_path / "unpacked", extract=True))
        assert len(s3_calls) == 2 and all("authorization" not in r.headers for r in s3.requests)
    assert (folder / "adapter_config.json").read_text() == '{"r": 4}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["unpacked"]  # the temporary .tar is gone

    # a body shorter than its Content-Length: the download fails and leaves nothing half-written
    short = Reply(200, blob, {"Content-Type": "application/x-tar"}, cut_after=100)
    with StubServer(lambda s: short) as server:
        with pytest.raises(httpx.HTTPError):
            asyncio.run(download(server.url, tmp_path / "cut.tar"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["unpacked"]


def test_event_stream_reconnects_then_gives_up_naming_the_job():
    """A stream that keeps dropping mid-body is reconnected with backoff, MAX_STREAM_RECONNECTS
    times in a row, then reported; an event received in between resets the count."""
    from vrft.resources.jobs import MAX_STREAM_RECONNECTS

    event = b'event: message\ndata: {"id": "ftevent-1", "object": "fine_tuning.job.event", ' \
            b'"created_at": 1, "level": "info", "message": "step 1", "type": "message"}\n\n'
    sse = {"Content-Type": "text/event-stream"}
    calls = []

    def handler(seen):
        calls.append(seen)
        if len(calls) == 2:  # one good connection: an event, then the drop
            return Reply(200, event + b"data: cut", sse, cut_after=len(event) + 3)
        return Reply(200, b"data: partial", sse, cut_after=4)

    sleeps = []
    with StubServer(handler) as server:
        client = vrft.Client(api_key="k", base_url=server.url, max_retries=0)
        client.sleep = sleeps.append  # type: ignore[method-assign]
        got = []
        with pytest.raises(vrft.APIConnectionError, match="ftjob-1 kept dropping"):
            for ev in client.jobs.events("ftjob-1", follow=True):
                got.append(ev.id)
    assert got == ["ftevent-1"]
    assert len(calls) == 2 + MAX_STREAM_RECONNECTS  # a drop, the good one, then drops until the budget is spent
    assert len(sleeps) == 1 + MAX_STREAM_RECONNECTS
    assert sleeps[1] < sleeps[0] * 1.34 and sleeps[-1] > sleeps[1]  # reset after the event, then backing off


def test_safe_extract_refuses_escaping_members(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("../evil.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    archive = tmp_path / "bad.tar"
    archive.write_bytes(buf.getvalue())
    with pytest.raises(ValueError, match="escapes"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()


def test_wait_honours_poll_hint_and_raises_job_failed():
    states = iter(["queued", "running", "failed"])
    sleeps = []

    def handler(seen):
        status = next(states)
        body = {**JOB, "status": status, "progress": {"step": 2, "total_steps": 10}, "latest_reward": 0.5}
        if status == "failed":
            body["error"] = {"code": "out_of_memory", "message": "CUDA OOM", "param": None}
        return Reply(200, json.dumps(body).encode(), {"Content-Type": "application/json", "X-Poll-After-Ms": "1234"})

    with StubServer(handler) as server:
        client = vrft.Client(api_key="k", base_url=server.url)
        client.sleep = sleeps.append  # type: ignore[method-assign]
        out = io.StringIO()
        with pytest.raises(vrft.JobFailedError) as err:
            client.jobs.wait("ftjob-1", progress=vrft.Progress("ftjob-1", unit="steps", stream=out, interval=0))
    assert sleeps == [1.234, 1.234]
    assert err.value.code == "out_of_memory" and err.value.message == "CUDA OOM"
    assert "2/10" in out.getvalue() and "reward 0.500" in out.getvalue()


def test_multipart_body_parses_as_form_data(tmp_path):
    from python_multipart.multipart import MultipartParser

    upload = MultipartUpload(b"x" * 3_000_000, fields={"purpose": "fine-tune"}, filename='we"ird.jsonl')
    chunks = list(upload.iter_body())
    assert max(len(c) for c in chunks) <= 1024 * 1024  # never the whole file in one piece
    body = b"".join(chunks)
    assert len(body) == upload.content_length
    parts, current = {}, {}

    def on_header_value(data, start, end):
        current["h"] = current.get("h", b"") + data[start:end]

    def on_part_data(data, start, end):
        current["d"] = current.get("d", b"") + data[start:end]

    def on_part_end():
        parts[current.get("h", b"")] = current.get("d", b"")
        current.clear()

    parser = MultipartParser(upload.boundary.encode(), {"on_header_value": on_header_value,
                                                        "on_part_data": on_part_data, "on_part_end": on_part_end})
    parser.write(body)
    parser.finalize()
    values = list(parts.values())
    assert values[0] == b"fine-tune" and values[1] == b"x" * 3_000_000
    assert any(b'filename="we%22ird.jsonl"' in h for h in parts)


def test_sse_parser():
    text = ("id: ftevent-1\nevent: message\ndata: {\"id\": \"ftevent-1\"}\n\n"
            ": comment\n\nevent: done\ndata: {}\n\n")
    assert list(parse_sse(text.splitlines(keepends=True))) == [
        ("message", '{"id": "ftevent-1"}', "ftevent-1"), ("done", "{}", None)]
