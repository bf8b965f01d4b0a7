"""The standalone vision graders, each against a few literal completions."""

import pytest

from .helpers import completion, run_one


def test_format_default_pattern():
    grader = {"type": "format", "name": "fmt"}
    assert run_one(grader, "<think>a\nb</think>  <answer>x</answer>", {})[0] == 1.0
    assert run_one(grader, "<answer>x</answer>", {})[0] == 0.0
    assert run_one(grader, "<think>a</think><answer>x</answer> trailing", {})[0] == 0.0  # fullmatch
    assert run_one(grader, "preamble <think>a</think><answer>x</answer>", {})[0] == 0.0


def test_format_custom_pattern():
    grader = {"type": "format", "name": "fmt", "pattern": r"<answer>\d+</answer>"}
    assert run_one(grader, "<answer>42</answer>", {})[0] == 1.0
    assert run_one(grader, "<answer>forty</answer>", {})[0] == 0.0


def test_label_match_options():
    grader = {"type": "label_match", "name": "lbl", "reference": "{{item.label}}",
              "normalize": {"remove_spaces": False, "remove_punctuation": False}}
    assert run_one(grader, completion("Golden  Retriever"), {"label": "golden retriever"})[0] == 1.0
    assert run_one(grader, completion("golden-retriever"), {"label": "golden retriever"})[0] == 0.0
    raw = {"type": "label_match", "name": "lbl", "reference": "{{item.label}}", "extract_answer": False}
    assert run_one(raw, "Cat", {"label": "cat"})[0] == 1.0


BOXES_GT = {"boxes": [[10, 10, 50, 50], [60, 60, 90, 90]]}  # a JSON list in the row, 0–100 scale


def test_box_iou_with_raw_list_reference_and_norm1():
    grader = {"type": "box_iou", "name": "iou", "reference": "{{item.boxes}}",
              "coords": "norm1", "reference_coords": "pixels"}
    text = completion("[{'bbox_2d': [0.1, 0.1, 0.5, 0.5]}, {'bbox_2d': [0.6, 0.6, 0.9, 0.9]}]")
    reward, _, flags = run_one(grader, text, BOXES_GT, image_size=[100, 100])
    assert reward == pytest.approx(1.0) and not flags


def test_box_confidence_requires_confidences():
    grader = {"type": "box_confidence", "name": "conf", "reference": "{{item.boxes}}",
              "coords": "pixels", "reference_coords": "pixels"}
    reward, _, flags = run_one(grader, completion("[[10, 10, 50, 50]]"), BOXES_GT, image_size=[100, 100])
    assert reward == 0.0 and flags == {"sample_parse_error"}
    text = completion("[{'Position': [10, 10, 50, 50], 'Confidence': 0.75}]")
    assert run_one(grader, text, BOXES_GT, image_size=[100, 100])[0] == pytest.approx(0.75)


def test_grounding_iou_reference_parse_error():
    grader = {"type": "grounding_iou", "name": "g"}
    reward, _, flags = run_one(grader, completion("[1, 2, 3, 4]"), {"solution": "somewhere"})
    assert reward == 0.0 and flags == {"reference_parse_error"}


@pytest.mark.parametrize(
    "answer, expected",
    [("(150, 150)", 1.0), ("{'point_2d': [350, 350]}", 1.0), ("[500, 500]", 0.0), ("(200, 200)", 1.0)],
)
def test_point_in_box(answer, expected):
    grader = {"type": "point_in_box", "name": "pt"}
    item = {"solution": "<answer>[{'Position': [100, 100, 200, 200]}, {'Position': [300, 300, 400, 400]}]</answer>"}
    assert run_one(grader, completion(answer), item)[0] == expected


def test_point_in_box_unparseable_point():
    reward, _, flags = run_one({"type": "point_in_box", "name": "pt"}, completion("left"),
                               {"solution": "[0, 0, 10, 10]"})
    assert reward == 0.0 and flags == {"sample_parse_error"}


@pytest.mark.parametrize(
    "answer, truth, tolerance, expected",
    [
        ("3", 3, 0, 1.0),
        ("4", 3, 0, 0.0),
        ("4", 3, 1, 1.0),
        ("[{'Position': [1, 2, 3, 4], 'Confidence': 1}, {'Position': [5, 6, 7, 8], 'Confidence': 1}]", "2", 0, 1.0),
        ("No Objects", "[]", 0, 1.0),
    ],
)
def test_count_match(answer, truth, tolerance, expected):
    grader = {"type": "count_match", "name": "n", "reference": "{{item.count}}", "tolerance": tolerance}
    assert run_one(grader, completion(answer), {"count": truth})[0] == expected


def test_count_match_garbage():
    grader = {"type": "count_match", "name": "n", "reference": "{{item.count}}"}
    assert run_one(grader, completion("a few"), {"count": 2})[2] == {"sample_parse_error"}


SCHEMA = {
    "type": "object",
    "properties": {"label": {"type": "string"}, "count": {"type": "integer", "minimum": 0}},
    "required": ["label", "count"],
    "additionalProperties": False,
}


@pytest.mark.parametrize(
    "answer, expected, flags",
    [
        ('{"label": "cat", "count": 2}', 1.0, set()),
        ('{"label": "cat", "count": -1}', 0.0, set()),
        ('{"label": "cat"}', 0.0, set()),
        ('{"label": "cat", "count": 2, "extra": 1}', 0.0, set()),
        ("{label: cat}", 0.0, {"sample_parse_error"}),
    ],
)
def test_json_schema(answer, expected, flags):
    grader = {"type": "json_schema", "name": "js", "schema": SCHEMA}
    reward, _, got = run_one(grader, completion(answer), {})
    assert (reward, got) == (expected, flags)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from app.graders.spec import DEFAULT_FORMAT  # noqa: E402
from app.graders.text_leaves import think_answer_format  # noqa: E402

_PIECES = ["<think>", "</think>", "<answer>", "</answer>", " ", "\n", "\u2003", "x", "<", ">", "/", "think"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=14).map("".join))
def test_linear_format_check_equals_the_regex(text):
    import re

    assert think_answer_format(text) == (re.fullmatch(DEFAULT_FORMAT, text, re.S) is not None)


def test_format_check_is_linear_on_hostile_input():
    import time

    started = time.perf_counter()
    assert not think_answer_format("<think>" + "</think><answer>" * 20000)
    assert time.perf_counter() - started < 1.0
