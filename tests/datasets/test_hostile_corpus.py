"""A generated corpus of hostile dataset files, posted through the real upload endpoint (Postgres,
SeaweedFS). For every file: a 4xx, or stored and valid — never a 5xx, never half-stored (no object
without a row, no row without its object), and every response is strict JSON (no NaN tokens).

Each file starts from a plausible dataset (JSONL, zip, tar, tar.gz or Parquet) and is then made
hostile: NaN/Infinity tokens, duplicate keys, huge numbers, nested junk, wrong types, bad UTF-8,
lone surrogates, unsafe archive member names, images the processor refuses, and a random cut or
byte flip of the whole file. Bounded (examples, no deadline) to run in well under a minute.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import tarfile
import zipfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from app.datasets import iter_examples, validate_dataset
from tests.api.test_upload_faults import object_keys
from tests.factories import data_url, png_bytes, upload

PNG = png_bytes()
IMAGES = [PNG, png_bytes((0, 200, 0), size=(40, 20), fmt="JPEG"), png_bytes(size=(1, 300)), PNG[: len(PNG) // 2],
          b"GIF89a not really", b""]
MEMBER_NAMES = ["img/a.png", "img/b.jpg", "../escape.png", "/abs.png", "img/../../up.png", "img\\..\\..\\win.png",
                "img/a.png\x00.txt", "ünï/çødé.png"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
)
junk = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.text(max_size=6), inner, max_size=3), max_leaves=10)
# Odd but legal values: a valid row carrying these must be stored, and render.
legal = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**63 - 1),
              st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10)
solutions = st.one_of(
    st.sampled_from(["<answer>cat</answer>", "<answer>[{'Position': [1, 2, 30, 40], 'Confidence': 1}]</answer>",
                     "<answer>[{'Position': [1, 2, 1e999, 4]}]</answer>", "[{'bbox_2d': [1, 2]}]", ""]),
    junk,
)


def image_ref(draw, in_archive: bool):
    if in_archive:
        return draw(st.one_of(st.sampled_from(MEMBER_NAMES), st.text(max_size=10), junk))
    return draw(st.one_of(st.sampled_from(IMAGES).map(data_url), st.just("data:image/png;base64,@@@"),
                          st.just("https://example.com/a.png"), junk))


@st.composite
def rows(draw, in_archive: bool, mild: bool = False) -> dict:
    if mild:
        # a valid row with odd but legal extra fields: files must often be valid for "stored" to be tested
        image = draw(st.sampled_from(["img/a.png", "img/b.jpg"])) if in_archive else data_url(PNG)
        extra = draw(st.dictionaries(st.sampled_from(["id", "label", "score", "meta", "ünïcode"]), legal, max_size=2))
        return {"image": image, "problem": draw(st.text(min_size=1, max_size=20).filter(str.strip)),
                "solution": "<answer>cat</answer>", **extra}
    extra = draw(st.dictionaries(st.sampled_from(["id", "label", "score", "meta", "solution"]), junk, max_size=2))
    if draw(st.booleans()):
        row = {"image": image_ref(draw, in_archive), "problem": draw(st.one_of(st.just("What is it?"), junk)),
               "solution": draw(solutions)}
    else:
        part = {"type": "image_url", "image_url": {"url": image_ref(draw, in_archive)}}
        row = {"messages": [{"role": draw(st.sampled_from(["user", "assistant", 7])),
                             "content": [{"type": "text", "text": "What is it?"}, part]}],
               "solution": draw(solutions)}
    return {**row, **extra}


@st.composite
def lines(draw, in_archive: bool, mild: bool) -> bytes:
    row = draw(rows(in_archive, mild))
    text = json.dumps(row, allow_nan=True).encode()  # NaN / Infinity tokens from float junk
    if mild:
        return text
    hostile = draw(st.sampled_from(["none", "none", "dup", "huge", "deep", "bytes", "surrogate", "cut"]))
    if hostile == "dup":
        text = b'{"solution": "<answer>x</answer>", ' + text[1:]
    elif hostile == "huge":
        text = text[:-1] + b', "n": ' + draw(st.sampled_from([b"1e400", b"9" * 5000, b"-" + b"9" * 30])) + b"}"
    elif hostile == "deep":
        text = b'{"meta": ' + b"[" * 100_000 + b"]" * 100_000 + b', ' + text[1:]
    elif hostile == "bytes":
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\x00", b"\xed\xa0\x80"])) + text[at:]
    elif hostile == "surrogate":
        text = text[:-1] + draw(st.sampled_from([b', "s": "\\ud800\\u0000"}', b', "\\udfff": 1}']))
    elif hostile == "cut":
        text = text[: draw(st.integers(0, len(text)))]
    return text


def manifest(draw, in_archive: bool) -> bytes:
    # Half the files are all-valid rows with odd values, half mix in hostile lines.
    mild = draw(st.booleans())
    return b"\n".join(draw(st.lists(lines(in_archive, mild), min_size=1, max_size=4))) + b"\n"


def zipped(draw) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(draw(st.sampled_from(["train.jsonl", "data/train.jsonl", "../train.jsonl"])), manifest(draw, True))
        names = ["img/a.png", "img/b.jpg"] if draw(st.booleans()) else []
        for name in names + draw(st.lists(st.sampled_from(MEMBER_NAMES), max_size=3)):
            zf.writestr(name, draw(st.sampled_from(IMAGES)) if name not in names else IMAGES[names.index(name)])
    return buf.getvalue()


def tarred(draw, compress: bool) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        members = [("train.jsonl", manifest(draw, True))]
        if draw(st.booleans()):
            members += [("img/a.png", IMAGES[0]), ("img/b.jpg", IMAGES[1])]
        members += [(name, draw(st.sampled_from(IMAGES))) for name in draw(st.lists(st.sampled_from(MEMBER_NAMES),
                                                                                       max_size=4))]
        for name, data in members:
            info = tarfile.TarInfo(name.replace("\x00", ""))
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        if draw(st.booleans()):
            link = tarfile.TarInfo("img/link.png")
            link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tf.addfile(link)
    data = buf.getvalue()
    return gzip.compress(data) if compress else data


def parquet(draw) -> bytes:
    n = draw(st.integers(1, 4))
    score = draw(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=n, max_size=n))
    table = pa.table({
        "image": [{"bytes": draw(st.sampled_from(IMAGES)), "path": None} for _ in range(n)],
        "problem": [draw(st.sampled_from(["What is it?", ""])) for _ in range(n)],
        "solution": [draw(st.sampled_from(["<answer>cat</answer>", "<answer>[{'Position': [1, 2, inf, 4]}]"]))
                     for _ in range(n)],
        "score": score,
        "id": pa.array([draw(st.integers(0, 2**64 - 1)) for _ in range(n)], type=pa.uint64()),
    })
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


@st.composite
def hostile_files(draw) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(["jsonl", "jsonl", "zip", "tar", "tar.gz", "parquet"]))
    data = {"jsonl": lambda: manifest(draw, False), "zip": lambda: zipped(draw), "tar": lambda: tarred(draw, False),
            "tar.gz": lambda: tarred(draw, True), "parquet": lambda: parquet(draw)}[kind]()
    damage = draw(st.sampled_from(["none", "none", "none", "cut", "flip"]))
    if damage == "cut" and data:
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif damage == "flip" and data:
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1:]
    name = draw(st.one_of(st.just(f"train.{kind}"), st.text(max_size=20).map(lambda t: f"{t}.{kind}")))
    return name, data


def strict_json(text: str):
    def refuse(token):
        raise AssertionError(f"response carries the non-JSON number {token}")

    return json.loads(text, parse_constant=refuse)


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(case=hostile_files())
def test_hostile_dataset_is_4xx_or_stored_and_valid(api_client, tmp_path, case):
    name, data = case
    keys_before = object_keys()
    files_before = {f["id"] for f in api_client.get("/v1/files?limit=1000").json()["data"]}

    r = upload(api_client, data, filename=name)
    event(f"HTTP {r.status_code}")  # --hypothesis-show-statistics: how many were stored vs refused
    assert r.status_code < 500, r.text
    body = strict_json(r.text)
    new_keys = object_keys() - keys_before
    new_files = {f["id"] for f in api_client.get("/v1/files?limit=1000").json()["data"]} - files_before

    if r.status_code >= 400:
        assert new_keys == set() and new_files == set(), (new_keys, new_files)
        assert body["error"]["message"]
        return
    # stored: exactly one row and its one object, valid, and what the trainer will read
    file_id = body["id"]
    assert new_files == {file_id} and len(new_keys) == 1 and next(iter(new_keys)).endswith(f"/{file_id}/data")
    assert body["status"] == "processed" and body["rows"] >= 1
    report = strict_json(api_client.get(f"/v1/files/{file_id}/validation").text)
    assert report["problem_count"] == 0 and report["rows_valid"] == body["rows"]
    content = api_client.get(f"/v1/files/{file_id}/content")
    assert content.status_code == 200 and content.content == data
    path = tmp_path / f"stored-{file_id}"
    path.write_bytes(content.content)
    examples = list(iter_examples(path, body["filename"]))
    assert len(examples) == body["rows"]
    assert validate_dataset(path, body["filename"]).ok
    for example in examples:
        _assert_finite(example["item"])


def _assert_finite(value) -> None:
    if isinstance(value, float):
        assert math.isfinite(value)
    elif isinstance(value, dict):
        for v in value.values():
            _assert_finite(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _assert_finite(v)


@pytest.mark.parametrize("kind", ["jsonl", "zip", "parquet"])
def test_a_plain_valid_file_of_each_kind_is_stored(api_client, kind):
    """The corpus's starting points do store when left alone, so the property above is not passing
    by refusing everything."""
    rows = [{"image": data_url(PNG) if kind != "zip" else "img/a.png", "problem": "What is it?",
             "solution": "<answer>cat</answer>"}]
    data = b"\n".join(json.dumps(r).encode() for r in rows) + b"\n"
    if kind == "zip":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("train.jsonl", data)
            zf.writestr("img/a.png", PNG)
        data = buf.getvalue()
    elif kind == "parquet":
        buf = io.BytesIO()
        pq.write_table(pa.table({"image": [{"bytes": PNG, "path": None}], "problem": ["What is it?"],
                                 "solution": ["<answer>cat</answer>"]}), buf)
        data = buf.getvalue()
    r = upload(api_client, data, filename=f"train.{kind}")
    assert r.status_code == 200, r.text
