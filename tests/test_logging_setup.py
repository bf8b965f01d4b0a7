"""configure_logging: one format for our events and third-party records, with the request's and the
job's ids bound through contextvars (read back from the captured output)."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog
from fastapi.testclient import TestClient

from app.config import Settings
from app.logging_setup import configure_logging, log_format_for


@pytest.fixture
def captured():
    """JSON log lines written while the test runs; logging goes back to stderr afterwards."""
    buf = io.StringIO()
    configure_logging(Settings(), level="INFO", fmt="json", stream=buf)

    def lines() -> list[dict]:
        return [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]

    yield lines
    configure_logging(Settings())


def test_format_defaults_follow_the_deployment():
    assert log_format_for(Settings()) == "console"  # embedded: one person at a terminal
    assert log_format_for(Settings(broker_url="redis://r:6379/0")) == "json"
    assert log_format_for(Settings(broker_url="redis://r:6379/0", dev_mode=True)) == "console"
    assert log_format_for(Settings(log_format="json")) == "json"


def test_stdlib_and_structlog_lines_share_the_format_and_the_bound_context(captured):
    with structlog.contextvars.bound_contextvars(job_id="ftjob-ctx"):
        structlog.get_logger("vrft.test").info("checkpoint.saved", step=3)
        logging.getLogger("botocore.somewhere").warning("retrying %s", "PutObject", extra={"attempt": 2})
    structlog.get_logger("vrft.test").debug("below.the.level")
    ours, theirs = captured()
    assert ours["event"] == "checkpoint.saved" and ours["step"] == 3 and ours["level"] == "info"
    assert theirs["event"] == "retrying PutObject" and theirs["level"] == "warning"
    assert theirs["logger"] == "botocore.somewhere" and theirs["attempt"] == 2
    assert ours["job_id"] == theirs["job_id"] == "ftjob-ctx"
    assert ours["timestamp"].endswith("Z")


def test_console_format_is_readable_lines(captured):
    buf = io.StringIO()
    configure_logging(Settings(), fmt="console", stream=buf)
    structlog.get_logger("vrft.test").info("job.claimed", job_id="ftjob-1")
    line = buf.getvalue().strip()
    assert "job.claimed" in line and "job_id=ftjob-1" in line and not line.startswith("{")


def test_a_request_s_lines_carry_its_request_id(database, s3_server, captured):
    from app.main import create_app

    app = create_app()

    @app.get("/__log_probe")
    def probe(fail: bool = False):
        structlog.get_logger("vrft.test").info("probe.handled")
        if fail:  # the unhandled-error handler logs too, from Starlette's outermost middleware
            raise RuntimeError("probe failure")
        return {}

    buf = io.StringIO()
    configure_logging(Settings(), fmt="json", stream=buf)  # create_app configured stderr
    with TestClient(app, raise_server_exceptions=False) as http:
        ok = http.get("/__log_probe")
        failed = http.get("/__log_probe", params={"fail": "true"})
    assert ok.status_code == 200 and failed.status_code == 500
    by_event: dict[str, list] = {}
    for line in (json.loads(line) for line in buf.getvalue().splitlines()):
        by_event.setdefault(line["event"], []).append(line.get("request_id"))
    ids = by_event["probe.handled"]
    assert len(ids) == 2 and ids[0] and ids[1] and ids[0] != ids[1]
    assert ok.headers["x-request-id"] == ids[0]
    assert by_event["request.unhandled_error"] == [ids[1]]


def test_a_job_s_lines_carry_its_job_id(database, captured):
    from workers.runner import run_job

    assert run_job("ftjob-not-there", "test-worker", Settings()) == "not-claimed"
    ended = [line for line in captured() if line["event"] == "job.ended"]
    assert ended == [{**ended[0], "job_id": "ftjob-not-there", "outcome": "not-claimed"}]
    assert structlog.contextvars.get_contextvars() == {}  # unbound once the job is over
