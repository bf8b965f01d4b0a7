"""Archives: good zip/tar/tar.gz datasets, unsafe member names, links, bombs, manifests."""

from __future__ import annotations

import io
import tarfile
import time
import tracemalloc
import zipfile
import zlib

import pytest
from PIL import Image

from app.datasets import Limits, iter_examples, validate_dataset
from app.errors import ServiceError
from tests.datasets.builders import (
    codes,
    deflated_zeros,
    image_bytes,
    jsonl_bytes,
    openai_row,
    raw_zip,
    visual_row,
    write_tar,
    write_zip,
)

RED = image_bytes((8, 6), color=(255, 0, 0))
BLUE = image_bytes((5, 9), "JPEG", color=(0, 0, 255))
MANIFEST = jsonl_bytes([
    visual_row("img/red.png", solution="<answer>red</answer>"),
    visual_row("./img/blue.jpg", problem="Colour?", solution="<answer>blue</answer>", id="b"),
])
GOOD = {"data.jsonl": MANIFEST, "img/red.png": RED, "img/blue.jpg": BLUE}


def expected_examples():
    return [
        {"id": "line-1", "prompt": "What is this?", "image": RED, "image_size": [8, 6],
         "item": {"problem": "What is this?", "solution": "<answer>red</answer>"}},
        {"id": "b", "prompt": "Colour?", "image": BLUE, "image_size": [5, 9],
         "item": {"problem": "Colour?", "solution": "<answer>blue</answer>", "id": "b"}},
    ]


@pytest.mark.parametrize(
    "name, build",
    [
        ("set.zip", lambda p, m: write_zip(p, m)),
        ("set.tar", lambda p, m: write_tar(p, m)),
        ("set.tar.gz", lambda p, m: write_tar(p, m, "w:gz")),
        ("set.tgz", lambda p, m: write_tar(p, m, "w:gz")),
        ("set.tar.xz", lambda p, m: write_tar(p, m, "w:xz")),
    ],
)
def test_good_archives_yield_examples(tmp_path, name, build):
    path = build(tmp_path / name, GOOD)
    report = validate_dataset(path, name)
    assert report.ok, report.to_dict()
    assert report.format == "archive:visual_rft_jsonl"
    assert (report.rows_read, report.rows_valid, report.image_count) == (2, 2, 2)
    assert report.reference_fields == ["problem", "solution"]
    assert list(iter_examples(path, name)) == expected_examples()


def test_manifest_in_a_folder_with_openai_rows(tmp_path):
    rows = jsonl_bytes([openai_row("pics/a.png", answer="red"), openai_row("../shared/b.jpg", answer="blue")])
    members = {"ds/train.jsonl": rows, "ds/pics/a.png": RED, "shared/b.jpg": BLUE, "__MACOSX/ds/._train.jsonl": b"x"}
    path = write_zip(tmp_path / "set.zip", members)
    report = validate_dataset(path, "set.zip")
    assert report.ok, report.to_dict()
    assert report.format == "archive:openai_rft_jsonl"
    assert [e["image"] for e in iter_examples(path, "set.zip")] == [RED, BLUE]


def test_top_level_manifest_preferred_over_nested(tmp_path):
    members = {**GOOD, "extra/other.jsonl": b"not even json\n"}
    report = validate_dataset(write_zip(tmp_path / "set.zip", members), "set.zip")
    assert report.ok, report.to_dict()


def test_zip_member_escaping_the_archive(tmp_path):
    manifest = jsonl_bytes([visual_row("img/red.png"), visual_row("../../etc/passwd")])
    members = {"data.jsonl": manifest, "img/red.png": RED, "../../etc/passwd": b"root:x:0:0"}
    report = validate_dataset(write_zip(tmp_path / "set.zip", members), "set.zip")
    assert codes(report) == [(None, None, "path_escapes_archive"), (2, "image", "path_escapes_archive")]
    assert "'../../etc/passwd'" in report.problems[0].message
    assert report.rows_valid == 1
    assert not (tmp_path.parent.parent / "etc" / "passwd").exists()


