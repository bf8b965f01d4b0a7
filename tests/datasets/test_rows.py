"""Row layouts: OpenAI RFT message structure and Visual-RFT detection solutions (box arity)."""

from __future__ import annotations

import pytest

from app.datasets import iter_examples, validate_dataset
from app.datasets.rows import box_problems
from tests.datasets.builders import codes, data_url, image_bytes, jsonl_bytes, openai_row, visual_row

URL = data_url(image_bytes())
DETECTION = (
    "<answer>[{'Position': [254, 303, 291, 365], 'Confidence': 1}, {'Position': [10, 20, 30], 'Confidence': 0.9}]"
    "</answer>"
)


def validate_rows(write, rows):
    return validate_dataset(write("a.jsonl", jsonl_bytes(rows)), "a.jsonl")


def test_box_with_wrong_arity_in_visual_rft_solution(write):
    report = validate_rows(write, [visual_row(URL), visual_row(URL, solution=DETECTION)])
    assert codes(report) == [(2, "solution", "box_arity")]
    assert "box 2 ('Position': [10, 20, 30]) is not 4 numbers" in report.problems[0].message
    assert report.rows_valid == 1


def test_box_arity_in_openai_reference_field(write):
    report = validate_rows(write, [openai_row(URL, solution="<answer>[{'bbox_2d': [1, 2, 3, 4, 5]}]</answer>")])
    assert codes(report) == [(1, "solution", "box_arity")]


@pytest.mark.parametrize(
    "solution",
    [
        "<answer>[{'Position': [254, 303, 291, 365], 'Confidence': 1}]</answer>",
        '<answer>[{"bbox_2d": [1.5, 2, 3, 4], "label": "cat", "ok": true}]</answer>',
        "<answer>737-800</answer>",
        "<answer>(10,20),(30,40)</answer>",
        "<answer>[not, a, literal</answer>",
        "<answer>[]</answer>",
    ],
)
def test_solutions_without_bad_boxes_pass(solution):
    assert box_problems(solution, "solution") == []


@pytest.mark.parametrize("box", ["[1, 2, 3]", "[1, 2, 3, 'x']", "[1, 2, 3, True]", "'1,2,3,4'", "None"])
def test_boxes_that_are_not_four_numbers(box):
    problems = box_problems(f"<answer>[{{'Position': {box}, 'Confidence': 1}}]</answer>", "solution")
    assert [p.code for p in problems] == ["box_arity"]


def test_openai_row_without_image(write):
    row = {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], "answer": "x"}
    report = validate_rows(write, [row])
    assert codes(report) == [(1, "messages", "missing_field")]
    assert "exactly one image" in report.problems[0].message


def test_openai_row_with_two_images(write):
    row = openai_row(URL)
    row["messages"][0]["content"].append({"type": "image_url", "image_url": {"url": URL}})
    report = validate_rows(write, [row])
    assert codes(report) == [(1, "messages[0].content[2].image_url.url", "invalid_field")]


def test_openai_image_field_path_names_the_part(write):
    row = openai_row(data_url(b"not an image"))
    report = validate_rows(write, [row])
    assert codes(report) == [(1, "messages[0].content[1].image_url.url", "image_undecodable")]


def test_openai_prompt_joins_user_text_and_skips_other_roles(write):
    row = {
        "messages": [
            {"role": "developer", "content": "You are terse."},
            {"role": "user", "content": [
                {"type": "text", "text": "Look:"},
                {"type": "image_url", "image_url": {"url": URL}},
                {"type": "text", "text": "what species?"},
            ]},
        ],
        "species": "heron",
    }
    report = validate_rows(write, [row])
    assert report.ok, report.to_dict()
    example = next(iter_examples(write("b.jsonl", jsonl_bytes([row])), "b.jsonl"))
    assert example["prompt"] == "Look:\nwhat species?"
    assert example["item"] == {"species": "heron"}


def test_openai_unknown_part_type_and_bad_role(write):
    row = openai_row(URL)
    row["messages"][0]["content"].append({"type": "audio", "audio": "..."})
    row["messages"].append({"content": "no role"})
    report = validate_rows(write, [row])
    assert codes(report) == [
        (1, "messages[0].content[2].type", "invalid_field"),
        (1, "messages[1].role", "missing_field"),
    ]


def test_visual_row_field_types(write):
    report = validate_rows(write, [visual_row(URL, problem=3), visual_row(42)])
    assert codes(report) == [(1, "problem", "invalid_field"), (2, "image", "invalid_field")]
