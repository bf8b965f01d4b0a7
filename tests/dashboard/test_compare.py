"""The compare page in a real browser: two real finished jobs with a validation file, picked on the jobs
list, drawn as one line each over their evaluations, with the table `vrft jobs compare` prints; and the
job page of a supervised job charting loss and token accuracy instead of rewards."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

import vrft
from tests.dashboard.conftest import DESKTOP, PHONE, colour_jsonl, job_body
from tests.dashboard.test_dashboard import _assert_no_horizontal_overflow

pytestmark = pytest.mark.slow
TERMINAL = ("succeeded", "failed", "cancelled")


def _wait(api, job_id: str, timeout_s: float = 240) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = api.job(job_id)
        if job["status"] in TERMINAL:
            return job
        time.sleep(1)
    raise AssertionError(f"{job_id} did not finish in {timeout_s} s: {api.job(job_id)['status']}")


@pytest.fixture(scope="module")
def pair(api, training_file) -> list[dict]:
    """Two finished jobs on one validation file: 2 and 3 steps, evaluated at 0, 2 (and 3). The random tiny
    model's answers score zero, so the lines may lie on one another; their steps tell them apart."""
    valid = api.upload(colour_jsonl(), filename="valid.jsonl")
    jobs = []
    for steps, suffix in ((2, "short"), (3, "long")):
        body = job_body(training_file["id"], max_steps=steps) | {"validation_file": valid["id"], "suffix": suffix}
        r = api.http.post("/v1/fine_tuning/jobs", json=body)
        assert r.status_code == 200, r.text
        jobs.append(r.json())
    done = [_wait(api, j["id"]) for j in jobs]
    assert [j["status"] for j in done] == ["succeeded", "succeeded"], [j["error"] for j in done]
    return done


def _evals(api, job_id: str) -> dict[int, dict]:
    return {d["step"]: d for d in reversed(api.metrics(job_id)) if d.get("eval")}


def test_compare_two_real_jobs_chart_and_table(api, pair, training_file, open_tab, output_dir, live_server):
    tab = open_tab(DESKTOP)
    page = tab.page
    tab.sign_in(api.key)
    button = page.get_by_role("button", name="Compare selected")
    expect(button).to_be_disabled()
    for job in pair:
        page.get_by_role("checkbox", name=f"Select {job['id']} to compare").check()
    expect(button).to_be_enabled()
    expect(button).to_have_text("Compare selected (2)")
    # a new job redraws the rows (polling); the ticks stay
    extra = api.create_job(training_file["id"], max_steps=20_000)
    api.cancel_quietly(extra["id"])
    expect(page.locator(f'tr[data-job-id="{extra["id"]}"]')).to_be_visible(timeout=15_000)
    for job in pair:
        expect(page.get_by_role("checkbox", name=f"Select {job['id']} to compare")).to_be_checked()
    expect(button).to_have_text("Compare selected (2)")
    page.screenshot(path=str(output_dir / "dashboard-jobs-picked-1280.png"), full_page=True)
    button.click()
    expect(page).to_have_url(f"{live_server.base_url}/#/compare?ids={pair[0]['id']},{pair[1]['id']}")

    chart = page.locator('[data-chart="compare"]')
    expect(chart.locator("g.series")).to_have_count(2, timeout=15_000)
    expect(chart.locator("figcaption")).to_contain_text("valid_reward_mean")
    for job in pair:
        logged = _evals(api, job["id"])
        assert sorted(logged) == ([0, 2] if job["user_provided_suffix"] == "short" else [0, 2, 3])
        series = chart.locator(f'g.series[data-series="{job["id"]}"]')
        expect(series.locator("polyline")).to_have_count(1)  # one line per job
        points = series.locator("circle[data-step]")
        expect(points).to_have_count(len(logged))
        drawn = points.evaluate_all("els => els.map(e => [Number(e.dataset.step), Number(e.dataset.value)])")
        assert drawn == [[s, pytest.approx(logged[s]["valid_reward_mean"])] for s in sorted(logged)]
        legend = chart.locator(".legend li").filter(has_text=job["id"])
        expect(legend).to_contain_text(f"({job['user_provided_suffix']}) · reinforcement")

    # the table is the SDK's comparison, cell for cell (first → final at 4 significant digits)
    sdk = vrft.Client(api_key=api.key, base_url=live_server.base_url).jobs.compare([j["id"] for j in pair])
    rows = page.locator("#compare-table tbody tr")
    expect(rows).to_have_count(2)
    for row, expected in zip(rows.all(), sdk, strict=True):
        assert row.get_attribute("data-job-id") == expected.id
        expect(row.locator("[data-field=method]")).to_have_text("reinforcement")
        expect(row.locator("[data-field=evals]")).to_have_text(f"0 → {expected.final.step}")
        assert expected.final.metrics.keys() == {"valid_reward_mean", "valid_accuracy"}
        for name in ("valid_reward_mean", "valid_accuracy"):
            first, final = expected.first.metrics[name], expected.final.metrics[name]
            expect(row.locator(f'[data-metric="{name}"]')).to_have_text(f"{first:.4g} → {final:.4g}")
    page.screenshot(path=str(output_dir / "dashboard-compare-1280.png"), full_page=True)

    # the picker redraws the chart for another metric and keeps it in the (shareable) URL
    page.get_by_label("Metric", exact=True).select_option("valid_accuracy")
    expect(chart.locator("figcaption")).to_contain_text("valid_accuracy")
    assert page.url.endswith("&metric=valid_accuracy")
    logged = _evals(api, pair[1]["id"])
    values = chart.locator(f'g.series[data-series="{pair[1]["id"]}"] circle').evaluate_all(
        "els => els.map(e => Number(e.dataset.value))")
    assert values == [pytest.approx(logged[s]["valid_accuracy"]) for s in sorted(logged)]
    page.reload()
    expect(page.get_by_label("Metric", exact=True)).to_have_value("valid_accuracy")

    page.set_viewport_size(PHONE)
    page.wait_for_timeout(300)
    page.screenshot(path=str(output_dir / "dashboard-compare-390.png"), full_page=True)
    _assert_no_horizontal_overflow(page)
    tab.assert_no_errors()