@pytest.mark.parametrize("member", ["../../etc/passwd", "/etc/passwd", "a/../../evil.png", "..\\..\\evil.png"])
def test_tar_member_escaping_the_archive(tmp_path, member):
    path = write_tar(tmp_path / "set.tar", {**GOOD, member: b"root:x:0:0"})
    report = validate_dataset(path, "set.tar")
    assert codes(report) == [(None, None, "path_escapes_archive")]
    assert repr(member) in report.problems[0].message
    assert report.rows_valid == 2  # the rows themselves are fine; the report is still not ok
    assert not report.ok


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_tar_links_are_refused(tmp_path, kind):
    path = tmp_path / "set.tar"
    write_tar(path, GOOD)
    with tarfile.open(path, "a") as tf:
        link = tarfile.TarInfo("img/green.png")
        link.type = kind
        link.linkname = "/etc/passwd"
        tf.addfile(link)
    report = validate_dataset(path, "set.tar")
    assert codes(report) == [(None, None, "path_escapes_archive")]
    assert "'img/green.png'" in report.problems[0].message
    assert "link to '/etc/passwd'" in report.problems[0].message


def test_tar_link_referenced_by_a_row(tmp_path):
    path = tmp_path / "set.tar"
    write_tar(path, {"data.jsonl": jsonl_bytes([visual_row("img/green.png")])})
    with tarfile.open(path, "a") as tf:
        link = tarfile.TarInfo("img/green.png")
        link.type = tarfile.SYMTYPE
        link.linkname = "../../../etc/shadow"
        tf.addfile(link)
    report = validate_dataset(path, "set.tar")
    # The link is refused outright, so to the row the member simply is not there.
    assert codes(report) == [(None, None, "path_escapes_archive"), (1, "image", "image_not_found")]


def test_unsafe_member_reported_even_without_manifest(tmp_path):
    report = validate_dataset(write_tar(tmp_path / "set.tar", {"../x.png": RED}), "set.tar")
    assert codes(report) == [(None, None, "path_escapes_archive"), (None, None, "manifest_missing")]


def test_manifest_reference_to_absolute_path(tmp_path):
    manifest = jsonl_bytes([visual_row("/etc/hostname")])
    report = validate_dataset(write_zip(tmp_path / "set.zip", {"data.jsonl": manifest}), "set.zip")
    assert codes(report) == [(1, "image", "path_escapes_archive")]


def test_zip_bomb_refused_from_declared_sizes(tmp_path):
    # 200 MB of zeros in ~200 KB: over the 100× ratio, refused before anything is decompressed.
    zeros, crc = deflated_zeros(200 << 20)
    manifest = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = jsonl_bytes([visual_row("big.png")])
    small = manifest.compress(body) + manifest.flush()
    path = tmp_path / "bomb.zip"
    path.write_bytes(raw_zip([
        ("data.jsonl", small, 0, len(body), zlib.crc32(body)),
        ("big.png", zeros, crc, 200 << 20, crc),
    ]))
    start = time.perf_counter()
    report = validate_dataset(path, "bomb.zip")
    assert time.perf_counter() - start < 1
    assert codes(report) == [(None, None, "archive_bomb")]
    assert "'big.png'" in report.problems[0].message
    with pytest.raises(ServiceError):
        list(iter_examples(path, "bomb.zip"))


def test_zip_header_that_understates_size_decompresses_no_more(tmp_path):
    # The headers claim 100 bytes for 200 MB of data: reading stops at the claim, so the member is
    # rejected as no image without ever inflating the rest.
    zeros, _ = deflated_zeros(64 << 20)
    body = jsonl_bytes([visual_row("big.png")])
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    path = tmp_path / "liar.zip"
    path.write_bytes(raw_zip([
        ("data.jsonl", z.compress(body) + z.flush(), 0, len(body), zlib.crc32(body)),
        ("big.png", zeros, 0, 100, zlib.crc32(bytes(100))),
    ]))
    Image.init()  # load Pillow's plugins first: importing them is not what this test measures
    tracemalloc.start()
    try:
        report = validate_dataset(path, "liar.zip")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert codes(report) == [(1, "image", "not_an_image")]
    assert peak < 16 << 20


