"""The graders endpoints through the real app (``api_client`` comes from tests/conftest.py)."""

import pytest

from app.graders.router import python_grader_enabled

BASE = "/v1/fine_tuning/alpha/graders"
DETECTION = {"type": "visual_rft", "name": "det", "task": "detection"}
SOLUTION = "<answer>[{'Position': [100, 100, 200, 200], 'Confidence': 1}]</answer>"
PYTHON = {"type": "python", "name": "py", "source": "def grade(sample, item):\n    return 0.5\n"}


def test_validate_returns_the_normalised_grader(api_client):
    r = api_client.post(f"{BASE}/validate", json={"grader": {"type": "box_iou", "name": "iou"}})
    assert r.status_code == 200
    assert r.json()["grader"]["coords"] == "norm1000"


def test_validate_names_the_bad_field(api_client):
    bad = {"type": "multi", "name": "m", "calculate_output": "a.real", "graders": {"a": {"type": "format"}}}
    r = api_client.post(f"{BASE}/validate", json={"grader": bad})
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "invalid_grader"
    assert error["param"] == "grader.calculate_output"


def test_run_detection_preset(api_client):
    body = {
        "grader": DETECTION,
        "model_sample": "<think>one plane</think>"
                        "<answer>[{'Position': [100, 100, 200, 200], 'Confidence': 0.9}]</answer>",
        "item": {"solution": SOLUTION},
    }
    r = api_client.post(f"{BASE}/run", json=body)
    assert r.status_code == 200
    out = r.json()
    assert out["reward"] == pytest.approx(2.9)
    assert out["sub_rewards"] == pytest.approx({"iou": 1.0, "confidence": 0.9, "format": 1.0})
    assert out["metadata"]["name"] == "det" and out["metadata"]["type"] == "visual_rft"
    assert out["metadata"]["errors"]["sample_parse_error"] is False
    assert out["metadata"]["execution_time"] >= 0


def test_run_parse_failure_is_a_flag_not_an_error(api_client):
    body = {"grader": DETECTION, "model_sample": "<answer>two planes</answer>", "item": {"solution": SOLUTION}}
    r = api_client.post(f"{BASE}/run", json=body)
    assert r.status_code == 200
    assert r.json()["reward"] == 0.0
    assert r.json()["metadata"]["errors"]["sample_parse_error"] is True


def test_run_with_resized_image_size(api_client):
    body = {
        "grader": {**DETECTION, "coords": "pixels_resized"},
        "model_sample": "<think>x</think><answer>[{'Position': [64.4, 47.6, 128.8, 95.2], 'Confidence': 1}]</answer>",
        "item": {"solution": SOLUTION},
        "resized_image_size": [644, 476],
    }
    r = api_client.post(f"{BASE}/run", json=body)
    assert r.status_code == 200
    assert r.json()["sub_rewards"]["iou"] == pytest.approx(1.0)


def test_python_grader_disabled_by_default(api_client):
    r = api_client.post(f"{BASE}/validate", json={"grader": PYTHON})
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "python_grader_disabled"
    assert "VRFT_PYTHON_GRADER_ENABLED" in error["message"]


def test_python_grader_runs_when_enabled(api_client):
    api_client.app.dependency_overrides[python_grader_enabled] = lambda: True
    r = api_client.post(f"{BASE}/run", json={"grader": PYTHON, "model_sample": "x", "item": {}})
    assert r.status_code == 200
    assert r.json()["reward"] == 0.5


def test_graders_need_a_key(anon_client):
    r = anon_client.post(f"{BASE}/validate", json={"grader": DETECTION})
    assert r.status_code == 401
