"""Validation throughput: N random 512×512 JPEGs as a JSONL of data URLs and as a zip archive.

    .venv/bin/python bench/validate_bench.py [--n 2000] [--quality 85]

Prints images/s for each layout. The target is ≥ 500 images/s on two cores.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import resource
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image  # noqa: E402

from app.datasets import Limits, validate_dataset  # noqa: E402


def make_jpegs(count: int, quality: int, distinct: int = 64) -> list[bytes]:
    # Photo-like content: smooth colour fields plus light grain, ~60 KB at quality 85 like a
    # typical 512×512 photo. Pure noise would be 3× larger and slower than any real dataset image.
    pool = []
    for _ in range(min(count, distinct)):
        smooth = Image.frombytes("RGB", (32, 32), os.urandom(32 * 32 * 3)).resize((512, 512), Image.BICUBIC)
        grain = Image.frombytes("RGB", (512, 512), os.urandom(512 * 512 * 3))
        buf = io.BytesIO()
        Image.blend(smooth, grain, 0.08).save(buf, "JPEG", quality=quality)
        pool.append(buf.getvalue())
    return [pool[i % len(pool)] for i in range(count)]


def row(image: str, i: int) -> bytes:
    return json.dumps({"image": image, "problem": f"What is in image {i}?", "solution": "<answer>x</answer>"}).encode()


def run(path: Path, name: str, count: int) -> tuple[float, float]:
    """(images per second of wall time, CPU milliseconds per image across all threads)."""
    start, cpu = time.perf_counter(), time.process_time()
    report = validate_dataset(path, name, Limits())
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert report.ok and report.image_count == count, report.to_dict()
    return count / elapsed, 1000 * cpu / count


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--quality", type=int, default=85)
    args = parser.parse_args()
    jpegs = make_jpegs(args.n, args.quality)
    mean_kb = sum(map(len, jpegs)) / len(jpegs) / 1024
    with tempfile.TemporaryDirectory() as tmp:
        jsonl = Path(tmp) / "data.jsonl"
        with jsonl.open("wb") as f:
            for i, data in enumerate(jpegs):
                f.write(row("data:image/jpeg;base64," + base64.b64encode(data).decode(), i) + b"\n")
        archive = Path(tmp) / "data.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
            zf.writestr("data.jsonl", b"\n".join(row(f"images/{i}.jpg", i) for i in range(args.n)))
            for i, data in enumerate(jpegs):
                zf.writestr(f"images/{i}.jpg", data)
        # Other work on a shared machine shows as lower images/s; CPU ms per image does not move.
        load = os.getloadavg()[0]
        print(f"{args.n} JPEGs 512×512, mean {mean_kb:.0f} KB, {os.cpu_count()} CPUs, load average {load:.1f}")
        for label, path in (("jsonl (data URLs)", jsonl), ("zip archive", archive)):
            rate, cpu_ms = run(path, path.name, args.n)
            print(f"  {label:18s} {rate:7.0f} images/s  {cpu_ms:5.2f} CPU ms/image  "
                  f"file {path.stat().st_size / 2**20:,.0f} MiB, peak RSS so far {_peak_rss_mib():,.0f} MiB")


if __name__ == "__main__":
    main()
