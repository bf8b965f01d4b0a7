"""The dashboard in a real browser against a real server and its embedded worker.

Order matters a little: the real training job runs first so that the long (200-step) jobs created for the
cancel/pause tests do not hold the embedded worker while it waits.
"""

from __future__ import annotations

import json
import math
import re

import pytest
from playwright.sync_api import expect

from tests.dashboard.conftest import DESKTOP, PHONE, colour_jsonl, job_body

JOB_TIMEOUT_MS = 180_000
pytestmark = pytest.mark.slow


def _metric_steps(metrics: list[dict]) -> set[int]:
    return {int(d["step"]) for d in metrics if d and not d.get("eval") and d.get("step") is not None}


def _assert_no_horizontal_overflow(page) -> None:
    wide = page.evaluate("""() => {
        const w = window.innerWidth;
        if (document.documentElement.scrollWidth <= w + 1) return [];
        return [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > w + 1)
            .slice(0, 8).map(e => {
                const right = Math.round(e.getBoundingClientRect().right);
                return `${e.tagName.toLowerCase()}#${e.id}.${e.className} right=${right}`;
            });
    }""")
    assert not wide, f"horizontal overflow at {page.viewport_size['width']} px: {wide}"


def test_real_job_runs_to_success_live(api, training_file, open_tab, output_dir):
    tab = open_tab(DESKTOP)
    page = tab.page
    tab.sign_in(api.key)
    page.evaluate("window.__noReload = 'still here'")
    # the job is created after the page loaded: it must appear by polling, not by a reload
    job = api.create_job(training_file["id"])
    row = page.locator(f'tr[data-job-id="{job["id"]}"]')
    expect(row).to_be_visible(timeout=15_000)
    expect(row).to_contain_text("vrft/tiny-qwen2-vl")  # alone while running, "→ ft:…" once done
    expect(row.get_by_role("progressbar")).to_be_visible()

    expect(row).to_have_attribute("data-status", re.compile(r"^(succeeded|failed|cancelled)$"), timeout=JOB_TIMEOUT_MS)
    final = api.job(job["id"])
    assert final["status"] == "succeeded", f"the job did not succeed: {final['status']} {final['error']}"
    expect(row.locator(".badge")).to_contain_text("succeeded")
    assert page.evaluate("window.__noReload") == "still here", "the page reloaded"
    assert row.locator("[data-field=latest_reward]").inner_text() != "—"

    row.get_by_role("link", name=job["id"]).click()
    expect(page.locator('[data-job-status="succeeded"]')).to_be_visible(timeout=15_000)
    # devices asked for (resources.gpus) and the world size its steps ran with
    expect(page.locator("[data-field=devices]")).to_have_text("1 (world size 1)", timeout=15_000)

    # one chart point per logged metrics step
    metrics = api.metrics(job["id"])
    steps = _metric_steps(metrics)
    assert steps, "the job logged no metrics events"
    points = page.locator('[data-chart="reward"] circle[data-series="reward_mean"][data-step]')
    expect(points).to_have_count(len(steps), timeout=15_000)
    drawn = {int(s) for s in points.evaluate_all("els => els.map(e => e.dataset.step)")}
    assert drawn == steps
    for chart, key in (("kl", "kl"), ("loss", "loss"), ("completion_length", "completion_length_mean")):
        logged = {int(d["step"]) for d in metrics
                  if not d.get("eval") and isinstance(d.get(key), (int, float)) and math.isfinite(d[key])}
        expect(page.locator(f'[data-chart="{chart}"] circle[data-step]')).to_have_count(len(logged))
    expect(page.locator('[data-chart="reward"] [data-band="reward_mean"]')).to_have_count(1)

    # rollout browser: an image and completions with rewards
    rollout = page.locator("#job-rollouts article.rollout").first
    expect(rollout).to_be_visible(timeout=15_000)
    img = rollout.locator("img[data-rollout-image]")
    expect(img).to_be_visible()
    assert img.evaluate("i => i.complete && i.naturalWidth > 0"), "the rollout thumbnail did not load"
    expect(rollout.locator(".question")).to_contain_text("What colour")
    completions = rollout.locator("li.completion")
    assert completions.count() >= 2  # group_size
    expect(completions.first.locator("[data-field=reward] strong")).to_have_text(re.compile(r"^-?\d"))
    expect(completions.first.locator("[data-field=advantage]")).to_be_visible()

    # checkpoints with downloads, the events log, hyperparameters and grader
    expect(page.locator("#job-checkpoints tr[data-checkpoint]").first).to_be_visible()
    expect(page.locator("#job-events .events-log li").first).to_be_visible()
    expect(page.locator("#job-hyperparameters")).to_contain_text("max_steps")
    expect(page.locator("#job-grader")).to_contain_text("visual_rft")
    for name in ("Cancel job", "Pause", "Resume"):
        expect(page.get_by_role("button", name=name)).to_be_disabled()
    with page.expect_download(timeout=30_000) as dl:
        page.get_by_role("button", name="Download final adapter").click()
    assert dl.value.suggested_filename.endswith(".tar")

    page.screenshot(path=str(output_dir / "dashboard-job-1280.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.wait_for_timeout(300)
    page.screenshot(path=str(output_dir / "dashboard-job-390.png"), full_page=True)
    _assert_no_horizontal_overflow(page)
    page.goto(tab.base_url + "/#/jobs")
    expect(page.locator(f'tr[data-job-id="{job["id"]}"]')).to_be_visible()
    page.screenshot(path=str(output_dir / "dashboard-jobs-390.png"), full_page=True)
    page.set_viewport_size(DESKTOP)
    page.wait_for_timeout(300)
    page.screenshot(path=str(output_dir / "dashboard-jobs-1280.png"), full_page=True)
    tab.assert_no_errors()


def test_bad_key_shows_clear_message(open_tab, live_server, output_dir):
    tab = open_tab(DESKTOP)
    page = tab.page
    page.goto(live_server.base_url + "/")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signin-error")).to_have_text("Enter an API key to sign in.")
    page.get_by_label("API key").fill("vrft-not-a-real-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("That API key was not accepted (401 invalid_api_key)")
    expect(page.locator("#nav")).to_be_hidden()
    assert page.evaluate("sessionStorage.length") == 0
    page.screenshot(path=str(output_dir / "dashboard-signin-bad-key-1280.png"))
    # the browser logs the rejected request itself; nothing else may be logged
    tab.assert_no_errors(allowed=("status of 401",))


def _big_invalid_jsonl() -> bytes:
    """Over the 16 MiB inline limit, so it is stored and validated in the background (→ status error)."""
    good = colour_jsonl().splitlines()[0] + b"\n"
    bad = json.dumps({"problem": "x" * 1000, "solution": "<answer>red</answer>"}).encode() + b"\n"
    return good + bad * (17 * 1024 * 1024 // len(bad) + 1)


def test_files_page_lists_files_and_validation_report(api, training_file, open_tab, output_dir, tmp_path):
    bad_file = api.upload(_big_invalid_jsonl(), filename="broken-big.jsonl")
    small_bad = tmp_path / "broken-small.jsonl"
    small_bad.write_bytes(colour_jsonl().splitlines()[0] + b"\nthis is not json\n" + b'{"problem": "no image"}\n')
    for viewport, name in ((DESKTOP, "1280"), (PHONE, "390")):
        tab = open_tab(viewport)
        page = tab.page
        tab.sign_in(api.key)
        page.get_by_role("link", name="Files").click()
        good_row = page.locator(f'tr[data-file-id="{training_file["id"]}"]')
        expect(good_row).to_contain_text("colours.jsonl")
        expect(good_row.locator(".badge")).to_contain_text("processed")
        good_row.get_by_role("button", name="Show report").click()
        expect(page.locator(f'#report-{training_file["id"]}')).to_contain_text("No problems found")

        # background validation: uploaded → error, with the report's problems (line, field, message)
        bad_row = page.locator(f'tr[data-file-id="{bad_file["id"]}"]')
        expect(bad_row).to_contain_text("broken-big.jsonl")
        expect(bad_row).to_have_attribute("data-status", "error", timeout=120_000)
        expect(bad_row.locator(".badge")).to_contain_text("error")
        bad_row.get_by_role("button", name="Show report").click()
        report = page.locator(f'#report-{bad_file["id"]}')
        expect(report).to_be_visible()
        validation = api.http.get(f"/v1/files/{bad_file['id']}/validation").json()
        assert validation["status"] == "error" and validation["problems"], validation
        problems = report.locator("tr.problem")
        expect(problems).to_have_count(len(validation["problems"]))
        first = validation["problems"][0]
        expect(problems.first).to_contain_text(str(first["line"]))
        expect(problems.first).to_contain_text(first["message"])
        expect(problems.first).to_contain_text(first["field"])

        # a small invalid file is refused at upload; the form shows why, row by row
        page.get_by_label("Upload a dataset").set_input_files(str(small_bad))
        page.get_by_role("button", name="Upload", exact=True).click()
        expect(page.get_by_role("status").filter(has_text="Upload failed")).to_contain_text("422 dataset_invalid")
        upload_problems = page.locator("#upload-report tr.problem")
        expect(upload_problems).to_have_count(3)
        expect(upload_problems.nth(0)).to_contain_text("not JSON")
        expect(upload_problems.nth(1)).to_contain_text("image")
        page.screenshot(path=str(output_dir / f"dashboard-files-{name}.png"), full_page=True)
        _assert_no_horizontal_overflow(page)
        tab.assert_no_errors(allowed=("status of 422",))


def test_cancel_from_the_job_page(api, training_file, open_tab, output_dir):
    job = api.create_job(training_file["id"], max_steps=20_000)  # still running when the page cancels it
    try:
        tab = open_tab(DESKTOP)
        page = tab.page
        tab.sign_in(api.key)
        row = page.locator(f'tr[data-job-id="{job["id"]}"]')
        expect(row).to_be_visible(timeout=15_000)
        row.get_by_role("link", name=job["id"]).click()
        expect(page.locator("#job-title")).to_have_text(job["id"])
        expect(page.get_by_role("button", name="Resume")).to_be_disabled()
        cancel = page.get_by_role("button", name="Cancel job")
        expect(cancel).to_be_enabled()

        # dismissing the dialog keeps the job
        cancel.click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_be_visible()
        expect(dialog).to_contain_text(job["id"])
        dialog.get_by_role("button", name="Keep it").click()
        expect(dialog).to_be_hidden()
        assert api.job(job["id"])["status"] not in ("cancelled",)

        cancel.click()
        page.get_by_role("dialog").get_by_role("button", name="Yes, cancel job").click()
        expect(page.locator('[data-job-status="cancelled"]')).to_be_visible(timeout=30_000)
        assert api.job(job["id"])["status"] == "cancelled"
        for name in ("Cancel job", "Pause", "Resume"):
            expect(page.get_by_role("button", name=name)).to_be_disabled()
        expect(page.locator("#job-events")).to_contain_text("cancelled")
        page.screenshot(path=str(output_dir / "dashboard-job-cancelled-1280.png"), full_page=True)
        tab.assert_no_errors()
    finally:
        api.cancel_quietly(job["id"])


def test_pause_and_resume_from_the_job_page(api, training_file, open_tab):
    job = api.create_job(training_file["id"], max_steps=20_000)  # long enough to pause and resume
    try:
        tab = open_tab(PHONE)
        page = tab.page
        tab.sign_in(api.key)
        page.goto(f"{tab.base_url}/#/jobs/{job['id']}")
        expect(page.locator("#job-title")).to_have_text(job["id"])
        page.get_by_role("button", name="Pause").click()
        page.get_by_role("dialog").get_by_role("button", name="Pause job").click()
        # queued → paused at once; running → paused after the worker writes a checkpoint
        expect(page.locator('[data-job-status="paused"]')).to_be_visible(timeout=JOB_TIMEOUT_MS)
        expect(page.get_by_role("button", name="Pause")).to_be_disabled()
        page.get_by_role("button", name="Resume").click()
        page.get_by_role("dialog").get_by_role("button", name="Resume job").click()
        expect(page.locator('[data-job-status="paused"]')).to_be_hidden(timeout=30_000)
        assert api.job(job["id"])["status"] in ("queued", "running", "succeeded")
        tab.assert_no_errors()
    finally:
        api.cancel_quietly(job["id"])


def test_unknown_job_and_no_console_errors_on_empty_project(live_server, open_tab):
    key = live_server.create_key()
    tab = open_tab(PHONE)
    page = tab.page
    tab.sign_in(key)
    expect(page.get_by_text("No fine-tuning jobs in this project yet.", exact=False)).to_be_visible()
    page.goto(f"{live_server.base_url}/#/jobs/ftjob-doesnotexist")
    expect(page.get_by_role("alert")).to_contain_text("Job not found")
    tab.assert_no_errors(allowed=("status of 404",))


def _detection_rollout(image: str) -> dict:
    flags_ok = {"sample_parse_error": False, "missing_answer": False}
    return {"object": "fine_tuning.job.rollout", "step": 7, "prompt_id": "line-9", "prompt": "Detect every red square.",
            "image": image, "image_size": [32, 32], "reference": {"solution": "<answer>[[0,0,500,500]]</answer>"},
            "gt_boxes": [[0.0, 0.0, 0.5, 0.5]],
            "completions": [
                {"text": "<answer>[[10,10,480,520]]</answer>", "reward": 1.7, "rewards": {"iou": 0.9, "format": 0.8},
                 "advantage": 0.71, "flags": flags_ok, "boxes": [[0.01, 0.01, 0.48, 0.52]]},
                {"text": "<answer>[[oops</answer>", "reward": 0.0, "rewards": {"iou": 0.0, "format": 0.0},
                 "advantage": -0.71, "flags": {"sample_parse_error": True, "missing_answer": False}, "boxes": None},
            ]}


def test_rollout_boxes_and_error_panel_rendering(api, training_file, open_tab, output_dir):
    """Rendering of what a classification job on the tiny model cannot produce (detection boxes, a failed
    job's error) — the browser's view of two API responses is stubbed with page.route; nothing is written
    to the database."""
    from tests.dashboard.conftest import png_data_url

    job = api.create_job(training_file["id"], max_steps=20_000)
    api.http.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel")
    failed = {**api.job(job["id"]), "status": "failed",
              "error": {"code": "grader_error", "message": "The grader failed on line 3",
                        "param": "method.reinforcement.grader"}}
    rollouts = {"object": "list", "has_more": False, "data": [_detection_rollout(png_data_url((200, 30, 30)))]}
    for viewport, name in ((DESKTOP, "1280"), (PHONE, "390")):
        tab = open_tab(viewport)
        page = tab.page
        tab.sign_in(api.key)
        page.route(f"**/v1/fine_tuning/jobs/{job['id']}", lambda route: route.fulfill(json=failed))
        page.route(f"**/v1/fine_tuning/jobs/{job['id']}/rollouts*", lambda route: route.fulfill(json=rollouts))
        page.goto(f"{tab.base_url}/#/jobs/{job['id']}")
        panel = page.locator("#job-error")
        expect(panel).to_be_visible()
        expect(panel.locator("[data-field=error-code]")).to_have_text("grader_error")
        expect(panel).to_contain_text("The grader failed on line 3")
        card = page.locator('article.rollout[data-prompt-id="line-9"]')
        expect(card).to_be_visible()
        gt, pred = card.locator('rect[data-box="gt"]'), card.locator('rect[data-box="pred"]')
        expect(gt).to_have_count(1)
        expect(pred).to_have_count(1)
        assert gt.get_attribute("stroke") != pred.get_attribute("stroke")
        assert gt.get_attribute("stroke-dasharray") is None and pred.get_attribute("stroke-dasharray")
        expect(card.locator(".box-legend")).to_contain_text("ground truth")
        expect(card.locator(".box-legend")).to_contain_text("predicted")
        comps = card.locator("li.completion")
        expect(comps).to_have_count(2)
        expect(comps.nth(0).locator(".tag-error")).to_have_count(0)
        expect(comps.nth(1).locator(".tag-error")).to_contain_text("parse error")
        expect(comps.nth(0).locator('[data-grader="iou"]')).to_contain_text("0.9")
        expect(comps.nth(0).locator("[data-field=advantage]")).to_contain_text("+0.71")
        card.scroll_into_view_if_needed()
        page.screenshot(path=str(output_dir / f"dashboard-rollout-boxes-{name}.png"), full_page=True)
        _assert_no_horizontal_overflow(page)
        tab.assert_no_errors()


def test_real_detection_job_draws_ground_truth_boxes(api, open_tab):
    """A real `visual_rft` detection job: the rollout browser draws the reference boxes of each prompt
    (the random tiny model's answers rarely parse as boxes; predicted-box drawing is covered above)."""
    from demo.synthetic import shapes_detection

    rows = [r for r in shapes_detection(4, seed=3) if "No Objects" not in r["solution"]]
    f = api.upload(("\n".join(json.dumps(r) for r in rows) + "\n").encode(), filename="shapes.jsonl")
    assert f["status"] == "processed", f
    body = job_body(f["id"], max_steps=1)
    body["method"]["reinforcement"]["grader"] = {"type": "visual_rft", "name": "det", "task": "detection"}
    job = api.http.post("/v1/fine_tuning/jobs", json=body).json()
    tab = open_tab(DESKTOP)
    page = tab.page
    tab.sign_in(api.key)
    page.goto(f"{tab.base_url}/#/jobs/{job['id']}")
    expect(page.locator('[data-job-status="succeeded"]')).to_be_visible(timeout=JOB_TIMEOUT_MS)
    cards = page.locator("#job-rollouts article.rollout")
    expect(cards.first).to_be_visible(timeout=15_000)
    rollouts = api.http.get(f"/v1/fine_tuning/jobs/{job['id']}/rollouts").json()["data"]
    expected = sum(len(r["gt_boxes"] or []) for r in rollouts)
    assert expected >= 1
    expect(page.locator('#job-rollouts rect[data-box="gt"]')).to_have_count(expected)
    expect(cards.first.locator(".box-legend")).to_contain_text("ground truth")
    tab.assert_no_errors()
