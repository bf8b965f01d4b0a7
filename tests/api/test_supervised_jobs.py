"""Supervised jobs through the API: OpenAI's method shape, files judged per method at upload, unsuited
files refused at job creation naming the line, GRPO knobs refused by name, and ft: models as a start."""

from __future__ import annotations

import copy

import pytest
import sqlalchemy as sa

from tests.factories import chat_rows, job_body, jsonl, supervised_body, upload, visual_rft_rows


def _file(client, rows, name="train.jsonl") -> dict:
    r = upload(client, jsonl(rows), filename=name)
    assert r.status_code == 200, r.text
    return r.json()


def test_upload_says_which_methods_a_file_suits(api_client):
    chat = _file(api_client, chat_rows(3))
    assert chat["methods"] == ["supervised"]
    visual = _file(api_client, visual_rft_rows(3))
    assert visual["methods"] == ["reinforcement", "supervised"]
    prompts = copy.deepcopy(chat_rows(2))
    for row in prompts:
        row["messages"].pop()  # ends with the user's turn: a reinforcement prompt
    rft = _file(api_client, prompts)
    assert rft["methods"] == ["reinforcement"]
    report = api_client.get(f"/v1/files/{rft['id']}/validation").json()
    assert report["unsuited"]["supervised"]["line"] == 1 and "assistant" in report["unsuited"]["supervised"]["message"]


def test_a_supervised_job_is_created_in_openais_shape(api_client):
    fid = _file(api_client, chat_rows(4))["id"]
    r = api_client.post("/v1/fine_tuning/jobs", json=supervised_body(fid))
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["method"]["type"] == "supervised" and "reinforcement" not in job["method"]
    assert job["method"]["supervised"]["hyperparameters"]["batch_size"] == 2
    resolved = job["resolved_hyperparameters"]
    assert resolved["max_steps"] == 2 and resolved["learning_rate"] == pytest.approx(1e-4)
    assert "group_size" not in resolved and "beta" not in resolved  # no GRPO knobs on a supervised job


def test_supervised_auto_epochs_follow_openais_rule(api_client):
    fid = _file(api_client, chat_rows(4))["id"]
    body = supervised_body(fid)
    body["method"]["supervised"]["hyperparameters"] = {"batch_size": 4}
    job = api_client.post("/v1/fine_tuning/jobs", json=body).json()
    assert job["resolved_hyperparameters"]["n_epochs"] == 25  # 4 rows × 3 epochs < 100 → ceil(100 / 4) = 25


@pytest.mark.parametrize("hp, param", [
    ({"group_size": 4}, "method.supervised.hyperparameters.group_size"),
    ({"beta": 0.1}, "method.supervised.hyperparameters.beta"),
    ({"n_epochs": "3"}, "method.supervised.hyperparameters.n_epochs"),
    ({"batch_size": 3, "gradient_accumulation_steps": 2},
     "method.supervised.hyperparameters.gradient_accumulation_steps"),
])
def test_bad_supervised_hyperparameters_are_named(api_client, hp, param):
    fid = _file(api_client, chat_rows(4))["id"]
    body = supervised_body(fid)
    body["method"]["supervised"]["hyperparameters"] = hp
    r = api_client.post("/v1/fine_tuning/jobs", json=body)
    assert r.status_code == 422 and r.json()["error"]["param"] == param, r.text


@pytest.mark.parametrize("method, param", [
    ({"type": "supervised"}, "method.supervised"),
    ({"type": "supervised", "supervised": {}, "reinforcement": {"grader": {}}}, "method.reinforcement"),
    ({"type": "reinforcement", "supervised": {}}, "method.reinforcement"),
    ({"type": "dpo", "dpo": {}}, "method.type"),
])
def test_the_method_block_must_match_its_type(api_client, method, param):
    fid = _file(api_client, chat_rows(2))["id"]
    r = api_client.post("/v1/fine_tuning/jobs", json=supervised_body(fid, method=method))
    assert r.status_code == 422 and r.json()["error"]["param"] == param, r.text


def test_a_file_that_does_not_suit_the_method_is_refused_naming_the_line(api_client):
    chat = _file(api_client, chat_rows(3))["id"]
    r = api_client.post("/v1/fine_tuning/jobs", json=job_body(chat))  # a reinforcement job on answers
    err = r.json()["error"]
    assert r.status_code == 422 and err["code"] == "file_unsuited_for_method" and err["param"] == "training_file"
    assert "line 1" in err["message"] and "reinforcement" in err["message"] and err["line"] == 1

    prompts = chat_rows(3)
    prompts[1]["messages"].pop()
    mixed = upload(api_client, jsonl(prompts))  # line 2 ends with the user: a file no one method suits
    assert mixed.status_code == 422 and "no training method suits every row" in mixed.text
    assert "line 2" in mixed.text

    prompts = chat_rows(3)
    for row in prompts:
        row["messages"].pop()
    rft_only = _file(api_client, prompts)["id"]
    r = api_client.post("/v1/fine_tuning/jobs", json=supervised_body(chat, validation_file=rft_only))
    err = r.json()["error"]
    assert r.status_code == 422 and err["param"] == "validation_file" and "line 1" in err["message"]
    assert "no assistant message" in err["message"]


