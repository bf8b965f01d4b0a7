"""Parquet in Hugging Face's layout: an ``image`` struct {bytes, path}, ``problem``, ``solution``."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from app.datasets import Limits, iter_examples, validate_dataset
from tests.datasets.builders import codes, image_bytes

RED = image_bytes((8, 6), color=(255, 0, 0))
BLUE = image_bytes((5, 9), "JPEG", color=(0, 0, 255))
IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
# What datasets writes into the schema metadata, so the file also loads back as an Image feature.
HF_METADATA = {b"huggingface": json.dumps({"info": {"features": {
    "image": {"_type": "Image"},
    "problem": {"dtype": "string", "_type": "Value"},
    "solution": {"dtype": "string", "_type": "Value"},
}}}).encode()}


def write_hf_parquet(path, images, problems, solutions, row_group_size=2, **extra):
    columns = {
        "image": pa.array(images, IMAGE),
        "problem": pa.array(problems, pa.string()),
        "solution": pa.array(solutions, pa.string()),
        **{k: pa.array(v) for k, v in extra.items()},
    }
    table = pa.table(columns).replace_schema_metadata(HF_METADATA)
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def test_good_parquet_yields_examples(tmp_path):
    path = write_hf_parquet(
        tmp_path / "train.parquet",
        [{"bytes": RED, "path": "red.png"}, {"bytes": BLUE, "path": None}, {"bytes": RED, "path": "r.png"}],
        ["Colour?", "And this?", "Again?"],
        ["<answer>red</answer>", "<answer>blue</answer>", "<answer>red</answer>"],
        category=["a", "b", "c"],
    )
    report = validate_dataset(path, "train.parquet")
    assert report.ok, report.to_dict()
    assert report.format == "parquet"
    assert (report.rows_read, report.rows_valid, report.image_count) == (3, 3, 3)
    assert report.reference_fields == ["problem", "solution", "category"]
    examples = list(iter_examples(path, "train.parquet"))
    assert examples[1] == {
        "id": "line-2",
        "prompt": "And this?",
        "image": BLUE,
        "image_size": [5, 9],
        "item": {"problem": "And this?", "solution": "<answer>blue</answer>", "category": "b"},
    }
    assert [e["image"] for e in examples] == [RED, BLUE, RED]


def test_parquet_rows_with_problems(tmp_path):
    path = write_hf_parquet(
        tmp_path / "train.parquet",
        [{"bytes": RED, "path": None}, {"bytes": None, "path": "/home/me/x.png"}, {"bytes": b"junk", "path": None},
         {"bytes": RED, "path": None}],
        ["ok", "no bytes", "bad image", None],
        ["<answer>[{'Position': [1, 2, 3], 'Confidence': 1}]</answer>", "s", "s", "s"],
    )
    report = validate_dataset(path, "train.parquet")
    assert codes(report) == [
        (1, "solution", "box_arity"),
        (2, "image", "image_not_found"),
        (3, "image", "image_undecodable"),
        (4, "problem", "missing_field"),
    ]
    assert report.rows_read == 4 and report.rows_valid == 0


def test_parquet_missing_column(tmp_path):
    table = pa.table({"image": pa.array([{"bytes": RED, "path": None}], IMAGE), "problem": ["q"]})
    pq.write_table(table, tmp_path / "t.parquet")
    report = validate_dataset(tmp_path / "t.parquet", "t.parquet")
    assert codes(report) == [(None, "solution", "missing_field")]


def test_parquet_image_column_of_wrong_type(tmp_path):
    pq.write_table(pa.table({"image": [1], "problem": ["q"], "solution": ["s"]}), tmp_path / "t.parquet")
    report = validate_dataset(tmp_path / "t.parquet", "t.parquet")
    assert codes(report) == [(None, "image", "invalid_field")]


def test_parquet_with_plain_binary_image_column(tmp_path):
    table = pa.table({"image": pa.array([RED], pa.binary()), "problem": ["q"], "solution": ["s"]})
    pq.write_table(table, tmp_path / "t.parquet")
    assert validate_dataset(tmp_path / "t.parquet", "t.parquet").ok


def test_parquet_too_many_rows(tmp_path):
    path = write_hf_parquet(tmp_path / "t.parquet", [{"bytes": RED, "path": None}] * 5, ["q"] * 5, ["s"] * 5)
    report = validate_dataset(path, "t.parquet", Limits(max_rows=3))
    assert codes(report) == [(4, None, "too_many_rows")]
    assert report.rows_read == 3 and report.rows_valid == 3


def test_corrupt_parquet(write, tmp_path):
    good = write_hf_parquet(tmp_path / "t.parquet", [{"bytes": RED, "path": None}], ["q"], ["s"]).read_bytes()
    report = validate_dataset(write("bad.parquet", good[:200]), "bad.parquet")
    assert codes(report) == [(None, None, "parquet_invalid")]
    report = validate_dataset(write("named.parquet", b'{"image": 1}\n'), "named.parquet")
    assert codes(report) == [(None, None, "parquet_invalid")]


def test_empty_parquet(tmp_path):
    path = write_hf_parquet(tmp_path / "t.parquet", [], [], [])
    assert codes(validate_dataset(path, "t.parquet")) == [(None, None, "empty_file")]


def test_parquet_written_by_hugging_face_datasets(tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict(
        {"image": [{"bytes": RED, "path": None}, {"bytes": BLUE, "path": None}],
         "problem": ["p1", "p2"], "solution": ["<answer>red</answer>", "<answer>blue</answer>"]},
        features=datasets.Features({
            "image": datasets.Image(), "problem": datasets.Value("string"), "solution": datasets.Value("string"),
        }),
    )
    ds.to_parquet(str(tmp_path / "hf.parquet"))
    report = validate_dataset(tmp_path / "hf.parquet", "hf.parquet")
    assert report.ok, report.to_dict()
    assert [e["image_size"] for e in iter_examples(tmp_path / "hf.parquet", "hf.parquet")] == [[8, 6], [5, 9]]
