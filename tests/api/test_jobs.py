import json

import sqlalchemy as sa

from tests.factories import job_body, jsonl, upload, visual_rft_rows


def _file(client, n=4):
    return upload(client, jsonl(visual_rft_rows(n))).json()["id"]


def test_create_retrieve_list(api_client):
    fid = _file(api_client)
    r = api_client.post("/v1/fine_tuning/jobs", json=job_body(fid, suffix="colours", metadata={"team": "cv"}))
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["object"] == "fine_tuning.job" and job["id"].startswith("ftjob-")
    assert job["status"] == "queued" and job["queue_position"] >= 1
    assert job["training_file"] == fid and job["model"] == "vrft/tiny-qwen2-vl"
    assert job["progress"] == {"step": 0, "total_steps": 2}
    assert job["method"]["type"] == "reinforcement"
    assert job["method"]["reinforcement"]["grader"]["type"] == "visual_rft"
    assert job["metadata"] == {"team": "cv"} and job["user_provided_suffix"] == "colours"
    assert r.headers["X-Poll-After-Ms"]
    got = api_client.get(f"/v1/fine_tuning/jobs/{job['id']}").json()
    assert got["id"] == job["id"]
    listed = api_client.get("/v1/fine_tuning/jobs").json()
    assert listed["object"] == "list" and [j["id"] for j in listed["data"]] == [job["id"]]
    events = api_client.get(f"/v1/fine_tuning/jobs/{job['id']}/events").json()["data"]
    assert events and all(e["object"] == "fine_tuning.job.event" for e in events)
    assert "Created fine-tuning job" in events[-1]["message"]  # newest first


def test_auto_hyperparameters_resolve(api_client):
    fid = _file(api_client, 6)
    body = job_body(fid)
    body["method"]["reinforcement"]["hyperparameters"] = {}
    job = api_client.post("/v1/fine_tuning/jobs", json=body).json()
    hp = job["resolved_hyperparameters"]
    assert hp["batch_size"] == 6 and hp["group_size"] == 8 and hp["beta"] == 0.04
    assert hp["max_steps"] == hp["n_epochs"] and job["progress"]["total_steps"] == hp["max_steps"]


def test_unknown_hyperparameter_is_422_naming_it(api_client):
    body = job_body(_file(api_client))
    body["method"]["reinforcement"]["hyperparameters"]["learnin_rate"] = 1e-4
    r = api_client.post("/v1/fine_tuning/jobs", json=body)
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "unknown_field" and err["param"].endswith("learnin_rate") and "learnin_rate" in err["message"]


def test_bad_hyperparameter_value(api_client):
    body = job_body(_file(api_client))
    body["method"]["reinforcement"]["hyperparameters"]["loss_type"] = "ppo"
    r = api_client.post("/v1/fine_tuning/jobs", json=body)
    assert r.status_code == 422 and r.json()["error"]["param"].endswith("loss_type")


def test_unknown_top_level_field(api_client):
    r = api_client.post("/v1/fine_tuning/jobs", json=job_body(_file(api_client), colour="blue"))
    assert r.status_code == 422 and r.json()["error"]["param"] == "colour"


def test_unknown_model(api_client):
    r = api_client.post("/v1/fine_tuning/jobs", json=job_body(_file(api_client), model="gpt-17"))
    assert r.status_code == 404
    err = r.json()["error"]
    assert err["code"] == "model_not_found" and err["param"] == "model" and "vrft/tiny-qwen2-vl" in err["message"]


def test_other_projects_file(api_client, other_client):
    theirs = _file(other_client)
    r = api_client.post("/v1/fine_tuning/jobs", json=job_body(theirs))
    assert r.status_code == 404 and r.json()["error"]["param"] == "training_file"


