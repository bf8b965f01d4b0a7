"""The playground in a real browser against the real server, its embedded job worker and its inference
process: a detection job trained here on the tiny model, one of its validation rows asked of the base
and the tuned model side by side, both answers scored by the job's own grader, the boxes the grader
read drawn on the image; then an uploaded image.

The random tiny model's answers do not parse as boxes, so what is drawn is the reference's boxes (and
a prediction's, should an answer ever parse: the count is the grader's either way); drawing predicted
boxes in another style is covered by the rollout-browser test in test_dashboard.py.
"""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from tests.dashboard.conftest import DESKTOP, PHONE, job_body
from tests.dashboard.test_dashboard import JOB_TIMEOUT_MS, _assert_no_horizontal_overflow
from tests.factories import png_bytes
from tests.workers.conftest import wait_status

pytestmark = pytest.mark.slow
ANSWER_TIMEOUT_MS = 120_000
# The detection preset draws boxes; a random model never earns it, so its groups would have no spread
# and the adapter would stay the base. Fuzzy match against the solution gives every answer a slightly
# different reward, so a few steps at a high learning rate move the tuned answers off the base's.
GRADER = {"type": "multi", "name": "pg", "calculate_output": "det + sim", "graders": {
    "det": {"type": "visual_rft", "name": "det", "task": "detection"},
    "sim": {"type": "text_similarity", "name": "sim", "input": "{{sample.output_text}}",
            "reference": "{{item.solution}}", "evaluation_metric": "fuzzy_match"}}}


def _jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


@pytest.fixture(scope="module")
def detection_job(api) -> dict:
    from demo.synthetic import shapes_detection

    train = api.upload(_jsonl(shapes_detection(2, seed=5)), filename="shapes-train.jsonl")
    val = api.upload(_jsonl(shapes_detection(2, seed=6)), filename="shapes-valid.jsonl")
    assert train["status"] == val["status"] == "processed", (train, val)
    body = job_body(train["id"], max_steps=3, group_size=4, checkpoint_interval=1, learning_rate=5e-3,
                    lora={"r": 16, "alpha": 32, "dropout": 0.0})
    body.update(validation_file=val["id"], suffix="pg", seed=0)  # the same adapter every run
    body["method"]["reinforcement"]["grader"] = GRADER
    created = api.http.post("/v1/fine_tuning/jobs", json=body)
    assert created.status_code == 200, created.text
    job = wait_status(api.http, created.json()["id"], ("succeeded", "failed", "cancelled"),
                      timeout=JOB_TIMEOUT_MS / 1000)
    assert job["status"] == "succeeded", job.get("error")
    return job


def _chat(api, model: str, question: str, image: str, max_tokens: int) -> str:
    """What the page must show for this model: the same greedy request, made here."""
    content = [{"type": "image_url", "image_url": {"url": image}}, {"type": "text", "text": question}]
    r = api.http.post("/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": content}],
                                                   "max_tokens": max_tokens, "temperature": 0})
    assert r.status_code == 200, r.text
    return r.json()["choices"][0]["message"]["content"]


def _shown(text: str) -> str:
    return "(empty answer)" if text == "" else text


