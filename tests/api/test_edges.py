"""The thin edges: bounded query/path parameters, one idempotency helper on both POSTs, work that runs
only after the commit, the last-resort error shape, and the schema that shows every response shape."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tests.factories import job_body, jsonl, upload, visual_rft_rows

HUGE = str(2**64 + 1)


def _file(client) -> str:
    r = upload(client, jsonl(visual_rft_rows(4)))
    assert r.status_code == 200, r.text
    return r.json()["id"]


def _job(client, file_id: str) -> str:
    r = client.post("/v1/fine_tuning/jobs", json=job_body(file_id))
    assert r.status_code == 200, r.text
    return r.json()["id"]


def _rejects(r, param: str) -> None:
    assert r.status_code == 422, r.text
    assert r.json()["error"]["param"] == param, r.json()


def test_numbers_past_their_columns_name_the_parameter(api_client):
    job_id = _job(api_client, _file(api_client))
    base = f"/v1/fine_tuning/jobs/{job_id}"
    for value in (HUGE, "-1", str(2**31)):
        _rejects(api_client.get(f"{base}/rollouts", params={"step": value}), "step")
    for path in ("/v1/files", "/v1/fine_tuning/jobs", f"{base}/events", f"{base}/checkpoints"):
        for value in (HUGE, "-5", "0", "1001"):
            _rejects(api_client.get(path, params={"limit": value}), "limit")
    _rejects(api_client.get(f"{base}/events", params={"after": f"ftevent-{HUGE}"}), "after")
    _rejects(api_client.get(f"{base}/events", params={"stream": "true"},
                            headers={"Last-Event-ID": f"ftevent-{HUGE}"}), "last-event-id")
    # inside the bounds all is well
    assert api_client.get(f"{base}/rollouts", params={"step": str(2**31 - 1)}).json()["data"] == []
    assert api_client.get(f"{base}/events", params={"after": "ftevent-999999999999999999"}).status_code == 200


def test_ids_and_filters_with_bytes_postgres_refuses_are_4xx(api_client):
    job_id = _job(api_client, _file(api_client))
    for path, param in (("/v1/files/file-a%00b", "file_id"), ("/v1/fine_tuning/jobs/ftjob-%00", "job_id"),
                        (f"/v1/fine_tuning/jobs/{job_id}/checkpoints/x%00/adapter", "checkpoint_id")):
        _rejects(api_client.get(path), param)
    _rejects(api_client.get("/v1/fine_tuning/jobs", params={"status": "queued\x00"}), "status")
    _rejects(api_client.get("/v1/fine_tuning/jobs", params={"after": "x" * 500}), "after")
    _rejects(api_client.get("/v1/files", params={"purpose": "fine-tune\x00"}), "purpose")
    _rejects(api_client.get("/v1/files", params={"order": "asc"}), "order")  # refused, not ignored


def test_integrations_are_refused_not_dropped(api_client):
    body = job_body(_file(api_client), integrations=[{"type": "wandb", "wandb": {"project": "p"}}])
    _rejects(api_client.post("/v1/fine_tuning/jobs", json=body), "integrations")
    assert api_client.post("/v1/fine_tuning/jobs", json={**body, "integrations": []}).status_code == 200


def test_both_posts_replay_through_one_idempotency_helper(api_client):
    content = jsonl(visual_rft_rows(4))
    first = upload(api_client, content, headers={"Idempotency-Key": "file-k"}).json()
    again = upload(api_client, content, headers={"Idempotency-Key": "file-k"}).json()
    assert again == first
    other = upload(api_client, jsonl(visual_rft_rows(5)), headers={"Idempotency-Key": "file-k"})
    assert other.status_code == 409 and other.json()["error"]["param"] == "Idempotency-Key"
    assert len(api_client.get("/v1/files").json()["data"]) == 1

    body = job_body(first["id"])
    job = api_client.post("/v1/fine_tuning/jobs", json=body, headers={"Idempotency-Key": "job-k"}).json()
    assert api_client.post("/v1/fine_tuning/jobs", json=body, headers={"Idempotency-Key": "job-k"}).json() == job
    assert len(api_client.get("/v1/fine_tuning/jobs").json()["data"]) == 1
    _rejects(api_client.post("/v1/fine_tuning/jobs", json=body, headers={"Idempotency-Key": "k" * 256}),
             "Idempotency-Key")


def test_a_cancel_is_visible_to_the_next_poll(api_client):
    """The cached view is dropped by an after-commit hook, not by a hand-placed commit in the router."""
    job_id = _job(api_client, _file(api_client))
    assert api_client.get(f"/v1/fine_tuning/jobs/{job_id}").json()["status"] == "queued"  # now cached
    assert api_client.post(f"/v1/fine_tuning/jobs/{job_id}/cancel").json()["status"] == "cancelled"
    assert api_client.get(f"/v1/fine_tuning/jobs/{job_id}").json()["status"] == "cancelled"


def test_on_commit_runs_after_commit_and_never_after_rollback(database):
    from app.db import get_engine, on_commit, on_rollback

    ran: list[str] = []
    with Session(get_engine()) as session:
        session.execute(sa.text("SELECT 1"))
        on_commit(session, lambda: ran.append("committed"))
        on_rollback(session, lambda: ran.append("undone"))
        assert ran == []
        session.commit()
        assert ran == ["committed"]

        on_commit(session, lambda: ran.append("never"))  # registered before any query in this transaction
        on_rollback(session, lambda: ran.append("undone"))
        session.rollback()
        session.execute(sa.text("SELECT 1"))
        session.commit()
    assert ran == ["committed", "undone"]


def test_a_failed_unit_of_work_runs_rollback_work_and_no_commit_work(database):
    """A statement the database refuses inside a request's unit of work: nothing is announced, and
    what was made outside the database is undone."""
    from app.db import on_commit, on_rollback, session_scope

    ran: list[str] = []
    try:
        with session_scope() as session:
            on_commit(session, lambda: ran.append("announced"))
            on_rollback(session, lambda: ran.append("cleaned up"))
            session.execute(sa.text("SELECT 1/0"))
    except sa.exc.DataError:
        pass
    assert ran == ["cleaned up"]


def test_every_route_declares_its_response_shape(app):
    spec = app.openapi()
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            ok = op["responses"].get("200") or op["responses"].get("307")
            assert ok and ok.get("content"), f"{method.upper()} {path} declares no response body"
            if path.startswith("/v1/"):
                for status in ("401", "422", "500", "503"):
                    ref = op["responses"][status]["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorResponse"), (method, path, status)
    job = spec["components"]["schemas"]["JobObject"]
    assert {"id", "status", "progress", "queue_position", "resolved_hyperparameters"} <= set(job["properties"])


def test_an_unexpected_error_is_a_500_in_the_error_shape_not_a_dropped_connection():
    """The last resort itself, on a real ASGI app that raises what no handler knows."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from app.main import install_error_handlers, last_resort_response
    from app.observability import ObservabilityMiddleware

    broken = FastAPI()
    broken.add_middleware(ObservabilityMiddleware, fallback=last_resort_response)
    install_error_handlers(broken)

    @broken.get("/bug")
    def bug():
        raise RuntimeError("a bug of ours")

    @broken.get("/db")
    def db():
        raise sa.exc.OperationalError("SELECT 1", {}, ConnectionRefusedError("refused"))

    with TestClient(broken, raise_server_exceptions=True) as client:  # nothing may escape the app
        r = client.get("/bug")
        assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
        assert "Retry-After" not in r.headers
        r = client.get("/db")
        assert r.status_code == 503 and r.json()["error"]["code"] == "dependency_unavailable"
        assert r.headers["Retry-After"]


