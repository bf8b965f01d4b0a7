import io
import json
import zipfile

import pytest

from tests.factories import jsonl, openai_rft_rows, png_bytes, upload, visual_rft_rows


def test_upload_visual_rft_jsonl_is_processed_inline(api_client):
    r = upload(api_client, jsonl(visual_rft_rows(6)))
    assert r.status_code == 200, r.text
    f = r.json()
    assert f["object"] == "file" and f["id"].startswith("file-") and f["status"] == "processed"
    assert f["purpose"] == "fine-tune" and f["filename"] == "train.jsonl" and f["rows"] == 6
    v = api_client.get(f"/v1/files/{f['id']}/validation").json()
    assert v["rows_valid"] == 6 and v["problems"] == [] and "solution" in v["reference_fields"]
    assert v["format"] == "visual_rft_jsonl"


def test_upload_openai_format_and_content_roundtrip(api_client):
    content = jsonl(openai_rft_rows(3))
    f = upload(api_client, content).json()
    assert f["status"] == "processed" and f["format"] == "openai_rft_jsonl"
    got = api_client.get(f"/v1/files/{f['id']}/content")
    assert got.status_code == 200 and got.content == content


def test_list_retrieve_delete(api_client):
    ids = [upload(api_client, jsonl(visual_rft_rows(2)), filename=f"f{i}.jsonl").json()["id"] for i in range(3)]
    page = api_client.get("/v1/files?limit=2").json()
    assert page["object"] == "list" and [f["id"] for f in page["data"]] == ids[::-1][:2] and page["has_more"]
    rest = api_client.get(f"/v1/files?limit=2&after={page['data'][-1]['id']}").json()
    assert [f["id"] for f in rest["data"]] == [ids[0]] and not rest["has_more"]
    assert api_client.delete(f"/v1/files/{ids[0]}").json() == {"id": ids[0], "object": "file", "deleted": True}
    assert api_client.get(f"/v1/files/{ids[0]}").status_code == 404
    assert api_client.get(f"/v1/files/{ids[0]}/content").status_code == 404


def _assert_invalid(r, code_status=422, line=None, field=None, problem_code=None):
    assert r.status_code == code_status, r.text
    err = r.json()["error"]
    assert err["message"]
    if line is not None:
        assert err["line"] == line and f"line {line}" in err["message"]
    if field is not None:
        assert err["param"] == field
    if problem_code is not None:
        assert err["validation"]["problems"][0]["code"] == problem_code
    return err


def _nothing_stored(client):
    assert client.get("/v1/files").json()["data"] == []


def test_empty_file(api_client):
    err = _assert_invalid(upload(api_client, b""))
    assert "empty" in err["message"]
    _nothing_stored(api_client)


def test_non_utf8_line(api_client):
    content = jsonl(visual_rft_rows(1)) + b"\xff\xfe\xfa not utf8\n"
    _assert_invalid(upload(api_client, content), line=2, problem_code="invalid_utf8")
    _nothing_stored(api_client)


def test_line_not_json(api_client):
    content = jsonl(visual_rft_rows(2)) + b"{not json\n"
    _assert_invalid(upload(api_client, content), line=3, problem_code="invalid_json")


@pytest.mark.parametrize("drop", ["image", "problem"])
def test_missing_visual_rft_field(api_client, drop):
    rows = visual_rft_rows(2)
    del rows[1][drop]
    _assert_invalid(upload(api_client, jsonl(rows)), line=2, field=drop, problem_code="missing_field")


def test_missing_messages(api_client):
    rows = openai_rft_rows(2)
    del rows[0]["messages"]
    err = _assert_invalid(upload(api_client, jsonl(rows)), line=1, problem_code="missing_field")
    assert "messages" in err["message"] or "image" in err["message"]


def test_image_that_is_not_an_image(api_client):
    rows = visual_rft_rows(1)
    rows[0]["image"] = "data:image/png;base64," + __import__("base64").b64encode(b"hello, not an image").decode()
    _assert_invalid(upload(api_client, jsonl(rows)), line=1, field="image")


