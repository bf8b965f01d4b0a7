"""File names from clients: a safe display name to store, and the header that hands it back.

A multipart ``filename`` is whatever bytes the client sent. Stored raw, a NUL byte fails the row
on Postgres after the object was written, a 10 kB name overflows the column, and a name outside
Latin-1 cannot be put in an HTTP header as-is. So the name is cleaned once, on the way in, and sent
back per RFC 6266 / RFC 5987 (an ASCII fallback plus the exact UTF-8 name).
"""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

# Characters, not bytes: the column holds 512, and file systems cap a name at 255 bytes anyway.
MAX_NAME_CHARS = 255
# An extension longer than this is not one worth keeping whole when the name is shortened.
_MAX_SUFFIX_CHARS = 16
FALLBACK_NAME = "upload"


def display_name(raw: str | None) -> str:
    """The name to store and show: last path part only, no control or format characters
    (NUL, newlines, bidi overrides), at most ``MAX_NAME_CHARS``; Unicode letters are kept."""
    text = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    # Cc: C0/C1 controls incl. NUL and DEL; Cf: invisible format marks such as U+202E (right-to-left
    # override), which make "gpj.exe" display as "exe.jpg"; Cs: lone surrogates, which no encoder takes.
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cf", "Cs"))
    text = text.strip()
    if text in ("", ".", ".."):
        return FALLBACK_NAME
    return _shorten(text)


def _shorten(name: str) -> str:
    if len(name) <= MAX_NAME_CHARS:
        return name
    # Keep the (compound) extension: the dataset reader names formats by it (.jsonl, .tar.gz).
    stem, suffix = name, ""
    for _ in range(2):
        head, dot, ext = stem.rpartition(".")
        if not dot or not head or len(ext) + 1 + len(suffix) > _MAX_SUFFIX_CHARS:
            break
        stem, suffix = head, f".{ext}{suffix}"
    return stem[: MAX_NAME_CHARS - len(suffix)] + suffix


def content_disposition(name: str, disposition: str = "attachment") -> str:
    """``attachment; filename="ascii fallback"; filename*=UTF-8''percent-encoded`` (RFC 6266 §4.3).

    Old clients read the quoted ASCII fallback; every current browser and curl's ``-J`` prefer
    ``filename*``, which carries the exact name. The header value itself is pure ASCII, so it
    always encodes."""
    name = display_name(name)
    fallback = _ascii_fallback(name)
    header = f'{disposition}; filename="{fallback}"'
    if fallback != name:
        header += f"; filename*=UTF-8''{quote(name, safe='')}"
    return header


def _ascii_fallback(name: str) -> str:
    # "café" → "cafe" where a letter has an ASCII base; anything else becomes "_".
    decomposed = unicodedata.normalize("NFKD", name)
    chars = []
    for ch in decomposed:
        if unicodedata.combining(ch):
            continue
        chars.append(ch if 0x20 <= ord(ch) < 0x7F and ch not in '"\\' else "_")
    return "".join(chars) or FALLBACK_NAME
