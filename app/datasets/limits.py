"""Resource limits applied while reading an uploaded dataset.

Every limit exists because the input is untrusted: a small upload can claim a huge image or expand to
gigabytes, and validation runs inside the API's own process.
"""

from __future__ import annotations

from dataclasses import dataclass

GiB = 1024**3
MiB = 1024**2


@dataclass(frozen=True)
class Limits:
    # Checked against the image header before any pixel is decoded. Pillow's own hard ceiling
    # (2 × Image.MAX_IMAGE_PIXELS ≈ 179 M) still applies above this.
    max_image_pixels: int = 40_000_000
    max_rows: int = 100_000
    # Total uncompressed / compressed size of an archive. Ignored below ``archive_ratio_floor`` bytes,
    # because tar padding makes tiny archives compress 20–50× without being hostile.
    max_archive_ratio: float = 100.0
    max_archive_bytes: int = 8 * GiB
    max_line_bytes: int = 64 * MiB
    # The report keeps the first N problems and counts the rest.
    max_problems: int = 200
    archive_ratio_floor: int = 16 * MiB
    # Each member costs a few hundred bytes of index in memory before any is read; rows are capped
    # at max_rows, so a dataset has no use for millions of members.
    max_archive_members: int = 250_000
    # The Qwen-VL image processors (smart_resize in transformers) refuse an image whose long side
    # is more than 200× its short side, whatever its size; at training time that would fail the job.
    # It is the processor's only refusal: a 1×1 image is scaled up to the minimum, not refused.
    max_aspect_ratio: float = 200.0


DEFAULT_LIMITS = Limits()