@pytest.mark.parametrize("mutate, where", [
    (lambda row: row["messages"].pop(), "line 2"),  # no assistant turn (and the file's other rows have one)
    (lambda row: row["messages"][1].update(content=[{"type": "image_url", "image_url": {"url": "data:x"}}]),
     "line 2: field 'messages[1].content[0]'"),  # an assistant turn with an image
    (lambda row: row["messages"][1].update(content="   "), "line 2: field 'messages[1].content'"),  # empty target
    (lambda row: row["messages"][1].update(weight=2), "line 2: field 'messages[1].weight'"),
])
def test_bad_supervised_files_are_422_naming_the_line(api_client, mutate, where):
    rows = chat_rows(3)
    mutate(rows[1])
    r = upload(api_client, jsonl(rows))
    if r.status_code == 200:  # valid as a file (it suits another method): refused by the job instead
        r = api_client.post("/v1/fine_tuning/jobs", json=supervised_body(r.json()["id"]))
    assert r.status_code == 422, r.text
    assert where in r.json()["error"]["message"], r.text


def test_a_supervised_grader_needs_a_validation_file_and_no_dry_run(api_client):
    fid = _file(api_client, chat_rows(2))["id"]
    body = supervised_body(fid)
    body["method"]["supervised"]["grader"] = {"type": "string_check", "name": "exact", "operation": "eq",
                                              "input": "{{sample.output_text}}", "reference": "{{item.solution}}"}
    r = api_client.post("/v1/fine_tuning/jobs", json=body)
    assert r.status_code == 422 and r.json()["error"]["param"] == "method.supervised.grader"
    ok = api_client.post("/v1/fine_tuning/jobs", json={**body, "validation_file": fid})
    assert ok.status_code == 200 and ok.json()["method"]["supervised"]["grader"]["name"] == "exact"
    dry = api_client.post("/v1/fine_tuning/jobs", json=supervised_body(fid, dry_run=True))
    assert dry.status_code == 422 and dry.json()["error"]["param"] == "dry_run"


def test_a_job_can_start_from_a_finished_ft_model_of_its_project_only(api_client, other_client, db_session):
    from app.jobs.models import Job

    fid = _file(api_client, chat_rows(2))["id"]
    first = api_client.post("/v1/fine_tuning/jobs", json=supervised_body(fid)).json()
    name = f"ft:vrft/tiny-qwen2-vl:{first['organization_id']}::{first['id']}"
    r = api_client.post("/v1/fine_tuning/jobs", json=supervised_body(fid, model=name))
    assert r.status_code == 404 and r.json()["error"]["param"] == "model"  # not finished: nothing to start from
    db_session.execute(sa.update(Job).where(Job.id == first["id"]).values(  # as a worker leaves it
        status="succeeded", adapter_key="k/final/adapter.tar", fine_tuned_model=name))
    db_session.commit()
    second = api_client.post("/v1/fine_tuning/jobs", json=supervised_body(fid, model=name, suffix="two"))
    assert second.status_code == 200, second.text
    assert second.json()["model"] == name  # echoed as asked
    row = db_session.get(Job, second.json()["id"])
    assert (row.base_model, row.init_adapter_key) == ("vrft/tiny-qwen2-vl", "k/final/adapter.tar")
    assert api_client.post("/v1/fine_tuning/jobs", json=supervised_body(fid, model=name + "x")).status_code == 404
    theirs = _file(other_client, chat_rows(2))["id"]
    r = other_client.post("/v1/fine_tuning/jobs", json=supervised_body(theirs, model=name))
    assert r.status_code == 404 and r.json()["error"]["param"] == "model"  # another project's model


def test_validate_answers_what_creation_would_and_writes_nothing(api_client):
    fid = _file(api_client, chat_rows(4))["id"]
    body = supervised_body(fid)
    body["method"]["supervised"]["hyperparameters"] = {"batch_size": 2}
    before = api_client.get("/v1/fine_tuning/jobs").json()["data"]
    plan = api_client.post("/v1/fine_tuning/jobs/validate", json=body)
    assert plan.status_code == 200, plan.text
    got = plan.json()
    assert got["object"] == "fine_tuning.job.plan" and got["base_model"] == "vrft/tiny-qwen2-vl"
    assert got["resolved_hyperparameters"]["n_epochs"] == 25 and got["total_steps"] == 50  # 4 rows / 2 × 25
    assert got["resources"] == {"gpus": 1}
    assert api_client.get("/v1/fine_tuning/jobs").json()["data"] == before  # nothing was created
    created = api_client.post("/v1/fine_tuning/jobs", json=body).json()
    assert created["resolved_hyperparameters"] == got["resolved_hyperparameters"]
    bad = api_client.post("/v1/fine_tuning/jobs/validate", json=job_body(fid))  # the same refusals as creation
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "file_unsuited_for_method"