def test_unprocessed_file(api_client, db_session):
    from app.files.models import File

    fid = _file(api_client)
    db_session.execute(sa.update(File).where(File.id == fid).values(status="uploaded"))
    db_session.commit()
    r = api_client.post("/v1/fine_tuning/jobs", json=job_body(fid))
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "file_not_processed" and r.json()["error"]["param"] == "training_file"


def test_grader_of_unknown_type(api_client):
    body = job_body(_file(api_client))
    body["method"]["reinforcement"]["grader"] = {"type": "telepathy", "name": "x"}
    r = api_client.post("/v1/fine_tuning/jobs", json=body)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_grader" and r.json()["error"]["param"].startswith("grader")


def test_grader_template_field_missing_from_dataset(api_client):
    body = job_body(_file(api_client))
    body["method"]["reinforcement"]["grader"] = {
        "type": "string_check", "name": "exact", "input": "{{sample.output_text}}",
        "reference": "{{item.label}}", "operation": "eq"}
    r = api_client.post("/v1/fine_tuning/jobs", json=body)
    assert r.status_code == 422 and "label" in r.json()["error"]["message"]


def test_python_grader_disabled_by_default(api_client):
    body = job_body(_file(api_client))
    body["method"]["reinforcement"]["grader"] = {
        "type": "python", "name": "py", "source": "def grade(sample, item):\n    return 1.0\n"}
    r = api_client.post("/v1/fine_tuning/jobs", json=body)
    assert r.status_code == 422 and r.json()["error"]["code"] == "python_grader_disabled"


def test_state_transitions(api_client):
    fid = _file(api_client)
    jid = api_client.post("/v1/fine_tuning/jobs", json=job_body(fid)).json()["id"]
    base = f"/v1/fine_tuning/jobs/{jid}"
    assert api_client.post(f"{base}/resume").status_code == 409
    assert api_client.post(f"{base}/pause").json()["status"] == "paused"
    assert api_client.post(f"{base}/pause").status_code == 409
    resumed = api_client.post(f"{base}/resume").json()
    assert resumed["status"] == "queued"
    cancelled = api_client.post(f"{base}/cancel").json()
    assert cancelled["status"] == "cancelled" and cancelled["finished_at"]
    r = api_client.post(f"{base}/cancel")
    assert r.status_code == 409 and r.json()["error"]["code"] == "invalid_state_transition"
    assert api_client.post(f"{base}/resume").status_code == 409
    assert api_client.get(f"{base}/adapter").status_code == 409


def test_running_job_pause_is_a_request(api_client, db_session):
    from app.jobs.models import Job

    jid = api_client.post("/v1/fine_tuning/jobs", json=job_body(_file(api_client))).json()["id"]
    db_session.execute(sa.update(Job).where(Job.id == jid).values(status="running"))
    db_session.commit()
    job = api_client.post(f"/v1/fine_tuning/jobs/{jid}/pause").json()
    assert job["status"] == "running"
    assert db_session.scalar(sa.select(Job.control_request).where(Job.id == jid)) == "pause"


def test_file_in_use_cannot_be_deleted(api_client):
    fid = _file(api_client)
    api_client.post("/v1/fine_tuning/jobs", json=job_body(fid))
    r = api_client.delete(f"/v1/files/{fid}")
    assert r.status_code == 409 and r.json()["error"]["code"] == "file_in_use"


def test_idempotent_create(api_client):
    body = job_body(_file(api_client))
    a = api_client.post("/v1/fine_tuning/jobs", json=body, headers={"Idempotency-Key": "abc"}).json()
    b = api_client.post("/v1/fine_tuning/jobs", json=body, headers={"Idempotency-Key": "abc"}).json()
    assert a["id"] == b["id"] and len(api_client.get("/v1/fine_tuning/jobs").json()["data"]) == 1


