"""Browser fixtures for the dashboard tests: Debian's Chromium driven by Playwright (sync API) against
the real ``live_server`` (uvicorn + embedded worker)."""

from __future__ import annotations

import base64
import io
import json
import shutil
import uuid

import httpx
import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
COLOURS = {"red": (220, 30, 30), "green": (30, 180, 60), "blue": (30, 60, 220), "yellow": (230, 210, 30)}


def png_data_url(rgb) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 32), rgb).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def colour_jsonl() -> bytes:
    rows = [{"image": png_data_url(rgb), "problem": "What colour is this image? Answer in <answer></answer>.",
             "solution": f"<answer>{name}</answer>"} for name, rgb in COLOURS.items()]
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


GRADER = {"type": "visual_rft", "name": "visual_rft", "task": "classification"}


def job_body(file_id: str, **hp) -> dict:
    hyper = {"max_steps": 3, "batch_size": 2, "group_size": 2, "max_completion_tokens": 8, "checkpoint_interval": 2}
    hyper.update(hp)
    return {"model": "vrft/tiny-qwen2-vl", "training_file": file_id, "suffix": "dash",
            "method": {"type": "reinforcement", "reinforcement": {"grader": GRADER, "hyperparameters": hyper}}}


class Api:
    def __init__(self, base_url: str, key: str):
        self.key = key
        self.http = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60)

    def upload(self, content: bytes, filename: str = "colours.jsonl") -> dict:
        r = self.http.post("/v1/files", files={"file": (filename, content, "application/jsonl")},
                           data={"purpose": "fine-tune"})
        assert r.status_code == 200, r.text
        return r.json()

    def create_job(self, file_id: str, **hp) -> dict:
        r = self.http.post("/v1/fine_tuning/jobs", json=job_body(file_id, **hp))
        assert r.status_code == 200, r.text
        return r.json()

    def job(self, job_id: str) -> dict:
        return self.http.get(f"/v1/fine_tuning/jobs/{job_id}").json()

    def metrics(self, job_id: str) -> list[dict]:
        r = self.http.get(f"/v1/fine_tuning/jobs/{job_id}/events", params={"type": "metrics", "limit": 1000})
        assert r.status_code == 200, r.text
        return [e["data"] for e in r.json()["data"]]

    def cancel_quietly(self, job_id: str) -> None:
        self.http.post(f"/v1/fine_tuning/jobs/{job_id}/cancel")


@pytest.fixture(scope="session")
def chromium_browser():
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (never `playwright install`)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def api(live_server) -> Api:
    client = Api(live_server.base_url, live_server.create_key(f"dash-{uuid.uuid4().hex[:6]}"))
    yield client
    client.http.close()


@pytest.fixture(scope="module")
def training_file(api) -> dict:
    f = api.upload(colour_jsonl())
    assert f["status"] == "processed", f
    return f


class Tab:
    """A page plus the console errors and page errors it produced."""

    def __init__(self, page, base_url: str):
        self.page = page
        self.base_url = base_url
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))

    def sign_in(self, key: str) -> None:
        from playwright.sync_api import expect

        self.page.goto(self.base_url + "/")
        self.page.get_by_label("API key").fill(key)
        self.page.get_by_role("button", name="Sign in").click()
        expect(self.page.locator("#nav")).to_be_visible()

    def assert_no_errors(self, allowed: tuple[str, ...] = ()) -> None:
        bad = [e for e in self.errors if not any(a in e for a in allowed)]
        assert not bad, "console/page errors:\n" + "\n".join(bad)


@pytest.fixture
def open_tab(chromium_browser, live_server):
    contexts = []

    def make(viewport=DESKTOP) -> Tab:
        ctx = chromium_browser.new_context(viewport=viewport, accept_downloads=True)
        contexts.append(ctx)
        return Tab(ctx.new_page(), live_server.base_url)

    yield make
    for ctx in contexts:
        ctx.close()
