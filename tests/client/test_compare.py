"""``client.jobs.compare`` and ``vrft jobs compare`` on real finished jobs of the live server (tiny RFT jobs
with a validation file, so each has a step-0 and a final evaluation), plus the pure row shaping."""

from __future__ import annotations

import asyncio
import json

import pytest

import vrft
from tests.client.conftest import CLS_GRADER, TINY_MODEL, visual_rft_jsonl
from vrft.compare import evaluations, metric_names


def _job(live, train, valid, steps: int) -> vrft.FineTuningJob:
    return live.jobs.create(model=TINY_MODEL, training_file=train, validation_file=valid, grader=CLS_GRADER,
                            suffix=f"cmp{steps}", hyperparameters={"max_steps": steps, "batch_size": 1,
                                                                   "group_size": 2, "max_completion_tokens": 4})


@pytest.fixture(scope="module")
def finished(live) -> list[vrft.FineTuningJob]:
    train = live.files.upload(visual_rft_jsonl(4), filename="train.jsonl")
    valid = live.files.upload(visual_rft_jsonl(3), filename="valid.jsonl")
    jobs = [_job(live, train, valid, 1), _job(live, train, valid, 2)]
    done = [live.jobs.wait(j.id, timeout=300, progress=False) for j in jobs]
    assert [j.status for j in done] == ["succeeded", "succeeded"], [j.error for j in done]
    return done


@pytest.fixture(scope="module")
def unevaluated(live) -> vrft.FineTuningJob:
    """A job with no validation file, cancelled before it ran: no evaluations at all."""
    train = live.files.upload(visual_rft_jsonl(4), filename="train.jsonl")
    job = live.jobs.create(model=TINY_MODEL, training_file=train, grader=CLS_GRADER,
                           hyperparameters={"max_steps": 1})
    return live.jobs.cancel(job.id)


def _eval_events(live, job_id: str) -> dict[int, dict]:
    """The job's evaluation events by step, read straight from the events API."""
    events = [e for e in live.jobs.list_events(job_id, limit=1000, type="metrics") if (e.data or {}).get("eval")]
    return {e.data["step"]: e.data for e in reversed(events)}


@pytest.mark.slow
def test_sdk_compare_rows_are_each_jobs_first_and_final_evaluation(live, finished, unevaluated):
    one, two = finished
    rows = live.jobs.compare([one.id, two, one.id, unevaluated.id])  # ids or jobs; a repeat counts once
    assert [r.id for r in rows] == [one.id, two.id, unevaluated.id]
    for row, job, steps in ((rows[0], one, 1), (rows[1], two, 2)):
        assert (row.method, row.model, row.status, row.suffix) == ("reinforcement", TINY_MODEL, "succeeded",
                                                                   f"cmp{steps}")
        assert (row.step, row.total_steps) == (steps, steps)
        logged = _eval_events(live, job.id)
        assert [e.step for e in row.evaluations] == sorted(logged) == list(range(steps + 1))  # every step here
        assert row.first.step == 0 and row.final.step == steps
        for ev in row.evaluations:
            data = logged[ev.step]
            assert ev.metrics["valid_reward_mean"] == pytest.approx(data["valid_reward_mean"])
            assert ev.metrics["valid_accuracy"] == pytest.approx(data["valid_accuracy"])
            assert "valid_metric" not in ev.metrics and "valid_rewards" not in ev.metrics
        # the final evaluation is also what the final checkpoint keeps (written by another path)
        last = max(live.jobs.checkpoints(job.id, limit=100), key=lambda c: c.step_number)
        assert last.step_number == steps
        assert row.final.metrics["valid_reward_mean"] == pytest.approx(last.metrics["valid_reward_mean"])
    assert rows[2].status == "cancelled" and rows[2].evaluations == [] and rows[2].first is None
    assert metric_names(rows) == ["valid_reward_mean", "valid_accuracy"]


@pytest.mark.slow
def test_async_compare_matches_sync(live, live_server, live_key, finished):
    async def scenario():
        async with vrft.AsyncClient(api_key=live_key, base_url=live_server.base_url) as client:
            return await client.jobs.compare([j.id for j in finished])

    assert [r.to_dict() for r in asyncio.run(scenario())] == [r.to_dict() for r in live.jobs.compare(finished)]


