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

    rows = [json.dumps({"image": data_url(_noise_png()), "problem": "What is this?", "solution": "<answer>noise</answer>"})
            for i in range(280)]
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
