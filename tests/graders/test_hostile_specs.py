"""Hostile grader specs (issue 11, class 5): deep nesting is a named 422, overflow is a flag with reward 0.

Each case goes through the functions (``validate_grader`` / ``score``) and the two HTTP endpoints,
because the defects were in what runs before the checks (serialisation) and after them (the sum).
"""

import json
import math

import pytest

from app.errors import ErrorCode, ServiceError
from app.graders import score, validate_grader
from app.graders.spec import MAX_DEPTH, MAX_JSON_DEPTH

BASE = "/v1/fine_tuning/alpha/graders"
GOOD = "<think>x</think><answer>cat</answer>"


def nested_multi(levels: int) -> dict:
    grader = {"type": "format", "name": "f"}
    for i in range(levels):
        grader = {"type": "multi", "name": f"m{i}", "graders": {"a": grader}, "calculate_output": "a"}
    return grader


def deep_schema(levels: int) -> dict:
    schema: dict = {"type": "object"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"a": schema}}
    return {"type": "json_schema", "name": "j", "schema": schema}


# 300 multis and 300 schema levels: past pydantic's serialisation limit (~200), which used to raise
# a bare ValueError before the depth check; 5000 is past Python's recursion limit.
DEEP = [
    pytest.param(nested_multi(MAX_DEPTH + 1), "grader" + ".graders.a" * (MAX_DEPTH + 1), "nested deeper than 8",
                 id="multi-just-past"),
    pytest.param(nested_multi(300), "grader" + ".graders.a" * (MAX_DEPTH + 1), "nested deeper than 8", id="multi-300"),
    pytest.param(nested_multi(5000), "grader" + ".graders.a" * (MAX_DEPTH + 1), "nested deeper than 8",
                 id="multi-5000"),
    pytest.param(deep_schema(300), None, f"nested deeper than {MAX_JSON_DEPTH}", id="schema-300"),
]


@pytest.mark.parametrize("spec, param, message", DEEP)
def test_deep_nesting_is_a_named_invalid_grader(spec, param, message):
    for call in (lambda: validate_grader(spec), lambda: score(spec, [{"output_text": GOOD}], [{}])):
        with pytest.raises(ServiceError) as info:
            call()
        assert info.value.code == ErrorCode.INVALID_GRADER
        assert message in info.value.message
        if param is not None:
            assert info.value.param == param
        else:
            assert info.value.param.startswith("grader.schema.properties.a")


def test_nesting_within_the_limits_still_validates():
    assert validate_grader(nested_multi(MAX_DEPTH))["type"] == "multi"
    assert validate_grader(deep_schema(20))["type"] == "json_schema"


def _post(client, path, grader, **extra):
    body = json.dumps({"grader": grader, **extra})
    return client.post(f"{BASE}/{path}", content=body, headers={"content-type": "application/json"})


def nested_multi_text(levels: int) -> str:
    """``nested_multi`` as JSON text, written directly: json.dumps itself overflows on 5000 levels."""
    text = '{"type": "format", "name": "f"}'
    for i in range(levels):
        text = f'{{"type": "multi", "name": "m{i}", "graders": {{"a": {text}}}, "calculate_output": "a"}}'
    return text


@pytest.mark.parametrize("spec, param, message", DEEP[:2] + DEEP[3:])
@pytest.mark.parametrize("path", ["validate", "run"])
def test_deep_nesting_through_the_endpoints(api_client, spec, param, message, path):
    r = _post(api_client, path, spec, **({"model_sample": GOOD, "item": {}} if path == "run" else {}))
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_grader" and message in error["message"]
    if param is not None:
        assert error["param"] == param


OVERFLOWING = [
    pytest.param({"type": "visual_rft", "name": "c", "task": "classification",
                  "weights": {"accuracy": 1e308, "format": 1e308}}, id="preset-weights"),
    pytest.param({"type": "multi", "name": "m", "graders": {"a": {"type": "format"}},
                  "calculate_output": "a * 1e308 * 10"}, id="multi-formula"),
    pytest.param({"type": "multi", "name": "m", "calculate_output": "p * 10", "graders": {"p": {
        "type": "visual_rft", "task": "classification", "weights": {"accuracy": 1e308, "format": 1e308}}}},
        id="preset-inside-multi"),
]


@pytest.mark.parametrize("grader", OVERFLOWING)
def test_overflowing_weights_are_a_flag_with_reward_zero(grader):
    result = score(grader, [{"output_text": GOOD}, {"output_text": "no tags"}], [{"solution": "cat"}] * 2)
    assert result.rewards[0] == 0.0 and result.flags["invalid_formula_result"][0] is True
    assert all(math.isfinite(r) for r in result.rewards)
    assert all(math.isfinite(v) for values in result.sub_rewards.values() for v in values)


@pytest.mark.parametrize("grader", OVERFLOWING)
def test_overflowing_weights_through_run(api_client, grader):
    r = _post(api_client, "run", grader, model_sample=GOOD, item={"solution": "cat"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["reward"] == 0.0
    assert out["metadata"]["errors"]["invalid_formula_result"] is True
    assert all(isinstance(v, float) for v in out["sub_rewards"].values())


def test_large_finite_weights_that_do_not_overflow_still_score():
    grader = {"type": "visual_rft", "name": "c", "task": "classification", "weights": {"accuracy": 1e300}}
    result = score(grader, [{"output_text": GOOD}], [{"solution": "cat"}])
    assert result.rewards == [pytest.approx(1e300 + 1.0)]
    assert result.flags["invalid_formula_result"] == [False]


@pytest.mark.parametrize("grader, answer", [
    ({"type": "visual_rft", "name": "g", "task": "grounding"}, "[-1e200, -1e200, 1e200, 1e200]"),
    ({"type": "visual_rft", "name": "d", "task": "detection"},
     "[{'Position': [-1e200, -1e200, 1e200, 1e200], 'Confidence': 1}]"),
    ({"type": "point_in_box", "name": "p"}, "[1e200, 5]"),
    ({"type": "count_match", "name": "n"}, "9" * 5000),  # int() refuses more than 4300 digits
])
def test_numbers_beyond_any_frame_are_parse_errors_not_nan(grader, answer):
    result = score(grader, [{"output_text": f"<think>x</think><answer>{answer}</answer>"}],
                   [{"solution": "<answer>[0, 0, 10, 10]</answer>" if grader["type"] != "count_match" else "3"}])
    assert result.flags["sample_parse_error"] == [True]
    assert all(math.isfinite(v) for values in result.sub_rewards.values() for v in values)


@pytest.mark.parametrize("path", ["validate", "run"])
def test_a_grader_deeper_than_python_recursion_is_a_4xx(api_client, path):
    extra = ', "model_sample": "x", "item": {}' if path == "run" else ""
    body = f'{{"grader": {nested_multi_text(5000)}{extra}}}'
    r = api_client.post(f"{BASE}/{path}", content=body, headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["error"]["code"] in ("invalid_grader", "bad_request")  # the JSON parser may refuse first
