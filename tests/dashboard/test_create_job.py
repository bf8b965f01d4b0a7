"""The create-job page in a real browser against the real server: files, model, live grader
validation (the server's 422 message and field), hyperparameters and what "auto" resolved to, a real
dry run and its report, then launching the job and landing on its page; and a supervised job from
the page (its own form and file checks), whose fine-tuned model the page then offers to start from."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.dashboard.conftest import DESKTOP, PHONE, colour_jsonl
from tests.dashboard.test_dashboard import JOB_TIMEOUT_MS, _assert_no_horizontal_overflow
from tests.factories import chat_rows, jsonl
from tests.workers.conftest import wait_status

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


def test_supervised_job_from_the_page_then_its_model_is_offered(api, training_file, open_tab, output_dir):
    """Supervised: GRPO knobs hidden and unsent, the supervised auto rules, no dry run, an optional grader
    on the validation file, files labelled with the methods they suit (a reinforcement-only pick is
    warned of, naming the line the server names); the job trains and its model is then offered."""
    chat = api.upload(jsonl(chat_rows(4)), filename="colours-chat.jsonl")
    chat_valid = api.upload(jsonl(chat_rows(3)), filename="colours-chat-valid.jsonl")
    # the same chats ending with the user's turn: a prompt to answer, nothing to imitate
    prompt_rows = [{**r, "messages": r["messages"][:1]} for r in chat_rows(3)]
    prompts = api.upload(jsonl(prompt_rows), filename="colours-prompts.jsonl")
    assert chat["methods"] == chat_valid["methods"] == ["supervised"], chat
    assert prompts["methods"] == ["reinforcement"], prompts
    unsuited = api.http.get(f"/v1/files/{prompts['id']}/validation").json()["unsuited"]["supervised"]
    tab = open_tab(DESKTOP)
    page = tab.page
    tab.sign_in(api.key)
    page.get_by_role("link", name="New job").click()
    expect(page.locator(f'#create-training-file option[value="{chat["id"]}"]')).to_contain_text("supervised")
    expect(page.locator("#create-method-reinforcement")).to_be_checked()
    expect(page.locator('input[data-hp="group_size"]')).to_be_visible()
    expect(page.get_by_role("button", name="Dry run")).to_be_enabled()
    page.locator("#create-training-file").select_option(chat["id"])  # a chat to imitate, for a reinforcement job
    expect(page.locator('#create-training-suits [data-unsuited="reinforcement"]')).to_contain_text("suits supervised")
    page.locator('input[data-hp="group_size"]').fill("2")  # typed, then hidden: sending it would be a 422

    page.get_by_role("radio", name=re.compile("^Supervised")).check()
    for name in ("group_size", "temperature", "beta"):
        expect(page.locator(f'input[data-hp="{name}"]')).to_be_hidden()
    expect(page.get_by_role("button", name="Dry run")).to_be_disabled()
    expect(page.locator("#create-dry-note")).to_contain_text("No dry run for a supervised job")
    expect(page.locator('[data-resolved="learning_rate"]')).to_have_text("1e-4 × multiplier")
    expect(page.locator('[data-resolved="n_epochs"]')).to_contain_text("100–25,000")

    # a reinforcement-only file picked for a supervised job: warned of, with the server's line and field
    expect(page.locator("#create-training-suits [data-unsuited]")).to_have_count(0)
    page.locator("#create-training-file").select_option(prompts["id"])
    warning = page.locator('#create-training-suits [data-unsuited="supervised"]')
    expect(warning).to_contain_text("does not suit a supervised job")
    expect(warning).to_contain_text(unsuited["message"])
    assert f"line {unsuited['line']}" in unsuited["message"], unsuited
    page.locator("#create-training-file").select_option(chat["id"])
    expect(warning).to_have_count(0)

    # the grader is optional: it needs a validation file, and is sent only when ticked
    grader_on = page.locator("#create-grader-enabled")
    expect(grader_on).to_be_disabled()
    expect(page.locator("#create-grader-json")).to_be_hidden()
    page.locator("#create-grader").screenshot(path=str(output_dir / "dashboard-create-sft-grader-off-1280.png"))
    page.locator("#create-validation-file").select_option(chat_valid["id"])
    expect(grader_on).to_be_enabled()
    grader_on.check()
    expect(page.locator("#create-grader-feedback [data-grader-state=valid]")).to_be_visible()
    page.locator("#create-model").select_option("vrft/tiny-qwen2-vl")
    page.get_by_label("Suffix").fill("sftui")
    for name, value in (("max_steps", "2"), ("batch_size", "2"), ("max_completion_tokens", "8")):
        page.locator(f'input[data-hp="{name}"]').fill(value)
    # the server's plan for the form as it stands: exact resolved values, and its refusal before launch
    plan = page.locator("#create-plan")
    expect(plan).to_contain_text("The server accepts this job: 2 supervised steps")
    expect(page.locator('[data-resolved="learning_rate"]')).to_contain_text("(auto)")
    expected = api.http.post("/v1/fine_tuning/jobs/validate", json={
        "model": "vrft/tiny-qwen2-vl", "training_file": chat["id"], "method": {"type": "supervised", "supervised": {
            "hyperparameters": {"max_steps": 2, "batch_size": 2, "max_completion_tokens": 8}}}}).json()
    expect(page.locator('[data-resolved="n_epochs"]')).to_contain_text(str(expected["resolved_hyperparameters"]["n_epochs"]))
    page.locator("#create-training-file").select_option(prompts["id"])  # the warning in the captures
    expect(plan).to_contain_text("would refuse")
    expect(plan).to_contain_text("field training_file")
    page.screenshot(path=str(output_dir / "dashboard-create-sft-1280.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.wait_for_timeout(300)
    page.screenshot(path=str(output_dir / "dashboard-create-sft-390.png"), full_page=True)
    _assert_no_horizontal_overflow(page)
    page.set_viewport_size(DESKTOP)

    # launching the unsuited file: the server's 422 is shown; then the chat file trains
    page.get_by_role("button", name="Launch job").click()
    expect(page.locator("#create-error")).to_contain_text("file_unsuited_for_method")
    page.locator("#create-training-file").select_option(chat["id"])
    page.get_by_role("button", name="Launch job").click()
    expect(page).to_have_url(re.compile(r"#/jobs/ftjob-"), timeout=15_000)
    job_id = page.locator("#job-title").inner_text(timeout=15_000)
    job = api.job(job_id)
    try:
        assert job["method"]["type"] == "supervised" and not job["dry_run"], job
        block = job["method"]["supervised"]
        assert block["grader"]["task"] == "classification", block
        hp = block["hyperparameters"]
        assert (hp["max_steps"], hp["batch_size"], hp["n_epochs"]) == (2, 2, "auto"), hp
        assert job["resolved_hyperparameters"]["learning_rate"] == 1e-4  # the rule the page showed
        assert job["training_file"] == chat["id"] and job["validation_file"] == chat_valid["id"]
        job = wait_status(api.http, job_id, ("succeeded", "failed", "cancelled"), timeout=JOB_TIMEOUT_MS / 1000)
        assert job["status"] == "succeeded", job.get("error")
    finally:
        api.cancel_quietly(job_id)

    # its model is offered as a starting point, and a job started from it names it
    page.get_by_role("link", name="New job").click()
    offered = page.locator('#create-model optgroup[label="Start from a fine-tuned model"] option')
    expect(offered.and_(page.locator(f'option[value="{job["fine_tuned_model"]}"]'))).to_have_count(1)
    page.locator("#create-training-file").select_option(training_file["id"])
    page.locator("#create-model").select_option(job["fine_tuned_model"])
    for name, value in (("max_steps", "1"), ("batch_size", "2"), ("group_size", "2"), ("max_completion_tokens", "8")):
        page.locator(f'input[data-hp="{name}"]').fill(value)
    page.get_by_role("button", name="Launch job").click()
    expect(page).to_have_url(re.compile(r"#/jobs/ftjob-"), timeout=15_000)
    chained_id = page.locator("#job-title").inner_text(timeout=15_000)
    try:
        chained = api.job(chained_id)
        assert chained["model"] == job["fine_tuned_model"] and chained["method"]["type"] == "reinforcement", chained
    finally:
        api.cancel_quietly(chained_id)
    tab.assert_no_errors(allowed=("status of 422",))
