"""Bare JSONL files in both layouts: line-level problems, counts, and the examples they yield."""

from __future__ import annotations

import json

import pytest

from app.datasets import Limits, iter_examples, validate_dataset
from app.errors import ServiceError
from tests.datasets.builders import codes, data_url, image_bytes, jsonl_bytes, openai_row, visual_row

PNG = image_bytes((8, 6))
GOOD_VISUAL = visual_row(data_url(PNG))
GOOD_OPENAI = openai_row(data_url(PNG), text="Which bird is this?", answer="heron")


def test_empty_file(write):
    report = validate_dataset(write("a.jsonl", b""), "a.jsonl")
    assert codes(report) == [(None, None, "empty_file")]
    assert not report.ok and report.rows_read == 0


def test_blank_lines_only_is_empty(write):
    report = validate_dataset(write("a.jsonl", b"\n  \n\r\n"), "a.jsonl")
    assert codes(report) == [(None, None, "empty_file")]


def test_empty_file_raises_in_iter_examples(write):
    with pytest.raises(ServiceError) as caught:
        list(iter_examples(write("a.jsonl", b""), "a.jsonl"))
    assert caught.value.code.code == "dataset_invalid"


def test_non_utf8_line(write):
    path = write("a.jsonl", jsonl_bytes([GOOD_VISUAL, b'{"problem": "caf\xe9"}']))
    report = validate_dataset(path, "a.jsonl")
    assert codes(report) == [(2, None, "invalid_utf8")]
    assert "0xe9" in report.problems[0].message and report.problems[0].message.startswith("line 2:")


def test_line_that_is_not_json(write):
    report = validate_dataset(write("a.jsonl", jsonl_bytes([GOOD_VISUAL, "{'image': oops"])), "a.jsonl")
    assert codes(report) == [(2, None, "invalid_json")]


def test_line_that_is_not_an_object(write):
    report = validate_dataset(write("a.jsonl", jsonl_bytes([GOOD_VISUAL, "[1, 2]"])), "a.jsonl")
    assert codes(report) == [(2, None, "not_an_object")]


def test_missing_messages_in_openai_file(write):
    path = write("a.jsonl", jsonl_bytes([GOOD_OPENAI, {"answer": "heron"}]))
    report = validate_dataset(path, "a.jsonl")
    assert report.format == "openai_rft_jsonl"
    assert codes(report) == [(2, "messages", "missing_field")]


def test_missing_image_and_problem_in_visual_file(write):
    row = {"solution": "<answer>cat</answer>", "problem": "What?"}
    path = write("a.jsonl", jsonl_bytes([GOOD_VISUAL, row, {"image": data_url(PNG), "solution": "x"}]))
    report = validate_dataset(path, "a.jsonl")
    assert report.format == "visual_rft_jsonl"
    assert codes(report) == [(2, "image", "missing_field"), (3, "problem", "missing_field")]


def test_row_in_no_known_layout(write):
    report = validate_dataset(write("a.jsonl", jsonl_bytes([{"question": "?"}])), "a.jsonl")
    assert codes(report) == [(1, None, "missing_field")]
    assert "messages" in report.problems[0].message


def test_line_too_long_is_skipped_and_reading_goes_on(write):
    long_row = json.dumps(visual_row("data:image/png;base64," + "A" * 5000))
    path = write("a.jsonl", jsonl_bytes([long_row, GOOD_VISUAL]))
    report = validate_dataset(path, "a.jsonl", Limits(max_line_bytes=1000))
    assert codes(report) == [(1, None, "line_too_long")]
    assert report.rows_read == 2 and report.rows_valid == 1


def test_too_many_rows_stops_reading(write):
    path = write("a.jsonl", jsonl_bytes([GOOD_VISUAL] * 5))
    report = validate_dataset(path, "a.jsonl", Limits(max_rows=3))
    assert codes(report) == [(4, None, "too_many_rows")]
    assert report.rows_read == 3 and report.rows_valid == 3


def test_mixed_good_and_bad_lines(write):
    rows = [
        GOOD_VISUAL,
        "not json",
        visual_row(data_url(b"plain text, no image", "image/png")),
        GOOD_VISUAL,
        "",  # blank lines are not rows
        visual_row(data_url(PNG), problem=""),
        GOOD_VISUAL,
    ]
    report = validate_dataset(write("a.jsonl", jsonl_bytes(rows)), "a.jsonl")
    assert report.rows_read == 6
    assert report.rows_valid == 3
    assert report.image_count == 4  # the row with an empty problem still has a good image
    assert codes(report) == [
        (2, None, "invalid_json"),
        (3, "image", "image_undecodable"),
        (6, "problem", "invalid_field"),
    ]
    assert not report.ok
    assert [e["id"] for e in iter_examples(write("a.jsonl", jsonl_bytes(rows)), "a.jsonl")] == [
        "line-1", "line-4", "line-7",
    ]


def test_good_visual_jsonl_yields_examples(write):
    rows = [GOOD_VISUAL, visual_row(data_url(image_bytes((5, 7), "JPEG"), "image/jpeg"), id="r2", category="x")]
    path = write("a.jsonl", b"\xef\xbb\xbf" + jsonl_bytes(rows))  # with a BOM, as Windows editors write
    report = validate_dataset(path, "a.jsonl")
    assert report.ok, report.to_dict()
    assert (report.rows_read, report.rows_valid, report.image_count) == (2, 2, 2)
    assert report.reference_fields == ["problem", "solution"]
    examples = list(iter_examples(path, "a.jsonl"))
    assert examples[0] == {
        "id": "line-1",
        "prompt": "What is this?",
        "image": PNG,
        "image_size": [8, 6],
        "item": {"problem": "What is this?", "solution": "<answer>cat</answer>"},
    }
    assert examples[1]["id"] == "r2" and examples[1]["image_size"] == [5, 7]
    assert examples[1]["item"]["category"] == "x"


def test_good_openai_jsonl_yields_examples(write):
    path = write("a.jsonl", jsonl_bytes([GOOD_OPENAI, GOOD_OPENAI]))
    report = validate_dataset(path, "a.jsonl")
    assert report.ok and report.format == "openai_rft_jsonl"
    assert report.reference_fields == ["answer"]
    example = next(iter_examples(path, "a.jsonl"))
    assert example["prompt"] == "Which bird is this?"
    assert example["image"] == PNG and example["item"] == {"answer": "heron"}


def test_report_keeps_first_problems_and_counts_all(write):
    path = write("a.jsonl", jsonl_bytes(["nope"] * 10))
    report = validate_dataset(path, "a.jsonl", Limits(max_problems=3))
    assert report.problem_count == 10
    assert [p.line for p in report.problems] == [1, 2, 3]
    body = json.loads(json.dumps(report.to_dict()))
    assert body["problems_truncated"] is True and body["problem_count"] == 10 and body["ok"] is False
