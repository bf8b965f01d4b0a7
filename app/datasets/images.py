"""Decode and check one image: data URLs, header-first pixel limits, a full Pillow decode."""

from __future__ import annotations

import base64
import io
import re
import struct

from PIL import Image, UnidentifiedImageError

from app.datasets.limits import Limits
from app.datasets.report import Code, Invalid

# Formats a VLM processor can take. Restricting Image.open also keeps Pillow away from plugins that
# shell out (EPS runs Ghostscript) or that exist for obscure legacy formats with a history of CVEs.
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")

# What Pillow raises on malformed input (its fuzzing tests accept this set); anything else is our bug.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)

_DATA_URL = re.compile(
    r"data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(?:;[^,;]*)*),", re.ASCII | re.IGNORECASE
)
# See check_image; a module switch only so the benchmark can measure the full-size decode too.
_JPEG_SCALED_DECODE = True
_PILLOW_PIXELS = re.compile(r"\((\d+) pixels\)")


def is_data_url(ref: str) -> bool:
    return ref[:5].lower() == "data:"


def decode_data_url(url: str, field: str) -> bytes:
    """Return the bytes of a ``data:image/...;base64,...`` URL."""
    match = _DATA_URL.match(url[:256])
    if match is None or ";base64" not in match.group("params").lower():
        raise Invalid(
            Code.INVALID_FIELD,
            field,
            "expected a base64 data URL such as 'data:image/jpeg;base64,/9j/...'",
        )
    payload = url[match.end() :]
    # ValueError covers binascii.Error and the non-ASCII case, which b64decode reports apart.
    try:
        return base64.b64decode(payload, validate=True)
    except ValueError:
        pass
    # Some encoders wrap base64 at 76 columns (MIME style); accept that, reject anything else.
    stripped = "".join(payload.split())
    try:
        return base64.b64decode(stripped, validate=True)
    except ValueError as exc:
        raise Invalid(Code.INVALID_FIELD, field, f"data URL payload is not valid base64 ({exc})") from None


def check_image(data: bytes, field: str, limits: Limits, *, in_archive: bool = False) -> tuple[int, int]:
    """Decode all of ``data`` and return its (width, height), or raise ``Invalid``.

    The pixel limit is checked on the header size Pillow reports from ``Image.open`` (which reads no
    pixel data), so a 30000×30000 image is refused before a byte of it is decompressed.
    """
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError as exc:
        # Pillow refuses some headers itself (over ~179 M pixels) before handing us the image.
        raise Invalid(Code.IMAGE_TOO_LARGE, field, _too_large(_declared_size(data), str(exc), limits)) from None
    except UnidentifiedImageError:
        code = Code.NOT_AN_IMAGE if in_archive else Code.IMAGE_UNDECODABLE
        raise Invalid(
            code,
            field,
            f"not an image in a supported format ({', '.join(ALLOWED_FORMATS)}); "
            f"{len(data):,} bytes starting {data[:8]!r}",
        ) from None
    except _DECODE_ERRORS as exc:
        raise Invalid(Code.IMAGE_UNDECODABLE, field, f"image header is unreadable: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - see _unexpected
        raise _unexpected(exc, field) from exc

    with image:
        width, height = image.size
        if width * height > limits.max_image_pixels:
            raise Invalid(Code.IMAGE_TOO_LARGE, field, _too_large((width, height), "", limits))
        if width < 1 or height < 1:
            raise Invalid(Code.IMAGE_UNDECODABLE, field, f"image is {width}×{height}: it has no pixels")
        if max(width, height) / min(width, height) > limits.max_aspect_ratio:
            raise Invalid(
                Code.IMAGE_ASPECT_RATIO, field,
                f"image is {width}×{height}, an aspect ratio of {max(width, height) / min(width, height):,.1f}; "
                f"the model's image processor takes at most {limits.max_aspect_ratio:g} (pad or crop it)",
            )
        if image.format == "JPEG" and _JPEG_SCALED_DECODE:
            # libjpeg still entropy-decodes every coefficient of every scan at 1/8 scale (that is
            # where corrupt or truncated data shows), but skips the full-size IDCT, upsampling and
            # colour conversion: ~2× faster, and no failure it could detect is lost.
            image.draft(None, (1, 1))
        try:
            image.load()
        except (*_DECODE_ERRORS, Image.DecompressionBombError) as exc:
            raise Invalid(
                Code.IMAGE_UNDECODABLE,
                field,
                f"{image.format} image ({width}×{height}) does not decode: {exc}",
            ) from None
        except Exception as exc:  # noqa: BLE001 - see _unexpected
            raise _unexpected(exc, field) from exc
    return width, height


def _unexpected(exc: Exception, field: str) -> Invalid:
    # Hostile files have made Pillow's decoders raise TypeError, KeyError, ZeroDivisionError... A
    # user's bad image must still be a problem in the report, not a failed upload; the exception
    # type goes into the message so such a case stays visible, and the cause stays chained.
    return Invalid(Code.IMAGE_UNDECODABLE, field, f"image does not decode (Pillow raised {type(exc).__name__}: {exc})")


def _too_large(size: tuple[int, int] | None, pillow_message: str, limits: Limits) -> str:
    if size is not None:
        width, height = size
        found = f"image is {width}×{height} = {width * height:,} pixels"
    else:
        count = _PILLOW_PIXELS.search(pillow_message)
        found = f"image header declares {int(count.group(1)):,} pixels" if count else "image is too large"
    return f"{found}, over the limit of {limits.max_image_pixels:,}; downscale it"


def _declared_size(data: bytes) -> tuple[int, int] | None:
    """The size in the header of an image Pillow refused as a bomb, for the message only.

    Calls the format's registered opener directly, which parses the header without Pillow's bomb
    check; no pixel data is read.
    """
    prefix = data[:16]
    for name in ALLOWED_FORMATS:
        factory, accept = Image.OPEN.get(name, (None, None))
        if factory is None or (accept is not None and accept(prefix) is not True):
            continue
        try:
            return factory(io.BytesIO(data), "").size
        except _DECODE_ERRORS:
            return None
    return None