def test_other_projects_job_is_404(api_client, other_client):
    jid = api_client.post("/v1/fine_tuning/jobs", json=job_body(_file(api_client))).json()["id"]
    for method, suffix in (("get", ""), ("post", "/cancel"), ("post", "/pause"), ("get", "/events"),
                           ("get", "/checkpoints"), ("get", "/adapter")):
        r = getattr(other_client, method)(f"/v1/fine_tuning/jobs/{jid}{suffix}")
        assert r.status_code == 404, (suffix, r.text)


def test_queue_position_orders_jobs(api_client):
    fid = _file(api_client)
    first = api_client.post("/v1/fine_tuning/jobs", json=job_body(fid)).json()
    second = api_client.post("/v1/fine_tuning/jobs", json=job_body(fid)).json()
    assert second["queue_position"] == first["queue_position"] + 1


def test_models_lists_builtin_tiny(api_client):
    ids = [m["id"] for m in api_client.get("/v1/models").json()["data"]]
    assert "vrft/tiny-qwen2-vl" in ids


def test_operations_endpoints(api_client):
    assert api_client.get("/healthz").json() == {"status": "ok"}
    ready = api_client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["storage"] == "ok"
    assert "vrft_http_requests_total" in api_client.get("/metrics").text
    assert "/v1/fine_tuning/jobs" in api_client.get("/openapi.json").json()["paths"]


def test_invalid_json_body_is_400(api_client):
    r = api_client.post("/v1/fine_tuning/jobs", content=b"{nope", headers={"Content-Type": "application/json"})
    assert r.status_code in (400, 422) and r.json()["error"]["message"]


def test_events_stream_as_sse_and_resume_after_last_event_id(api_client):
    jid = api_client.post("/v1/fine_tuning/jobs", json=job_body(_file(api_client))).json()["id"]
    api_client.post(f"/v1/fine_tuning/jobs/{jid}/cancel")
    with api_client.stream("GET", f"/v1/fine_tuning/jobs/{jid}/events?stream=true") as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        body = "".join(r.iter_text())
    ids = [line[4:] for line in body.splitlines() if line.startswith("id: ")]
    assert len(ids) == 4 and body.rstrip().endswith("data: {}")  # created, validated, queued, cancelled
    with api_client.stream("GET", f"/v1/fine_tuning/jobs/{jid}/events?stream=true",
                           headers={"Last-Event-ID": ids[1]}) as r:
        again = [line[4:] for line in "".join(r.iter_text()).splitlines() if line.startswith("id: ")]
    assert again == ids[2:]


def test_box_graders_take_the_model_familys_coordinates(api_client):
    """Qwen2.5-VL answers boxes in resized pixels; the others in 0–1000 (unless the user says)."""
    fid = _file(api_client)

    def coords(model, grader):
        body = job_body(fid, model=model)
        body["method"]["reinforcement"]["grader"] = grader
        r = api_client.post("/v1/fine_tuning/jobs", json=body)
        assert r.status_code == 200, r.text
        return r.json()["method"]["reinforcement"]["grader"]

    det = {"type": "visual_rft", "name": "det", "task": "detection"}
    assert coords("vrft/tiny-qwen2.5-vl", det)["coords"] == "pixels_resized"
    assert coords("vrft/tiny-qwen2-vl", det)["coords"] == "norm1000"
    assert coords("vrft/tiny-qwen2.5-vl", {**det, "coords": "norm1000"})["coords"] == "norm1000"
    multi = {"type": "multi", "name": "m", "calculate_output": "iou", "graders": {"iou": {
        "type": "box_iou", "name": "iou", "input": "{{sample.output_text}}", "reference": "{{item.solution}}"}}}
    assert coords("vrft/tiny-qwen2.5-vl", multi)["graders"]["iou"]["coords"] == "pixels_resized"


def _hp_body(fid, **hp):
    body = job_body(fid)
    body["method"]["reinforcement"]["hyperparameters"].update(hp)
    return body