def test_compare_names_an_unknown_job_and_still_draws_the_others(api, pair, open_tab, live_server):
    tab = open_tab(DESKTOP)
    page = tab.page
    tab.sign_in(api.key)
    page.goto(f"{live_server.base_url}/#/compare?ids={pair[0]['id']},ftjob-doesnotexist")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("ftjob-doesnotexist")
    expect(alert).to_contain_text("404 job_not_found")
    expect(page.locator('[data-chart="compare"] g.series')).to_have_count(1)
    expect(page.locator("#compare-table tbody tr")).to_have_count(1)
    tab.assert_no_errors(allowed=("status of 404",))


def _sft_events(tmp_path) -> list[dict]:
    """Metrics events as a supervised job stores them: a real 2-step SFT run of the tiny model (its
    on_step/on_eval figures), through the same event shaping the worker uses."""
    import torch

    from app.jobs.metrics import eval_event, sft_step_event
    from tests.training.helpers import colour_examples
    from workers.training.config import TrainConfig
    from workers.training.hooks import RecordingHooks
    from workers.training.sft import train_sft

    torch.set_num_threads(1)
    rows = [dict(ex, item={"solution": ex["id"]}) for ex in colour_examples()]
    hooks = RecordingHooks()
    config = TrainConfig(model="vrft/tiny-qwen2-vl", model_cache_dir=str(tmp_path), output_dir=str(tmp_path / "o"),
                         prompts_per_step=2, max_steps=3, learning_rate=2e-2, eval_interval=2)
    train_sft(config, rows, rows, hooks=hooks)
    data = [eval_event(step, m) for step, m in hooks.evals] + [sft_step_event(m, 3) for m in hooks.steps]
    data.sort(key=lambda d: (d["step"], not d.get("eval")))
    return [{"object": "fine_tuning.job.event", "id": f"ftevent-{i:012d}", "created_at": 1_700_000_000 + i,
             "level": "info", "message": "metrics", "type": "metrics", "data": d} for i, d in enumerate(data, 1)]


def test_a_supervised_jobs_page_charts_loss_and_token_accuracy(api, training_file, open_tab, output_dir, tmp_path):
    """The browser's view of a job and its metrics events is a supervised run's (page.route): the page draws
    its loss and token accuracy and no reward, KL or completion-length charts, shows the grader of
    method.supervised, and no rollout browser (SFT samples none)."""
    events = _sft_events(tmp_path)
    listing = {"object": "list", "has_more": False, "data": list(reversed(events))}
    job = api.create_job(training_file["id"], max_steps=20_000)
    api.http.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel")
    grader = {"type": "visual_rft", "name": "sft-eval", "task": "classification"}
    supervised = {**api.job(job["id"]), "method": {"type": "supervised", "supervised": {
        "grader": grader, "hyperparameters": {"n_epochs": 1, "batch_size": 2}}}}
    tab = open_tab(DESKTOP)
    page = tab.page
    tab.sign_in(api.key)
    page.route(f"**/v1/fine_tuning/jobs/{job['id']}", lambda route: route.fulfill(json=supervised))
    page.route(lambda url: f"/jobs/{job['id']}/events" in url and "type=metrics" in url,
               lambda route: route.fulfill(json=listing))
    page.goto(f"{tab.base_url}/#/jobs/{job['id']}")
    steps = [e["data"] for e in events if not e["data"].get("eval")]
    evals = [e["data"] for e in events if e["data"].get("eval")]
    expect(page.locator('[data-chart="train_loss"] circle[data-step]')).to_have_count(len(steps), timeout=15_000)
    drawn = page.locator('[data-chart="train_loss"] circle').evaluate_all(
        "els => els.map(e => Number(e.dataset.value))")
    assert drawn == [pytest.approx(d["train_loss"]) for d in steps]
    expect(page.locator('[data-chart="token_accuracy"] circle[data-step]')).to_have_count(len(steps))
    expect(page.locator('[data-chart="valid_loss"] circle[data-step]')).to_have_count(len(evals))
    expect(page.locator('[data-chart="validation"] circle[data-series="valid_mean_token_accuracy"]')).to_have_count(
        len(evals))
    for absent in ("reward", "kl", "completion_length", "zero_variance"):
        expect(page.locator(f'[data-chart="{absent}"]')).to_have_count(0)
    expect(page.locator("#job-charts .chart-empty")).to_have_count(0)  # no empty chart
    expect(page.locator("#job-grader")).to_contain_text("sft-eval")
    expect(page.locator("#job-rollouts")).to_be_hidden()
    page.locator("#job-charts").screenshot(path=str(output_dir / "dashboard-job-sft-charts-1280.png"))
    tab.assert_no_errors()
