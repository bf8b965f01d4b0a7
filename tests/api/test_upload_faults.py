"""Uploads cut short and storage that hangs: a 4xx/503 naming the problem, and nothing stored —
no row, no object, no temp file. Bodies are built byte by byte so every cut point is exact."""

from __future__ import annotations

import json

import pytest

from tests.factories import jsonl, visual_rft_rows

BOUNDARY = b"vrft-test-boundary-7f3a"


def multipart(content: bytes, filename: bytes = b"train.jsonl", purpose: bytes = b"fine-tune",
              boundary: bytes = BOUNDARY) -> bytes:
    return (
        b"--" + boundary + b"\r\n"
        b'Content-Disposition: form-data; name="purpose"\r\n\r\n' + purpose + b"\r\n"
        b"--" + boundary + b"\r\n"
        b'Content-Disposition: form-data; name="file"; filename="' + filename + b'"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n" + content + b"\r\n"
        b"--" + boundary + b"--\r\n"
    )


HEADERS = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY.decode()}"}


def post_raw(client, body: bytes, **headers):
    return client.post("/v1/files", content=body, headers={**HEADERS, **headers})


def object_keys() -> set[str]:
    from app.storage import get_store

    store = get_store()
    pages = store.client.get_paginator("list_objects_v2").paginate(Bucket=store.bucket)
    return {o["Key"] for page in pages for o in page.get("Contents", [])}


def scratch_files() -> list:
    from app.config import get_settings

    root = get_settings().data_dir / "tmp"
    return [p for p in root.rglob("*") if p.is_file() and p.name != ".lock"] if root.exists() else []


@pytest.fixture
def nothing_left(api_client):
    """Asserts, after the test, that the project has no rows, the bucket no new objects, and the
    scratch folders no temp files."""
    before = object_keys()
    yield
    assert api_client.get("/v1/files").json()["data"] == []
    assert object_keys() - before == set()
    assert scratch_files() == []


ROWS = visual_rft_rows(5)
CONTENT = jsonl(ROWS)
FULL = multipart(CONTENT)
# Where each row of the file ends inside the body: a cut there leaves a *valid* shorter file,
# the case a parser that ignores the closing boundary accepts with fewer rows.
_FILE_AT = FULL.index(CONTENT)
ROW_ENDS = [_FILE_AT + i + 1 for i, b in enumerate(CONTENT) if b == ord("\n")][:-1]


def cuts() -> dict[str, int]:
    closing = FULL.rindex(b"--" + BOUNDARY + b"--")
    return {
        "after row 2": ROW_ENDS[1],
        "after row 4": ROW_ENDS[3],
        "mid row 3": ROW_ENDS[1] + 50,
        "before the closing boundary": closing - 2,
        "after the CRLF before the closing boundary": closing,
        "inside the closing boundary": closing + 10,
        "boundary without its closing dashes": closing + 2 + len(BOUNDARY),
        "in the file part's headers": _FILE_AT - 30,
        "in the purpose field": FULL.index(b"fine-tune") + 4,
    }


@pytest.mark.parametrize("where", list(cuts()))
def test_a_body_cut_short_is_400_and_nothing_is_stored(api_client, nothing_left, where):
    r = post_raw(api_client, FULL[: cuts()[where]])
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "bad_request"
    if where != "in the purpose field":  # that cut ends before a file part exists at all
        assert "incomplete" in err["message"] and "closing boundary" in err["message"], err


def test_the_whole_body_is_stored_with_every_row(api_client):
    r = post_raw(api_client, FULL)
    assert r.status_code == 200, r.text
    assert r.json()["rows"] == 5


def test_a_closing_boundary_without_its_final_crlf_is_complete(api_client):
    # RFC 2046: the CRLF after the close delimiter belongs to the optional epilogue.
    r = post_raw(api_client, FULL[:-2])
    assert r.status_code == 200, r.text
    assert r.json()["rows"] == 5


def test_a_content_length_larger_than_the_body_is_refused(api_client, nothing_left):
    cut = FULL[: ROW_ENDS[2]]
    r = post_raw(api_client, cut, **{"Content-Length": str(len(FULL))})
    assert r.status_code == 400, r.text


def test_hung_storage_is_503_with_retry_after_and_nothing_stored(api_client, monkeypatch):
    from app.config import Settings
    from app.files import router
    from app.storage import S3Store
    from tests.test_storage_faults import HungServer

    server = HungServer()
    try:
        hung = S3Store(Settings(s3_endpoint_url=f"http://127.0.0.1:{server.port}", s3_bucket="vrft-hung",
                                s3_access_key_id="k", s3_secret_access_key="s", s3_connect_timeout_s=0.5,
                                s3_read_timeout_s=0.5, s3_max_attempts=2))
        monkeypatch.setattr(router, "get_store", lambda: hung)
        r = post_raw(api_client, FULL)
    finally:
        server.close()
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "storage_unavailable"
    assert r.headers.get("Retry-After", "").isdigit(), r.headers
    assert api_client.get("/v1/files").json()["data"] == []
    assert scratch_files() == []


def test_storage_failure_after_the_put_leaves_no_object(api_client, monkeypatch):
    """A commit that fails after the object was written (here: the response cannot be recorded)
    deletes the object again."""
    from app.files import router

    before = object_keys()

    def broken(*_args, **_kwargs):
        raise RuntimeError("database went away between the put and the commit")

    monkeypatch.setattr(router, "file_object", broken)
    r = post_raw(api_client, FULL)
    assert r.status_code >= 500
    assert object_keys() - before == set()
    assert api_client.get("/v1/files").json()["data"] == []


def test_report_for_a_cut_row_is_not_the_cut_file(api_client):
    """The same bytes as the cut-at-row-2 body, sent whole and honestly, store two rows: the 400
    above is about the body being cut, not about its contents."""
    content = jsonl(ROWS[:2])
    r = post_raw(api_client, multipart(content))
    assert r.status_code == 200 and r.json()["rows"] == 2
    assert json.loads(api_client.get(f"/v1/files/{r.json()['id']}/content").content.splitlines()[0]) == ROWS[0]


def test_a_form_with_too_many_parts_is_400(api_client, nothing_left):
    field = b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="x%d"\r\n\r\nv\r\n'
    body = b"".join(field.replace(b"%d", str(i).encode()) for i in range(100)) + FULL
    r = post_raw(api_client, body)
    assert r.status_code == 400 and "parts" in r.json()["error"]["message"], r.text