def test_truncated_png(api_client):
    raw = png_bytes(size=(64, 64))
    rows = visual_rft_rows(1)
    rows[0]["image"] = "data:image/png;base64," + __import__("base64").b64encode(raw[: len(raw) // 2]).decode()
    _assert_invalid(upload(api_client, jsonl(rows)), line=1, field="image")


def test_huge_image_rejected_before_decoding(api_client):
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    buf = io.BytesIO()
    Image.new("1", (30000, 30000)).save(buf, format="PNG")  # ~100 KB on disk, 900 Mpx decoded
    rows = visual_rft_rows(1)
    rows[0]["image"] = "data:image/png;base64," + __import__("base64").b64encode(buf.getvalue()).decode()
    err = _assert_invalid(upload(api_client, jsonl(rows)), line=1, field="image", problem_code="image_too_large")
    assert "30000" in err["message"]


def test_archive_path_escape(api_client):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("train.jsonl", json.dumps({"image": "a.png", "problem": "q", "solution": "<answer>red</answer>"}))
        zf.writestr("a.png", png_bytes())
        zf.writestr("../../etc/passwd", b"root:x:0:0")
    err = _assert_invalid(upload(api_client, buf.getvalue(), filename="data.zip"), problem_code="path_escapes_archive")
    assert "../../etc/passwd" in err["message"]
    _nothing_stored(api_client)


def test_zip_bomb(api_client):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("train.jsonl", json.dumps({"image": "a.png", "problem": "q", "solution": "<answer>x</answer>"}))
        zf.writestr("a.png", png_bytes())
        with zf.open("bomb.bin", "w") as fh:
            block = b"\0" * (1 << 20)
            for _ in range(64):
                fh.write(block)
    _assert_invalid(upload(api_client, buf.getvalue(), filename="data.zip"), problem_code="archive_bomb")
    _nothing_stored(api_client)


def test_over_size_limit_is_413_and_nothing_stored(api_client, monkeypatch):
    from app.config import get_settings

    monkeypatch.setattr(get_settings(), "max_upload_bytes", 1000)
    r = upload(api_client, jsonl(visual_rft_rows(4)))
    assert r.status_code == 413 and r.json()["error"]["code"] == "file_too_large"
    _nothing_stored(api_client)
    leftovers = list((get_settings().data_dir / "tmp").rglob("upload-*"))
    assert leftovers == []


def test_unknown_purpose(api_client):
    r = upload(api_client, jsonl(visual_rft_rows(1)), purpose="batch")
    assert r.status_code == 400 and r.json()["error"]["param"] == "purpose"
    _nothing_stored(api_client)


def test_not_multipart_is_400(api_client):
    r = api_client.post("/v1/files", content=b"hello", headers={"Content-Type": "text/plain"})
    assert r.status_code == 400


def test_idempotent_upload_returns_first_file(api_client):
    content = jsonl(visual_rft_rows(2))
    a = upload(api_client, content, headers={"Idempotency-Key": "k1"}).json()
    b = upload(api_client, content, headers={"Idempotency-Key": "k1"}).json()
    assert a["id"] == b["id"] and len(api_client.get("/v1/files").json()["data"]) == 1
    c = upload(api_client, jsonl(visual_rft_rows(3)), headers={"Idempotency-Key": "k1"})
    assert c.status_code == 409


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_number_is_422_naming_line_and_field(api_client, token):
    good = json.dumps(visual_rft_rows(1)[0])
    bad = good[:-1] + f', "score": {token}}}'
    err = _assert_invalid(upload(api_client, (good + "\n" + bad + "\n").encode()), line=2, field="score",
                          problem_code="invalid_number")
    assert token in err["message"]
    _nothing_stored(api_client)


def test_duplicate_key_is_422_naming_line_and_field(api_client):
    good = json.dumps(visual_rft_rows(1)[0])
    bad = good[:-1] + ', "solution": "<answer>other</answer>"}'
    _assert_invalid(upload(api_client, (bad + "\n").encode()), line=1, field="solution", problem_code="duplicate_key")
    _nothing_stored(api_client)


def test_image_the_processor_refuses_is_422_naming_the_line(api_client):
    rows = visual_rft_rows(3)
    rows[2] = visual_rft_rows(1, size=(1, 300))[0]
    err = _assert_invalid(upload(api_client, jsonl(rows)), line=3, field="image", problem_code="image_aspect_ratio")
    assert "1×300" in err["message"]
    _nothing_stored(api_client)
    assert upload(api_client, jsonl(visual_rft_rows(3, size=(4, 400)))).status_code == 200  # ratio 100 is fine


def test_lone_surrogate_key_is_422_not_a_stored_file_that_cannot_render(api_client):
    # Stored, its key reached reference_fields and GET /validation could not encode it (a 500).
    good = json.dumps(visual_rft_rows(1)[0])
    r = upload(api_client, (good[:-1] + ', "\\ud800": 1}\n').encode())
    err = _assert_invalid(r, line=1, problem_code="invalid_utf8")
    assert err["param"] == "\\ud800"
    _nothing_stored(api_client)
