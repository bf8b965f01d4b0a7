"""Schemathesis over the app's own OpenAPI schema, in-process: every operation, hostile inputs, and no
answer may be a 5xx (the last-resort rule: only a dependency outage is, and nothing here is down).

Requests carry a real API key, and path and cursor parameters are drawn either from what the schema
allows or from objects that exist (a processed file, a queued job, a cancelled job with a checkpoint
and a rollout), so the fuzzer reaches past the 404s into the code that reads real rows. Responses are
also checked against the declared response models, so the schema keeps describing real shapes.

Bounded for CI: a fixed number of examples per operation, derandomized (the same cases every run).
"""

from __future__ import annotations

import os
import time

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.factories import job_body, jsonl, upload, visual_rft_rows

# per operation (20 operations, ~40 s here); VRFT_FUZZ_EXAMPLES=500 for a deeper run by hand
EXAMPLES = int(os.environ.get("VRFT_FUZZ_EXAMPLES", "40"))


def _load_schema():
    """Built at import, since pytest collects one test per operation from it. Requests go to the
    session's ``app`` fixture instead (``app=`` below): the app whose request sessions are the test's
    rolled-back transaction, where the seeded key and objects live."""
    from app.main import create_app

    throwaway = create_app()
    loaded = schemathesis.openapi.from_dict(throwaway.openapi())
    loaded.app = throwaway  # makes schemathesis call in-process (ASGI), never over the network
    # Prometheus text and the probes read no input worth fuzzing.
    return loaded.exclude(path_regex=r"^/(metrics|healthz|readyz)$")


schema = _load_schema()


@pytest.fixture
def seeded(make_client, db_session):
    """A project with one of each object, for the fuzzer to aim at."""
    from app.db import now
    from app.jobs.models import Checkpoint, Rollout

    client = make_client()
    made = upload(client, jsonl(visual_rft_rows(4)))
    assert made.status_code == 200, f"seeding needs a processed file: {made.text}"
    file_id = made.json()["id"]
    live = client.post("/v1/fine_tuning/jobs", json=job_body(file_id)).json()["id"]
    done = client.post("/v1/fine_tuning/jobs", json=job_body(file_id)).json()["id"]
    assert client.post(f"/v1/fine_tuning/jobs/{done}/cancel").status_code == 200
    db_session.add(Checkpoint(id="ftckpt-fuzz0000000000000000", job_id=done, step=1,
                              storage_key=f"checkpoints/{done}/step-1.tar", metrics={"reward": 0.5}, created_at=now()))
    db_session.add(Rollout(job_id=done, step=1, data={"prompt": "p", "completions": ["c"], "rewards": [0.0]},
                           created_at=now()))
    db_session.commit()
    return {"auth": client.headers["Authorization"], "file": file_id, "live": live, "done": done,
            "checkpoint": "ftckpt-fuzz0000000000000000"}


# The request schema types hyperparameters as an open object (their rules live in the service), so
# the fuzzer alone would never name one: draw hostile values for the real names ourselves.
HP_NAMES = ["n_epochs", "batch_size", "learning_rate_multiplier", "learning_rate", "max_steps",
            "checkpoint_interval", "eval_interval", "eval_samples", "group_size", "beta", "max_completion_tokens",
            "temperature", "top_p", "num_iterations", "max_pixels", "min_pixels", "gradient_accumulation_steps",
            "gradient_checkpointing", "loss_type", "scale_rewards", "lora"]
# (the JSON encoder refuses NaN/Infinity floats, so those arrive as strings; the dataset and
# hyperparameter tests send the raw tokens)
FINITE = st.floats(allow_nan=False, allow_infinity=False)
HOSTILE = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70), FINITE, st.booleans(), st.none(),
    st.sampled_from(["NaN", "Infinity", "-1e309", "auto", "4", "", "grpo"]),
    st.dictionaries(st.sampled_from(["r", "alpha", "dropout", "target_modules"]),
                    st.one_of(st.integers(min_value=-(2**40), max_value=2**40), FINITE, st.text(max_size=3)),
                    max_size=3),
)


def _aim(case, data, seeded) -> None:
    """Point ids at real objects about half the time; always authenticate as the seeded project."""
    ids = {"file_id": [seeded["file"]], "job_id": [seeded["live"], seeded["done"]],
           "checkpoint_id": [seeded["checkpoint"]]}
    for name, real in ids.items():
        if case.path_parameters and name in case.path_parameters:
            case.path_parameters[name] = data.draw(st.sampled_from([case.path_parameters[name], *real]), label=name)
    if case.method == "POST" and case.path == "/v1/fine_tuning/jobs" and data.draw(st.booleans(), label="valid"):
        body = job_body(seeded["file"])  # everything valid but the hyperparameters
        body["method"]["reinforcement"]["hyperparameters"] = data.draw(
            st.dictionaries(st.sampled_from(HP_NAMES), HOSTILE, max_size=4), label="hyperparameters")
        case.body = body
    if isinstance(case.body, dict):
        for field in ("training_file", "validation_file"):
            if field in case.body:
                case.body[field] = data.draw(st.sampled_from([case.body[field], seeded["file"]]), label=field)
    query = case.query or {}
    if "after" in query:
        cursors = [query["after"], seeded["file"], seeded["live"], seeded["checkpoint"], "ftevent-000000000001"]
        query["after"] = data.draw(st.sampled_from(cursors), label="after")
    if str(query.get("stream", "")).lower() in ("true", "1", "yes", "on"):
        # an event stream lasts as long as its job: aim it at the finished one, or it would never end
        case.path_parameters["job_id"] = seeded["done"]
    case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    case.headers["Authorization"] = seeded["auth"]


@schema.parametrize()
@schema.given(data=st.data())
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_no_input_gets_a_server_error(case, data, seeded, app):
    _aim(case, data, seeded)
    started = time.monotonic()
    case.call_and_validate(app=app, checks=[not_a_server_error, response_schema_conformance])
    assert time.monotonic() - started < 10, f"{case.method} {case.formatted_path} took too long"
