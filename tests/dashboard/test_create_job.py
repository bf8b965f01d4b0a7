"""The create-job page in a real browser against the real server: files, model, live grader
validation (the server's 422 message and field), hyperparameters and what "auto" resolved to, a real
dry run and its report, then launching the job and landing on its page."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.dashboard.conftest import DESKTOP, PHONE, colour_jsonl
from tests.dashboard.test_dashboard import _assert_no_horizontal_overflow

pytestmark = pytest.mark.slow
DRY_RUN_TIMEOUT_MS = 180_000


@pytest.fixture(scope="module")
def validation_file(api) -> dict:
    f = api.upload(colour_jsonl(), filename="colours-valid.jsonl")
    assert f["status"] == "processed", f
    return f


def _fill_form(page, training_file, validation_file):
    page.get_by_role("link", name="New job").click()
    expect(page.locator("#create-title")).to_have_text("New fine-tuning job")
    expect(page.locator(f'#create-training-file option[value="{training_file["id"]}"]')).to_have_count(1)
    page.locator("#create-training-file").select_option(training_file["id"])
    page.locator("#create-validation-file").select_option(validation_file["id"])
    expect(page.locator('#create-model option[value="vrft/tiny-qwen2-vl"]')).to_have_count(1)
    page.locator("#create-model").select_option("vrft/tiny-qwen2-vl")
    page.get_by_label("Suffix").fill("fromui")
    page.get_by_label("Seed").fill("7")
    for name, value in (("max_steps", "2"), ("batch_size", "2"), ("group_size", "2"), ("max_completion_tokens", "8")):
        page.locator(f'input[data-hp="{name}"]').fill(value)


def test_grader_json_is_validated_live_with_the_servers_message(api, training_file, validation_file, open_tab):
    tab = open_tab(DESKTOP)
    page = tab.page
    tab.sign_in(api.key)
    _fill_form(page, training_file, validation_file)
    feedback = page.locator("#create-grader-feedback")
    expect(feedback.locator('[data-grader-state="valid"]')).to_contain_text("Valid visual_rft grader")

    bad = '{"type": "visual_rft", "name": "visual_rft", "task": "segmentation"}'
    expected = api.http.post("/v1/fine_tuning/alpha/graders/validate", json={"grader": {
        "type": "visual_rft", "name": "visual_rft", "task": "segmentation"}})
    assert expected.status_code == 422, expected.text
    err = expected.json()["error"]
    page.locator("#create-grader-json").fill(bad)
    expect(page.locator("#create-grader-preset")).to_have_value("custom")
    invalid = feedback.locator('[data-grader-state="invalid"]')
    expect(invalid).to_contain_text(err["message"])
    expect(invalid).to_contain_text("422")
    if err.get("param"):
        expect(invalid.locator('[data-field="param"]')).to_have_text(err["param"])
    expect(page.locator("#create-grader-json")).to_have_attribute("aria-invalid", "true")

    page.locator("#create-grader-json").fill("{not json")
    expect(invalid).to_contain_text("Not JSON")

    page.locator("#create-grader-preset").select_option("detection")
    expect(feedback.locator('[data-grader-state="valid"]')).to_be_visible()
    assert '"detection"' in page.locator("#create-grader-json").input_value()

    # a bad hyperparameter is refused by the server, and the page names it
    page.locator("#create-grader-preset").select_option("classification")
    page.locator('input[data-hp="beta"]').fill("-1")
    page.get_by_role("button", name="Launch job").click()
    expect(page.locator("#create-error")).to_contain_text("beta")
    expect(page.locator("#create-error")).to_contain_text("422")
    # and a non-number never leaves the browser
    page.locator('input[data-hp="beta"]').fill("lots")
    page.get_by_role("button", name="Launch job").click()
    expect(page.locator("#create-error")).to_have_text('beta: "lots" is not a number')
    tab.assert_no_errors(allowed=("status of 422",))


def test_dry_run_report_then_launch_lands_on_the_job(api, training_file, validation_file, open_tab, output_dir):
    tab = open_tab(DESKTOP)
    page = tab.page
    tab.sign_in(api.key)
    _fill_form(page, training_file, validation_file)
    expect(page.locator("#create-grader-feedback [data-grader-state=valid]")).to_be_visible()
    page.get_by_label("Rows to sample").fill("2")
    page.get_by_role("button", name="Dry run").click()

    report = page.locator("#create-dry-report .dry-report")
    expect(report).to_be_visible(timeout=DRY_RUN_TIMEOUT_MS)
    dry_id = report.get_attribute("data-dry-run")
    dry = api.job(dry_id)
    assert dry["dry_run"] and dry["status"] == "succeeded", dry
    assert dry["dry_run_samples"] == 2 and dry["validation_file"] == validation_file["id"]
    r = dry["dry_run_report"]
    expect(report.locator("[data-field=summary]")).to_have_text(r["summary"])
    expect(report.locator("svg.histogram rect[data-bin]")).to_have_count(len(r["reward_histogram"]["counts"]))
    drawn = report.locator("svg.histogram rect[data-bin]").evaluate_all("els => els.map(e => Number(e.dataset.count))")
    assert drawn == r["reward_histogram"]["counts"]
    zero_variance = f"{r['zero_variance_group_fraction'] * 100:.0f} %"
    expect(report.locator("[data-field=zero_variance]")).to_have_text(zero_variance)
    expect(report.locator("[data-field=seconds_per_step]")).not_to_have_text("—")
    expect(report.locator("[data-field=estimate]")).not_to_have_text("—")
    for flag in r["flag_rates"]:
        expect(report.locator(f'tr[data-flag="{flag}"]')).to_have_count(1)

    # what "auto" resolved to, next to what was typed
    res = dry["resolved_hyperparameters"]
    assert res["max_steps"] == 2 and res["batch_size"] == 2
    n_epochs = page.locator('[data-resolved="n_epochs"]')
    expect(n_epochs).to_contain_text(str(res["n_epochs"]))
    expect(n_epochs).to_contain_text("(auto)")
    expect(page.locator('[data-resolved="max_steps"]')).to_have_text("2")
    expect(page.locator('[data-resolved="lora.r"]')).to_have_text(str(res["lora"]["r"]))
    page.screenshot(path=str(output_dir / "dashboard-create-1280.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.wait_for_timeout(300)
    page.screenshot(path=str(output_dir / "dashboard-create-390.png"), full_page=True)
    _assert_no_horizontal_overflow(page)
    page.set_viewport_size(DESKTOP)

    page.get_by_role("button", name="Launch job").click()
    expect(page).to_have_url(re.compile(r"#/jobs/ftjob-"), timeout=15_000)
    job_id = page.locator("#job-title").inner_text(timeout=15_000)
    try:
        job = api.job(job_id)
        assert not job["dry_run"] and job["training_file"] == training_file["id"]
        assert job["validation_file"] == validation_file["id"] and job["user_provided_suffix"] == "fromui"
        assert job["seed"] == 7
        hp = job["method"]["reinforcement"]["hyperparameters"]
        typed = {"max_steps": 2, "batch_size": 2, "group_size": 2, "max_completion_tokens": 8}
        assert {k: hp[k] for k in typed} == typed and hp["n_epochs"] == "auto", hp  # untyped fields stay auto
        assert job["method"]["reinforcement"]["grader"]["task"] == "classification"
        expect(page.locator("#job-hyperparameters")).to_contain_text("max_steps")
        tab.assert_no_errors()
    finally:
        api.cancel_quietly(job_id)
