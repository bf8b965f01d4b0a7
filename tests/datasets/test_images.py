"""Image checks: undecodable bytes, truncation, pixel limits enforced from the header alone."""

from __future__ import annotations

import base64
import time

import pytest

from app.datasets import Limits, validate_dataset
from app.datasets.images import check_image
from app.datasets.report import Invalid
from tests.datasets.builders import codes, data_url, huge_png, image_bytes, jsonl_bytes, visual_row

PNG = image_bytes((8, 6))


def validate_rows(write, rows, limits=None):
    return validate_dataset(write("a.jsonl", jsonl_bytes(rows)), "a.jsonl", limits or Limits())


def test_image_that_is_not_an_image(write):
    report = validate_rows(write, [visual_row(data_url(b"GIF? no, just text"))])
    assert codes(report) == [(1, "image", "image_undecodable")]
    assert report.image_count == 0


def test_truncated_png(write):
    png = image_bytes((64, 64), color=(1, 2, 3))
    report = validate_rows(write, [visual_row(data_url(png[: len(png) // 2]))])
    assert codes(report) == [(1, "image", "image_undecodable")]
    assert "does not decode" in report.problems[0].message


def test_truncated_jpeg(write):
    jpeg = image_bytes((64, 64), "JPEG")
    report = validate_rows(write, [visual_row(data_url(jpeg[: len(jpeg) // 2], "image/jpeg"))])
    assert codes(report) == [(1, "image", "image_undecodable")]


@pytest.fixture(scope="module")
def png_30000():
    return huge_png(30000, 30000)


def test_30000_square_png_is_refused_before_decoding(write, png_30000):
    assert len(png_30000) < 1_000_000  # a real, complete PNG that inflates to 112 MB of bitmap
    start = time.perf_counter()
    report = validate_rows(write, [visual_row(data_url(png_30000))])
    assert time.perf_counter() - start < 2  # decoding 9e8 pixels would take far longer
    assert codes(report) == [(1, "image", "image_too_large")]
    assert report.problems[0].message == (
        "line 1: field 'image': image is 30000×30000 = 900,000,000 pixels, over the limit of 40,000,000; "
        "downscale it"
    )


def test_pixel_limit_checked_on_header_not_pixels():
    # The header says 6000×6000 and the pixel data stops right after it. Under the limit it is
    # undecodable; over the limit it is refused as too large, so the size check ran before any decode.
    header_only = huge_png(6000, 6000)[:200]
    with pytest.raises(Invalid) as caught:
        check_image(header_only, "image", Limits())
    assert caught.value.code == "image_undecodable"
    with pytest.raises(Invalid) as caught:
        check_image(header_only, "image", Limits(max_image_pixels=1_000_000))
    assert caught.value.code == "image_too_large"
    assert "image is 6000×6000 = 36,000,000 pixels, over the limit of 1,000,000" in caught.value.message


def test_image_over_a_configured_limit(write):
    report = validate_rows(write, [visual_row(data_url(image_bytes((100, 50))))], Limits(max_image_pixels=4999))
    assert codes(report) == [(1, "image", "image_too_large")]
    assert report.problems[0].message == (
        "line 1: field 'image': image is 100×50 = 5,000 pixels, over the limit of 4,999; downscale it"
    )


def test_data_url_that_is_not_base64(write):
    rows = [
        visual_row("data:image/png;base64,@@@@"),
        visual_row("data:image/png,rawtext"),
        visual_row("data:image/png;base64,iVBORw0KGgoé"),
    ]
    report = validate_rows(write, rows)
    assert codes(report) == [(line, "image", "invalid_field") for line in (1, 2, 3)]


def test_wrapped_base64_is_accepted(write):
    encoded = base64.encodebytes(image_bytes((40, 40))).decode()  # MIME style, newline every 76
    assert "\n" in encoded
    report = validate_rows(write, [visual_row("data:image/png;base64," + encoded)])
    assert report.ok, report.to_dict()


def test_path_in_a_bare_jsonl_is_not_found(write):
    report = validate_rows(write, [visual_row("images/cat.png"), visual_row("https://example.com/a.png")])
    assert codes(report) == [(1, "image", "image_not_found"), (2, "image", "invalid_field")]


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF"])
def test_supported_formats_decode(fmt):
    assert check_image(image_bytes((9, 4), fmt), "image", Limits()) == (9, 4)


def test_formats_outside_the_allow_list_are_refused():
    # Pillow can read these, but a VLM pipeline has no use for them and EPS would run Ghostscript.
    with pytest.raises(Invalid) as caught:
        check_image(image_bytes((9, 4), "PPM"), "image", Limits())
    assert caught.value.code == "image_undecodable"
