"""Numbers that are not numbers, repeated keys, and images the model's processor refuses: each a
problem naming its line and field, in every format, so nothing stored can fail to render later."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from app.datasets import Limits, validate_dataset
from tests.datasets.builders import data_url, image_bytes, jsonl_bytes, visual_row, write_zip

GOOD = json.dumps(visual_row(data_url(image_bytes())))


def problems(report) -> list[tuple]:
    return [(p.line, p.field, str(p.code)) for p in report.problems]


def assert_renders(report) -> None:
    # What the files API stores and serves: it must be strict JSON (no NaN/Infinity tokens).
    json.dumps(report.to_dict(), allow_nan=False)


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e400", "-1e999"])
def test_non_finite_number_in_a_reference_field(write, token):
    bad = GOOD[:-1] + f', "score": {token}}}'
    report = validate_dataset(write("a.jsonl", jsonl_bytes([GOOD, bad])), "a.jsonl")
    assert problems(report) == [(2, "score", "invalid_number")]
    assert "line 2" in report.problems[0].message and not report.ok
    assert_renders(report)


def test_non_finite_number_deep_inside_names_its_path(write):
    bad = GOOD[:-1] + ', "meta": {"boxes": [[1, 2], [3, NaN]]}}'
    report = validate_dataset(write("a.jsonl", jsonl_bytes([bad])), "a.jsonl")
    assert problems(report) == [(1, "meta.boxes[1][1]", "invalid_number")]


@pytest.mark.parametrize("number", [str(2**63), str(-(2**63) - 1), "9" * 5000])
def test_integer_out_of_64_bit_range(write, number):
    bad = GOOD[:-1] + f', "id": {number}}}'
    report = validate_dataset(write("a.jsonl", jsonl_bytes([bad])), "a.jsonl")
    assert problems(report) == [(1, "id", "invalid_number")]
    assert len(report.problems[0].message) < 300  # a 5,000-digit number is not echoed whole
    assert_renders(report)


def test_largest_64_bit_integers_pass(write):
    row = visual_row(data_url(image_bytes()), low=-(2**63), high=2**63 - 1, ratio=1.5e300)
    assert validate_dataset(write("a.jsonl", jsonl_bytes([row])), "a.jsonl").ok


@pytest.mark.parametrize("line, field", [
    ('"solution": "<answer>a</answer>", "solution": "<answer>b</answer>"', "solution"),
    ('"meta": {"k": 1, "k": 2}', "meta.k"),
])
def test_duplicate_keys(write, line, field):
    bad = GOOD[:-1] + ", " + line + "}"
    report = validate_dataset(write("a.jsonl", jsonl_bytes([GOOD, bad])), "a.jsonl")
    assert problems(report) == [(2, field, "duplicate_key")]


def test_openai_layout_is_checked_too(write):
    row = json.dumps({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "q"}, {"type": "image_url", "image_url": {"url": data_url(image_bytes())}}]}],
        "label": "cat", "weight": "__INF__"}).replace('"__INF__"', "Infinity")
    report = validate_dataset(write("a.jsonl", jsonl_bytes([row])), "a.jsonl")
    assert problems(report) == [(1, "weight", "invalid_number")]


def test_archive_manifest_lines_are_checked(tmp_path):
    manifest = jsonl_bytes([json.dumps(visual_row("a.png")), json.dumps(visual_row("a.png"))[:-1] + ', "w": NaN}'])
    path = write_zip(tmp_path / "set.zip", {"train.jsonl": manifest, "a.png": image_bytes()})
    report = validate_dataset(path, "set.zip")
    assert problems(report) == [(2, "w", "invalid_number")]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_parquet_non_finite_float_in_a_reference_field(tmp_path, value):
    table = pa.table({
        "image": [{"bytes": image_bytes(), "path": None}] * 2,
        "problem": ["q", "q"], "solution": ["<answer>a</answer>"] * 2, "score": [0.5, value],
    })
    pq.write_table(table, tmp_path / "t.parquet")
    report = validate_dataset(tmp_path / "t.parquet", "t.parquet")
    assert problems(report) == [(2, "score", "invalid_number")]
    assert_renders(report)


def test_detection_box_with_an_infinite_coordinate(write):
    row = visual_row(data_url(image_bytes()), solution="<answer>[{'Position': [1, 2, 1e999, 4]}]</answer>")
    report = validate_dataset(write("a.jsonl", jsonl_bytes([row])), "a.jsonl")
    assert problems(report) == [(1, "solution", "box_arity")]


@pytest.mark.parametrize("size", [(1, 300), (300, 1), (3, 601)])
def test_image_aspect_ratio_the_processor_refuses(write, size):
    rows = [visual_row(data_url(image_bytes())), visual_row(data_url(image_bytes(size=size)))]
    report = validate_dataset(write("a.jsonl", jsonl_bytes(rows)), "a.jsonl")
    assert problems(report) == [(2, "image", "image_aspect_ratio")]
    assert f"{size[0]}×{size[1]}" in report.problems[0].message


@pytest.mark.parametrize("size", [(1, 200), (1, 1), (2, 3), (600, 3)])
def test_shapes_the_processor_takes_pass(write, size):
    report = validate_dataset(write("a.jsonl", jsonl_bytes([visual_row(data_url(image_bytes(size=size)))])), "a.jsonl")
    assert report.ok, report.problems


def test_aspect_ratio_check_matches_the_qwen_processor():
    """Our check and transformers' smart_resize agree on every shape near the limit. Imported here
    only: the API itself never imports transformers."""
    smart_resize = pytest.importorskip("transformers.models.qwen2_vl.image_processing_pil_qwen2_vl").smart_resize
    from app.datasets.images import check_image

    for short in (1, 2, 3, 7):
        for long in range(short * 199, short * 201 + 2):
            try:
                smart_resize(short, long)
                processor_ok = True
            except ValueError:
                processor_ok = False
            ours_ok = True
            try:
                check_image(image_bytes(size=(long, short)), "image", Limits())
            except Exception:
                ours_ok = False
            assert ours_ok == processor_ok, (short, long)


@pytest.mark.parametrize("extra, field", [
    ('"note": "a\\ud800b"', "note"),
    ('"meta": {"x": ["ok", "\\udfff"]}', "meta.x[1]"),
    ('"\\ud800": 1', "\\ud800"),
])
def test_lone_surrogates_are_invalid_utf8(write, extra, field):
    bad = GOOD[:-1] + ", " + extra + "}"
    report = validate_dataset(write("a.jsonl", jsonl_bytes([bad])), "a.jsonl")
    stored = report.to_dict()
    assert [(p["line"], p["field"], p["code"]) for p in stored["problems"]] == [(1, field, "invalid_utf8")]
    json.dumps(stored, ensure_ascii=False).encode("utf-8")  # renders: the surrogate is escaped


def test_paired_surrogates_and_nul_in_text_are_fine(write):
    row = GOOD[:-1] + ', "emoji": "\\ud83d\\ude00", "nul": "a\\u0000b"}'
    report = validate_dataset(write("a.jsonl", jsonl_bytes([row])), "a.jsonl")
    assert report.ok, report.problems
