"""Uploads above VRFT_INLINE_VALIDATION_BYTES are stored first and validated in the background."""

from __future__ import annotations

import os
import time

import httpx

from tests.factories import data_url


def _noise_png() -> bytes:
    import io

    from PIL import Image

    img = Image.frombytes("RGB", (128, 128), os.urandom(128 * 128 * 3))  # incompressible: ~49 KB
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_large_upload_validates_in_the_background(live_server):
    import json

    rows = [json.dumps({"image": data_url(_noise_png()), "problem": "What is this?",
                        "solution": "<answer>noise</answer>"}) for _ in range(280)]
    content = ("\n".join(rows) + "\n").encode()
    assert len(content) > 16 * 1024 * 1024  # over the inline limit
    key = live_server.create_key()
    client = httpx.Client(base_url=live_server.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
    r = client.post("/v1/files", files={"file": ("big.jsonl", content)}, data={"purpose": "fine-tune"})
    assert r.status_code == 200, r.text
    f = r.json()
    assert f["status"] == "uploaded" and f["bytes"] == len(content)
    deadline = time.time() + 120
    while f["status"] == "uploaded" and time.time() < deadline:
        time.sleep(0.5)
        f = client.get(f"/v1/files/{f['id']}").json()
    assert f["status"] == "processed", f
    report = client.get(f"/v1/files/{f['id']}/validation").json()
    assert report["rows_valid"] == 280 and report["problems"] == []
    assert client.get(f"/v1/files/{f['id']}/content").content == content


def test_validation_interrupted_by_a_restart_is_resumed(database, s3_server, tmp_path):
    """A row left 'uploaded' (the server stopped mid-validation) is validated again from storage."""
    import sqlalchemy as sa

    from app.auth.service import create_key
    from app.config import get_settings
    from app.db import now, session_scope
    from app.files.models import File
    from app.files.service import resume_pending_validations, storage_key
    from app.ids import new_id
    from app.storage import get_store
    from tests.factories import jsonl, visual_rft_rows

    store = get_store()
    content = jsonl(visual_rft_rows(3))
    (tmp_path / "data").write_bytes(content)
    with session_scope() as session:
        project, _ = create_key(session, project_name=f"restart-{new_id('p')}")
        ok = File(id=new_id("file"), project_id=project.id, filename="t.jsonl", purpose="fine-tune",
                  bytes=len(content), sha256="x", status="uploaded", created_at=now() - 3600, storage_key="")
        gone = File(id=new_id("file"), project_id=project.id, filename="u.jsonl", purpose="fine-tune",
                    bytes=1, sha256="y", status="uploaded", created_at=now() - 3600, storage_key="")
        ok.storage_key, gone.storage_key = storage_key(project.id, ok.id), storage_key(project.id, gone.id)
        session.add_all([ok, gone])
    store.put_file(ok.storage_key, tmp_path / "data")

    resumed = resume_pending_validations(get_settings(), store)
    assert ok.id in resumed and gone.id not in resumed
    deadline = time.time() + 30
    while time.time() < deadline:
        with session_scope() as session:
            statuses = dict(session.execute(sa.select(File.id, File.status).where(File.id.in_([ok.id, gone.id]))).all())
        if statuses[ok.id] != "uploaded":
            break
        time.sleep(0.2)
    assert statuses == {ok.id: "processed", gone.id: "error"}


def test_background_report_quoting_nul_and_surrogates_is_stored(database, s3_server, tmp_path):
    """A problem message quotes the user's own text (a role, a key); with a NUL or a lone surrogate
    in it, the report and status_details must still be writable to Postgres, or the file would stay
    'uploaded' forever."""
    import json

    import sqlalchemy as sa

    from app.auth.service import create_key
    from app.config import get_settings
    from app.db import session_scope
    from app.files.models import File
    from app.files.service import storage_key, validate_in_background
    from app.ids import new_id

    row = {"messages": [{"role": "\x00evil", "content": [
        {"type": "image_url", "image_url": {"url": data_url(_noise_png())}}]}], "\ud800\x00": 1}
    path = tmp_path / "t.jsonl"
    path.write_bytes(json.dumps(row).encode() + b"\n")
    with session_scope() as session:
        project, _ = create_key(session, project_name=f"nul-{new_id('p')}")
        f = File(id=new_id("file"), project_id=project.id, filename="t.jsonl", purpose="fine-tune",
                 bytes=path.stat().st_size, sha256="x", status="uploaded", storage_key="")
        f.storage_key = storage_key(project.id, f.id)
        session.add(f)
    validate_in_background(f.id, "t.jsonl", path, get_settings()).join(timeout=30)
    with session_scope() as session:
        status, details, report = session.execute(
            sa.select(File.status, File.status_details, File.report).where(File.id == f.id)).one()
    assert status == "error"
    details.encode("utf-8")  # no lone surrogate left
    assert "\x00" not in details and "\\ud800\\x00" in details  # the key, quoted as escapes
    messages = [p["message"] for p in report["problems"]]
    assert any("\\x00evil" in m for m in messages)  # the role, quoted as escapes
    assert all("\x00" not in m and m.encode("utf-8") for m in messages)