def _cells(stdout: str) -> tuple[list[str], dict[str, list[str]]]:
    """The table's header names and each row's cells (columns are separated by two or more spaces)."""
    import re

    lines = stdout.splitlines()
    split = [re.split(r"\s{2,}", line.strip()) for line in lines]
    return split[0], {cells[0]: cells for cells in split[1:]}


@pytest.mark.slow
def test_cli_compare_table_json_and_unknown_id(cli, live, finished, unevaluated):
    one, two = finished
    out = cli("jobs", "compare", one.id, two.id, unevaluated.id)
    assert out.returncode == 0, out.stderr
    header, rows = _cells(out.stdout)
    assert header == ["ID", "METHOD", "MODEL", "STATUS", "STEPS", "EVALS", "VALID_REWARD_MEAN", "VALID_ACCURACY"]
    assert list(rows) == [one.id, two.id, unevaluated.id]
    for job, steps in ((one, 1), (two, 2)):
        cells = rows[job.id]
        logged = _eval_events(live, job.id)
        assert cells[1:6] == ["reinforcement", TINY_MODEL, "succeeded", f"{steps}/{steps}", f"0 -> {steps}"]
        for column, key in ((6, "valid_reward_mean"), (7, "valid_accuracy")):
            assert cells[column] == f"{logged[0][key]:.4g} -> {logged[steps][key]:.4g}"  # 4 significant digits
    assert rows[unevaluated.id][5:] == ["-", "-", "-"]  # blank where a job has no evaluation

    as_json = cli("jobs", "compare", one.id, two.id, "--json")
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert [r["id"] for r in data] == [one.id, two.id]
    assert data[1]["first"]["step"] == 0 and data[1]["final"]["step"] == 2
    final = _eval_events(live, two.id)[2]
    assert data[1]["final"]["metrics"] == pytest.approx(
        {"valid_reward_mean": final["valid_reward_mean"], "valid_accuracy": final["valid_accuracy"]})

    missing = cli("jobs", "compare", one.id, "ftjob-doesnotexist")
    assert missing.returncode == 1 and missing.stdout == ""
    assert "ftjob-doesnotexist" in missing.stderr and "job_not_found" in missing.stderr
    assert "Traceback" not in missing.stderr
    assert cli("jobs", "compare").returncode == 2  # at least one id


def _event(seq: int, data: dict) -> vrft.JobEvent:
    return vrft.JobEvent(id=f"ftevent-{seq:012d}", type="metrics", data=data)


def test_evaluations_one_per_step_latest_wins_and_only_scalar_figures():
    events = [
        _event(1, {"step": 0, "eval": True, "valid_reward_mean": 0.1, "valid_rewards": {"a": 0.1},
                   "valid_metric_name": "accuracy", "valid_metric": 0.2, "valid_accuracy": 0.2}),
        _event(2, {"step": 1, "reward_mean": 0.5, "valid_looking": 1}),  # a training step, not an evaluation
        _event(3, {"step": 2, "eval": True, "valid_reward_mean": 0.3, "valid_accuracy": None}),  # diverged: None
        _event(4, {"step": 2, "eval": True, "valid_reward_mean": 0.4, "valid_accuracy": 0.5, "valid_flag": True}),
    ]
    evals = evaluations(events)
    assert [(e.step, e.metrics) for e in evals] == [
        (0, {"valid_reward_mean": 0.1, "valid_accuracy": 0.2}), (2, {"valid_reward_mean": 0.4, "valid_accuracy": 0.5})]


def test_metric_names_are_the_union_in_column_order():
    rft = vrft.JobComparison(id="a", status="succeeded", evaluations=[
        vrft.Evaluation(step=0, metrics={"valid_accuracy": 0.1, "valid_reward_mean": 0.2, "valid_zeta": 1.0})])
    sft = vrft.JobComparison(id="b", status="succeeded", evaluations=[
        vrft.Evaluation(step=0, metrics={"valid_mean_token_accuracy": 0.3, "valid_loss": 2.0, "valid_alpha": 1.0})])
    assert metric_names([rft, sft]) == ["valid_reward_mean", "valid_accuracy", "valid_loss",
                                        "valid_mean_token_accuracy", "valid_alpha", "valid_zeta"]