@pytest.fixture(scope="module")
def zeros_tgz() -> bytes:
    """A .tar.gz holding one 40 MB member of zeros (~180 KB compressed)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as tf:
        info = tarfile.TarInfo("zeros.bin")
        info.size = 40 << 20
        tf.addfile(info, _Zeros(info.size))
    return buffer.getvalue()


def test_tar_gz_bomb_stopped_while_decompressing(write, zeros_tgz):
    # A gzip trailer that lies about the size passes the cheap pre-check; the byte count while
    # decompressing still stops it at the ratio limit (100 × its size, floored at 16 MB).
    lying = zeros_tgz[:-4] + (1000).to_bytes(4, "little")
    report = validate_dataset(write("bomb.tar.gz", lying), "bomb.tar.gz")
    assert codes(report) == [(None, None, "archive_bomb")]
    assert "stopped decompressing" in report.problems[0].message


def test_tar_gz_bomb_refused_from_gzip_trailer(write, zeros_tgz):
    report = validate_dataset(write("bomb.tgz", zeros_tgz), "bomb.tgz")
    assert codes(report) == [(None, None, "archive_bomb")]
    assert "trailer" in report.problems[0].message


def test_total_size_limit(tmp_path):
    path = write_zip(tmp_path / "set.zip", GOOD, zipfile.ZIP_STORED)
    report = validate_dataset(path, "set.zip", Limits(max_archive_bytes=100))
    assert codes(report) == [(None, None, "archive_bomb")]


@pytest.mark.parametrize("name, build", [("set.zip", write_zip), ("set.tar", write_tar)])
def test_too_many_members(tmp_path, name, build):
    path = build(tmp_path / name, GOOD)
    report = validate_dataset(path, name, Limits(max_archive_members=2))
    assert codes(report) == [(None, None, "archive_bomb")]
    assert "members" in report.problems[0].message


def test_manifest_missing(tmp_path):
    report = validate_dataset(write_zip(tmp_path / "set.zip", {"img/red.png": RED}), "set.zip")
    assert codes(report) == [(None, None, "manifest_missing")]
    assert report.format == "archive"


def test_two_top_level_manifests(tmp_path):
    members = {**GOOD, "val.jsonl": MANIFEST}
    report = validate_dataset(write_zip(tmp_path / "set.zip", members), "set.zip")
    assert codes(report) == [(None, None, "archive_invalid")]
    assert "data.jsonl, val.jsonl" in report.problems[0].message


def test_empty_manifest(tmp_path):
    report = validate_dataset(write_zip(tmp_path / "set.zip", {"data.jsonl": b"\n"}), "set.zip")
    assert codes(report) == [(None, None, "empty_file")]


def test_referenced_member_missing_or_not_an_image(tmp_path):
    manifest = jsonl_bytes([visual_row("img/nope.png"), visual_row("notes.txt"), visual_row("img/red.png")])
    big = image_bytes((64, 64), color=(9, 9, 9))
    members = {"data.jsonl": manifest, "notes.txt": b"hello", "img/red.png": big[: len(big) // 2]}
    report = validate_dataset(write_zip(tmp_path / "set.zip", members), "set.zip")
    assert codes(report) == [
        (1, "image", "image_not_found"),
        (2, "image", "not_an_image"),
        (3, "image", "image_undecodable"),
    ]


def test_corrupt_zip(write):
    report = validate_dataset(write("set.zip", b"PK\x03\x04" + b"\x00" * 100), "set.zip")
    assert codes(report) == [(None, None, "archive_invalid")]


def test_corrupt_member_data(tmp_path):
    path = write_zip(tmp_path / "set.zip", GOOD)
    data = bytearray(path.read_bytes())
    # Flip bytes in the red image's deflated data, which follows its name in the local header.
    start = data.index(b"img/red.png") + len("img/red.png")
    for i in range(start + 5, start + 25):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    report = validate_dataset(path, "set.zip")
    assert codes(report) == [(1, "image", "archive_invalid")]
    assert "'img/red.png' is unreadable" in report.problems[0].message
    assert report.rows_valid == 1


class _Zeros(io.RawIOBase):
    """A readable stream of n zero bytes, so tests never hold a large buffer."""

    def __init__(self, n: int):
        self.left = n

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n
