"""Detection, ordering through the decode pool, early close, and arbitrary bytes never crashing."""

from __future__ import annotations

import io
import tarfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.datasets import Limits, iter_examples, validate_dataset
from tests.datasets.builders import codes, data_url, image_bytes, jsonl_bytes, visual_row, write_zip


def test_binary_file_is_unsupported(write):
    report = validate_dataset(write("cat.jpg", image_bytes(fmt="JPEG")), "cat.jpg")
    assert codes(report) == [(None, None, "unsupported_format")]
    assert report.format == "unknown"


def test_utf16_file(write):
    report = validate_dataset(write("a.jsonl", '{"image": 1}\n'.encode("utf-16")), "a.jsonl")
    assert codes(report) == [(None, None, "invalid_utf8")]


@pytest.mark.parametrize("name, code", [("a.zip", "archive_invalid"), ("a.tar.gz", "archive_invalid"),
                                        ("a.parquet", "parquet_invalid")])
def test_name_promises_a_container_the_content_is_not(write, name, code):
    report = validate_dataset(write(name, b'{"image": "x"}\n'), name)
    assert codes(report) == [(None, None, code)]


def test_gzip_that_holds_no_tar(write):
    import gzip

    report = validate_dataset(write("a.jsonl.gz", gzip.compress(b'{"a": 1}\n')), "a.jsonl.gz")
    assert codes(report) == [(None, None, "unsupported_format")]


def test_content_decides_over_name(tmp_path):
    png = image_bytes()
    path = write_zip(tmp_path / "data.jsonl", {"d.jsonl": jsonl_bytes([visual_row("a.png")]), "a.png": png})
    report = validate_dataset(path, "data.jsonl")
    assert report.ok and report.format == "archive:visual_rft_jsonl"


def test_order_preserved_through_the_decode_pool(write):
    # Images of different sizes decode at different speeds; results must still come in row order.
    rows = []
    for i in range(60):
        if i % 7 == 3:
            rows.append(visual_row(data_url(b"bad")))
        else:
            side = 200 if i % 5 == 0 else 4 + i
            rows.append(visual_row(data_url(image_bytes((side, side + 1), "JPEG")), id=f"r{i}"))
    path = write("a.jsonl", jsonl_bytes(rows))
    report = validate_dataset(path, "a.jsonl")
    bad = [i + 1 for i in range(60) if i % 7 == 3]
    assert [p.line for p in report.problems] == bad
    ids = [e["id"] for e in iter_examples(path, "a.jsonl")]
    assert ids == [f"r{i}" for i in range(60) if i % 7 != 3]


def test_consumer_may_stop_early(write):
    rows = [visual_row(data_url(image_bytes((32, 32), "JPEG")))] * 100
    examples = iter_examples(write("a.jsonl", jsonl_bytes(rows)), "a.jsonl")
    assert next(examples)["image_size"] == [32, 32]
    examples.close()  # must not hang on the pool or leak the open file


def test_reference_fields_are_common_to_all_valid_rows(write):
    png = data_url(image_bytes())
    rows = [visual_row(png, a=1, b=2), visual_row(png, b=3), visual_row(png, a=1, b=2, c=3)]
    assert validate_dataset(write("a.jsonl", jsonl_bytes(rows)), "a.jsonl").reference_fields == [
        "problem", "solution", "b",
    ]


def _good_tar() -> bytes:
    path_free = io.BytesIO()
    with tarfile.open(fileobj=path_free, mode="w") as tf:
        for name, data in {"d.jsonl": jsonl_bytes([visual_row("a.png")]), "a.png": image_bytes()}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path_free.getvalue()


SEEDS = {
    "a.jsonl": jsonl_bytes([visual_row(data_url(image_bytes()))]),
    "a.tar": _good_tar(),
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(sorted(SEEDS)),
    flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=1, max_value=255)), max_size=6),
    cut=st.one_of(st.none(), st.integers(min_value=0)),
)
def test_damaged_files_give_a_report_not_an_exception(tmp_path, name, flips, cut):
    data = bytearray(SEEDS[name])
    for position, mask in flips:
        data[position % len(data)] ^= mask
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    path = tmp_path / name
    path.write_bytes(bytes(data))
    report = validate_dataset(path, name, Limits(max_problems=5))
    assert report.ok or report.problem_count > 0
    report.to_dict()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=600), name=st.sampled_from(["x.jsonl", "x.zip", "x.parquet", "x.tar", "x"]))
def test_arbitrary_bytes_give_a_report_not_an_exception(tmp_path, data, name):
    path = tmp_path / name
    path.write_bytes(data)
    report = validate_dataset(path, name)
    assert not report.ok or report.rows_valid > 0


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
PART = st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url", "x"])}, optional={
    "text": JSON, "image_url": JSON | st.fixed_dictionaries({"url": JSON | st.just(data_url(image_bytes()))}),
})
MESSAGE = st.fixed_dictionaries({}, optional={"role": JSON | st.sampled_from(["user", "system"]),
                                              "content": JSON | st.lists(PART | JSON, max_size=3)})


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(row=st.fixed_dictionaries({}, optional={
    "messages": JSON | st.lists(MESSAGE | JSON, max_size=3),
    "image": JSON | st.sampled_from(["a.png", "data:image/png;base64,", data_url(image_bytes())]),
    "problem": JSON,
    "solution": JSON | st.sampled_from(["<answer>[{'Position': [1, 2]}]</answer>", "[{'bbox_2d': 1}]"]),
}))
def test_any_json_row_gives_a_report_not_an_exception(tmp_path, row):
    path = tmp_path / "a.jsonl"
    path.write_bytes(jsonl_bytes([row]))
    report = validate_dataset(path, "a.jsonl")
    assert report.rows_read == 1
    assert report.ok == (report.problem_count == 0)