def test_playground_asks_base_and_tuned_on_a_validation_row(api, detection_job, open_tab, output_dir):
    job = detection_job
    tab = open_tab(DESKTOP)
    page = tab.page
    tab.sign_in(api.key)
    page.get_by_role("link", name="Playground").click()
    expect(page.locator("#pg-title")).to_have_text("Playground")
    expect(page.locator(f'#pg-job option[value="{job["id"]}"]')).to_have_count(1)
    page.locator("#pg-job").select_option(job["id"])
    expect(page).to_have_url(f"{tab.base_url}/#/playground/{job['id']}")
    # the final model, then every checkpoint's
    checkpoints = api.http.get(f"/v1/fine_tuning/jobs/{job['id']}/checkpoints").json()["data"]
    assert checkpoints
    expect(page.locator("#pg-model option")).to_have_count(1 + len(checkpoints))
    expect(page.locator("#pg-model")).to_have_value(job["fine_tuned_model"])

    # the validation file's rows; pick one whose reference has boxes
    expect(page.locator("#pg-source-info")).to_contain_text(f"validation file {job['validation_file']}")
    val_rows = [json.loads(line) for line in
                api.http.get(f"/v1/files/{job['validation_file']}/content").text.splitlines() if line.strip()]
    expect(page.locator("#pg-row option")).to_have_count(1 + len(val_rows))
    index = next(i for i, r in enumerate(val_rows) if "Position" in r["solution"])
    row = val_rows[index]
    n_reference = row["solution"].count("Position")
    page.locator("#pg-row").select_option(str(index))
    expect(page.locator("#pg-question")).to_have_value(row["problem"])
    item = json.loads(page.locator("#pg-item").input_value())
    assert item["solution"] == row["solution"] and "image" not in item
    img = page.locator("img[data-pg-image]")
    expect(img).to_be_visible()
    assert img.evaluate("i => i.complete && i.naturalWidth") == 112

    page.locator("#pg-max-tokens").fill("16")
    page.get_by_role("button", name="Ask both models").click()
    expect(page.locator("#pg-status")).to_have_text("Done.", timeout=ANSWER_TIMEOUT_MS)

    models = {"base": job["model"], "tuned": job["fine_tuned_model"]}
    texts = {kind: _chat(api, model, row["problem"], row["image"], 16) for kind, model in models.items()}
    assert texts["base"] != texts["tuned"], texts  # else a page that asked one model twice would pass
    for kind, model in models.items():
        card = page.locator(f'[data-answer="{kind}"]')
        expect(card).to_be_visible()
        expect(card).to_contain_text(model)
        # exactly what the API answers to the same greedy request (the page adds nothing, drops nothing)
        text = texts[kind]
        expect(card.locator('[data-field="answer"]')).to_have_text(_shown(text))
        # scored by the job's grader (as the job stored it, coords included), as graders/run scores it
        run = api.http.post("/v1/fine_tuning/alpha/graders/run", json={
            "grader": job["method"]["reinforcement"]["grader"], "model_sample": text, "item": item,
            "image_size": [112, 112]})
        assert run.status_code == 200, run.text
        score = run.json()
        assert float(card.locator('[data-field="reward"]').get_attribute("data-value")) == score["reward"]
        for flag, on in score["metadata"]["errors"].items():
            if on is True:
                expect(card.locator(f'[data-flag="{flag}"]')).to_be_visible()
        predicted = score["metadata"]["boxes"]["prediction"] or []
        expect(page.locator(f'svg.box-overlay rect[data-box="{kind}"]')).to_have_count(len(predicted))
    # side by side on a desktop
    base_box = page.locator('[data-answer="base"]').bounding_box()
    tuned_box = page.locator('[data-answer="tuned"]').bounding_box()
    assert abs(base_box["y"] - tuned_box["y"]) < 2 and tuned_box["x"] >= base_box["x"] + base_box["width"]

    # the reference boxes the grader read, drawn on the image, with a legend
    expect(page.locator('svg.box-overlay rect[data-box="reference"]')).to_have_count(n_reference)
    expect(page.locator(".box-legend")).to_contain_text("reference")
    page.screenshot(path=str(output_dir / "dashboard-playground-1280.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.wait_for_timeout(300)
    page.screenshot(path=str(output_dir / "dashboard-playground-390.png"), full_page=True)
    _assert_no_horizontal_overflow(page)
    tab.assert_no_errors()


def test_playground_uploaded_image_and_a_checkpoint(api, detection_job, open_tab, tmp_path):
    job = detection_job
    tab = open_tab(DESKTOP)
    page = tab.page
    tab.sign_in(api.key)
    page.goto(f"{tab.base_url}/#/playground/{job['id']}")
    expect(page.locator("#pg-job")).to_have_value(job["id"])
    checkpoint = min(api.http.get(f"/v1/fine_tuning/jobs/{job['id']}/checkpoints").json()["data"],
                     key=lambda c: c["step_number"])["fine_tuned_model_checkpoint"]
    expect(page.locator(f'#pg-model option[value="{checkpoint}"]')).to_have_count(1)
    page.locator("#pg-model").select_option(checkpoint)

    image = tmp_path / "red.png"
    image.write_bytes(png_bytes((200, 30, 30)))
    page.locator("#pg-image").set_input_files(str(image))
    expect(page.locator("#pg-status")).to_contain_text("Using red.png")
    expect(page.locator("img[data-pg-image]")).to_be_visible()
    page.locator("#pg-question").fill("What colour is this?")
    page.locator("#pg-item").fill("")
    page.locator("#pg-max-tokens").fill("6")
    page.get_by_role("button", name="Ask both models").click()
    expect(page.locator("#pg-status")).to_have_text("Done.", timeout=ANSWER_TIMEOUT_MS)

    data_url = page.locator("img[data-pg-image]").get_attribute("src")
    for kind, model in (("base", job["model"]), ("tuned", checkpoint)):
        card = page.locator(f'[data-answer="{kind}"]')
        expect(card).to_contain_text(model)
        expect(card.locator('[data-field="answer"]')).to_have_text(_shown(_chat(api, model, "What colour is this?",
                                                                                   data_url, 6)))
        expect(card).to_contain_text("Not scored")  # no reference fields: nothing to grade against
    expect(page.locator("svg.box-overlay")).to_have_count(0)

    # a bad max_tokens never leaves the browser
    page.locator("#pg-max-tokens").fill("lots")
    page.get_by_role("button", name="Ask both models").click()
    expect(page.locator("#pg-status")).to_have_text('max_tokens: "lots" is not a whole number ≥ 1')
    tab.assert_no_errors()