def test_concurrent_retries_with_one_key_make_one_object(database):
    """Two transactions race with the same Idempotency-Key: both get the winner's body; the loser's
    work is rolled back (its rollback clean-up runs, its after-commit work never does)."""
    import threading
    import uuid

    from app.auth.models import Project
    from app.auth.service import create_key
    from app.db import get_sessionmaker, on_commit, on_rollback, session_scope
    from app.idempotency.service import idempotent

    with session_scope() as session:
        project_id = create_key(session, project_name=f"race-{uuid.uuid4().hex[:8]}")[0].id
    both_made = threading.Barrier(2, timeout=30)
    events: list[str] = []
    answers: dict[str, dict] = {}

    def request(name: str) -> None:
        with get_sessionmaker()() as session:
            def create() -> dict:
                on_commit(session, lambda: events.append(f"{name} enqueued"))
                on_rollback(session, lambda: events.append(f"{name} cleaned up"))
                both_made.wait()  # both have made their object before either records the key
                return {"made_by": name}

            answers[name] = idempotent(session, project_id=project_id, key="race", request_hash="h", create=create)
            session.commit()

    threads = [threading.Thread(target=request, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    try:
        assert answers["a"] == answers["b"], answers
        winner = answers["a"]["made_by"]
        loser = "b" if winner == "a" else "a"
        assert sorted(events) == sorted([f"{winner} enqueued", f"{loser} cleaned up"]), events
    finally:
        with session_scope() as session:
            session.delete(session.get(Project, project_id))


def test_raw_nan_and_infinity_tokens_in_a_job_body_are_422s(api_client):
    """JSON's non-standard tokens, sent raw (an encoder would refuse them, a hostile client won't)."""
    import json

    body = job_body(_file(api_client))
    for name, token in (("learning_rate", "NaN"), ("beta", "Infinity"), ("temperature", "-Infinity")):
        body["method"]["reinforcement"]["hyperparameters"][name] = "__TOKEN__"
        raw = json.dumps(body).replace('"__TOKEN__"', token)
        r = api_client.post("/v1/fine_tuning/jobs", content=raw, headers={"Content-Type": "application/json"})
        assert r.status_code == 422, (name, r.text)
        assert r.json()["error"]["param"].endswith(name), r.json()
        del body["method"]["reinforcement"]["hyperparameters"][name]
    assert api_client.get("/v1/fine_tuning/jobs").status_code == 200  # nothing poisoned the list
