"""Hostile file names, on Postgres and SeaweedFS: the upload answers 2xx or 4xx, the stored name is a
safe display name, the download works with an RFC 6266/5987 header, and no object is orphaned."""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest

from app.files.names import MAX_NAME_CHARS, content_disposition, display_name
from tests.api.test_upload_faults import multipart, object_keys, post_raw
from tests.factories import jsonl, visual_rft_rows

CONTENT = jsonl(visual_rft_rows(2))

# raw filename bytes as a client sends them → the display name we expect to store
HOSTILE = {
    "nul byte": (b"tra\x00in.jsonl", "train.jsonl"),
    "tab": (b"a\tb.jsonl", "ab.jsonl"),
    "escape and DEL": (b"\x1b[31mred\x7f.jsonl", "[31mred.jsonl"),
    "C1 control": ("x\u0085y.jsonl".encode(), "xy.jsonl"),
    "right-to-left override": ("evil\u202elnosj.jsonl".encode(), "evillnosj.jsonl"),
    "unix path": (b"../../etc/passwd.jsonl", "passwd.jsonl"),
    "windows path": (b"C:\\Users\\me\\data\\train.jsonl", "train.jsonl"),
    "only dots": (b"..", "upload"),
    "only controls": (b"\x01\x02\x03", "upload"),
    "empty": (b"", "upload"),
    "cjk": ("训练数据.jsonl".encode(), "训练数据.jsonl"),
    "emoji": ("🐱 cats.jsonl".encode(), "🐱 cats.jsonl"),
    "accents": ("café-naïve.jsonl".encode(), "café-naïve.jsonl"),
    "quote and semicolon": (b'a";b=c.jsonl', 'a";b=c.jsonl'),
    "percent": (b"100%25.jsonl", "100%25.jsonl"),
    "invalid utf-8": (b"bad\xff\xfe.jsonl", "bad\ufffd\ufffd.jsonl"),
}


# Raw bytes that break the part's header itself (browsers percent-encode them): a 400, never a 500.
MALFORMED_HEADER = {
    "raw CRLF": b"a\r\nb.jsonl",
    "header over the parser's line limit": ("é" * 3000 + ".jsonl").encode(),
}


def filename_from(header: str) -> str:
    """What a browser does with the header: prefer filename*, else the quoted filename."""
    extended = re.search(r"filename\*=UTF-8''([^;]+)", header)
    if extended:
        return unquote(extended.group(1), errors="strict")
    return re.search(r'filename="([^"]*)"', header).group(1)


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_name_uploads_and_downloads(api_client, case):
    raw, expected = HOSTILE[case]
    before = object_keys()
    # Quotes inside the multipart header are backslash-escaped, as browsers and httpx do.
    r = post_raw(api_client, multipart(CONTENT, filename=raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"')))
    assert r.status_code == 200, r.text
    f = r.json()
    assert f["filename"] == expected
    assert api_client.get(f"/v1/files/{f['id']}").json()["filename"] == expected
    got = api_client.get(f"/v1/files/{f['id']}/content")
    assert got.status_code == 200 and got.content == CONTENT
    header = got.headers["content-disposition"]
    assert header.isascii() and header.startswith("attachment; ")
    assert filename_from(header) == expected
    new = object_keys() - before
    assert len(new) == 1 and new.pop().endswith(f"/files/{f['id']}/data")


@pytest.mark.parametrize("case", list(MALFORMED_HEADER))
def test_name_that_breaks_the_part_header_is_400(api_client, case):
    before = object_keys()
    r = post_raw(api_client, multipart(CONTENT, filename=MALFORMED_HEADER[case]))
    assert r.status_code == 400, r.text
    assert "multipart" in r.json()["error"]["message"]
    assert api_client.get("/v1/files").json()["data"] == [] and object_keys() == before


def test_very_long_name_is_shortened_keeping_its_extension(api_client):
    r = post_raw(api_client, multipart(CONTENT, filename=("é" * 2000 + ".jsonl").encode()))
    assert r.status_code == 200, r.text
    name = r.json()["filename"]
    assert len(name) == MAX_NAME_CHARS and name.endswith(".jsonl") and name.startswith("éé")
    got = api_client.get(f"/v1/files/{r.json()['id']}/content")
    assert got.status_code == 200 and filename_from(got.headers["content-disposition"]) == name


def test_long_archive_name_keeps_its_compound_extension():
    assert display_name("x" * 300 + ".tar.gz").endswith("x.tar.gz")
    assert len(display_name("x" * 300 + ".tar.gz")) == MAX_NAME_CHARS
    assert display_name("a." + "y" * 300).startswith("a.yyy")  # an "extension" that long is not one


def test_invalid_dataset_with_a_hostile_name_is_422_and_leaves_nothing(api_client):
    before = object_keys()
    r = post_raw(api_client, multipart(b"{not json\n", filename="\x00✗.jsonl".encode()))
    assert r.status_code == 422, r.text
    assert api_client.get("/v1/files").json()["data"] == [] and object_keys() == before


def test_header_is_ascii_with_an_exact_utf8_name():
    assert content_disposition("train.jsonl") == 'attachment; filename="train.jsonl"'
    assert content_disposition("café.jsonl") == (
        "attachment; filename=\"cafe.jsonl\"; filename*=UTF-8''caf%C3%A9.jsonl")
    assert content_disposition('a"b.jsonl') == "attachment; filename=\"a_b.jsonl\"; filename*=UTF-8''a%22b.jsonl"
    assert content_disposition("训练.jsonl").startswith('attachment; filename="__.jsonl"; filename*=')

