"""The last-resort rule's one exception: a real dependency outage answers 503 with Retry-After.

A real server process talks to Postgres (or S3) through a TCP proxy the test then stops — the port
refuses, exactly as a stopped database or object store does. Nothing in the app is replaced.
"""

from __future__ import annotations

import httpx
import pytest

from tests import services
from tests.conftest import SESSION_TAG, start_live_server, stop_live_server
from tests.factories import job_body, jsonl, upload, visual_rft_rows
from tests.proxy import TcpProxy


def _assert_503(r: httpx.Response, code: str) -> None:
    assert r.status_code == 503, r.text
    assert int(r.headers["Retry-After"]) > 0
    err = r.json()["error"]
    assert err["code"] == code and err["type"] == "service_unavailable" and err["message"]


@pytest.fixture
def db_proxy_server(database, s3_server):
    """A server whose database connections all go through a proxy the test can cut."""
    from urllib.parse import urlsplit, urlunsplit

    tag = "dbdown"
    real = urlsplit(services.pg_url(f"vrft_live_{tag}_{SESSION_TAG}"))  # the database start_live_server makes
    proxy = TcpProxy(real.port or 5432, host=real.hostname or "127.0.0.1")
    proxied = urlunsplit(real._replace(netloc=real.netloc.replace(f":{real.port}", f":{proxy.port}")))
    server = start_live_server(tag, extra_env={"VRFT_DATABASE_URL": proxied}, worker=False)
    yield server, proxy
    proxy.stop()
    stop_live_server(server)


def test_database_down_answers_503_with_retry_after(db_proxy_server):
    server, proxy = db_proxy_server
    key = server.create_key()
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        file_id = upload(client, jsonl(visual_rft_rows(4))).json()["id"]
        job_id = client.post("/v1/fine_tuning/jobs", json=job_body(file_id)).json()["id"]
        assert client.get("/v1/files").status_code == 200
        proxy.stop()
        _assert_503(client.get("/v1/files"), "dependency_unavailable")
        _assert_503(client.get(f"/v1/files/{file_id}"), "dependency_unavailable")
        _assert_503(client.post("/v1/fine_tuning/jobs", json=job_body(file_id)), "dependency_unavailable")
        _assert_503(client.post(f"/v1/fine_tuning/jobs/{job_id}/cancel"), "dependency_unavailable")
        # the polling hot path: a job this process has not cached must come from the database
        _assert_503(client.get("/v1/fine_tuning/jobs/ftjob-notcachedanywhere"), "dependency_unavailable")
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.headers["Retry-After"]
        assert ready.json()["checks"]["database"].startswith("unavailable")
    assert "request.unhandled_error" not in server.log(), "an outage is not a bug: no 500 logged"


@pytest.fixture
def s3_proxy_server(database, s3_server):
    proxy = TcpProxy(services.S3_PORT)
    server = start_live_server("s3down", worker=False, extra_env={
        "VRFT_S3_ENDPOINT_URL": f"http://127.0.0.1:{proxy.port}", "VRFT_S3_MAX_ATTEMPTS": "1",
        "VRFT_S3_CONNECT_TIMEOUT_S": "2", "VRFT_S3_READ_TIMEOUT_S": "5"})
    yield server, proxy
    proxy.stop()
    stop_live_server(server)


def test_storage_down_answers_503_with_retry_after(s3_proxy_server):
    server, proxy = s3_proxy_server
    key = server.create_key()
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
        file_id = upload(client, jsonl(visual_rft_rows(4))).json()["id"]
        assert client.get(f"/v1/files/{file_id}/content").status_code == 200
        proxy.stop()
        _assert_503(upload(client, jsonl(visual_rft_rows(4))), "storage_unavailable")
        _assert_503(client.get(f"/v1/files/{file_id}/content"), "storage_unavailable")
        # what needs only the database still works
        assert client.get(f"/v1/files/{file_id}").status_code == 200
        listed = client.get("/v1/files").json()["data"]
        assert [f["id"] for f in listed] == [file_id], "the refused upload left no row behind"
    assert "request.unhandled_error" not in server.log()