def test_numbers_that_are_not_numbers_are_422_before_any_row(api_client):
    """Strict, finite and bounded: each is refused naming its field, and no job row is written (a
    poisoned row used to make every later job list of the project answer 500)."""
    fid = _file(api_client)
    for hp, name in (({"learning_rate": "NaN"}, "learning_rate"), ({"max_steps": 10**12}, "max_steps"),
                     ({"batch_size": "4"}, "batch_size"), ({"group_size": True}, "group_size"),
                     ({"lora": {"r": 2**70}}, "lora.r"),
                     ({"batch_size": 2, "gradient_accumulation_steps": 4}, "gradient_accumulation_steps")):
        r = api_client.post("/v1/fine_tuning/jobs", json=_hp_body(fid, **hp))
        assert r.status_code == 422, (hp, r.text)
        err = r.json()["error"]
        assert err["code"] == "invalid_hyperparameter"
        assert err["param"] == f"method.reinforcement.hyperparameters.{name}"
    # JSON's non-standard NaN / Infinity tokens (Python's json module sends them), and a literal that
    # parses as infinity
    for token in ("NaN", "Infinity", "-Infinity", "1e400"):
        raw = json.dumps(_hp_body(fid)).replace('"max_completion_tokens": 8', f'"learning_rate": {token}, '
                                                '"max_completion_tokens": 8')
        r = api_client.post("/v1/fine_tuning/jobs", content=raw, headers={"Content-Type": "application/json"})
        assert r.status_code == 422 and r.json()["error"]["param"].endswith("learning_rate"), r.text
    listed = api_client.get("/v1/fine_tuning/jobs")
    assert listed.status_code == 200 and listed.json()["data"] == []


def test_job_fields_are_strict_too(api_client):
    fid = _file(api_client)
    for field, value in (("seed", "4"), ("seed", 2**63), ("dry_run", "true"), ("dry_run_samples", True),
                         ("dry_run_samples", 10**9)):
        r = api_client.post("/v1/fine_tuning/jobs", json=job_body(fid, **{field: value}))
        assert r.status_code == 422 and field in (r.json()["error"]["param"] or ""), (field, value, r.text)
    assert api_client.get("/v1/fine_tuning/jobs").json()["data"] == []


def test_dry_run_samples_live_on_the_job_and_checkpointing_follows_the_model(api_client):
    job = api_client.post("/v1/fine_tuning/jobs", json=job_body(_file(api_client), dry_run=True,
                                                                dry_run_samples=3)).json()
    assert job["dry_run_samples"] == 3 and "dry_run_samples" not in job["resolved_hyperparameters"]
    assert job["resolved_hyperparameters"]["gradient_checkpointing"] is False  # the tiny model: ~0.2 M parameters
    r = api_client.post("/v1/fine_tuning/jobs", json=job_body(_file(api_client), dry_run_samples=3))
    assert r.status_code == 422 and r.json()["error"]["param"] == "dry_run_samples"  # not silently ignored
    default = api_client.post("/v1/fine_tuning/jobs", json=job_body(_file(api_client), dry_run=True)).json()
    assert default["dry_run_samples"] == 8
    body = _hp_body(_file(api_client), gradient_checkpointing=True)
    assert api_client.post("/v1/fine_tuning/jobs", json=body).json()["resolved_hyperparameters"][
        "gradient_checkpointing"] is True


def test_a_job_with_a_non_finite_worker_figure_still_renders(api_client, db_session):
    """A diverged step can report NaN; the job and its list must still render (as null)."""
    from app.jobs.models import Job

    jid = api_client.post("/v1/fine_tuning/jobs", json=job_body(_file(api_client))).json()["id"]
    db_session.execute(sa.update(Job).where(Job.id == jid).values(latest_reward=float("nan")))
    db_session.commit()
    listed = api_client.get("/v1/fine_tuning/jobs")
    assert listed.status_code == 200 and listed.json()["data"][0]["latest_reward"] is None
    assert api_client.get(f"/v1/fine_tuning/jobs/{jid}").status_code == 200
