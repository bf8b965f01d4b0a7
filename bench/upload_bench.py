"""Large upload: a ~1 GiB zip of 512×512 JPEGs streamed through ``POST /v1/files``; server memory and
background validation throughput.

    .venv/bin/python bench/upload_bench.py [--size-mib 1024 | --small] [--storage s3|local|both] [--images noise|photo]

Builds a Visual-RFT archive (``data.jsonl`` manifest + ``images/<i>.jpg``; ~100 distinct noisy JPEGs of
0.1–1 MB reused under many names), starts ``vrft-server serve --no-worker`` on a fresh Postgres database
(S3 = SeaweedFS from tests/services.py, or the local object folder), uploads the archive with
``curl -F file=@…`` (a streaming multipart body from a separate process), samples the server's RSS
(every process in its tree) every 20 ms, and polls ``GET /v1/files/{id}`` until ``processed``.

Targets: server peak RSS growth ≤ 64 MB during upload + validation; ≥ 500 images/s validated.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from poll_bench import Server, loadavg, machine

from tests import services

MiB = 1024**2
TARGET_RSS_MB = 64
TARGET_IMAGES_S = 500


def make_photo_pool(distinct: int = 100, seed: int = 0) -> list[bytes]:
    """Photo-like 512×512 JPEGs (~60 KB, as in bench/validate_bench.py): smooth colour fields, light grain."""
    from PIL import Image

    rng = random.Random(seed)
    pool = []
    for _ in range(distinct):
        smooth = Image.frombytes("RGB", (32, 32), rng.randbytes(32 * 32 * 3)).resize((512, 512), Image.BICUBIC)
        grain = Image.frombytes("RGB", (512, 512), rng.randbytes(512 * 512 * 3))
        buf = io.BytesIO()
        Image.blend(smooth, grain, 0.08).save(buf, "JPEG", quality=85)
        pool.append(buf.getvalue())
    return pool


def make_pool(distinct: int = 100, seed: int = 0) -> list[bytes]:
    """512×512 JPEGs of 0.1–1 MB: smooth colour fields with a varying amount of noise (noise does not
    compress, which is what makes the archive big with few distinct images)."""
    from PIL import Image

    rng = random.Random(seed)
    pool = []
    for i in range(distinct):
        smooth = Image.frombytes("RGB", (16, 16), rng.randbytes(16 * 16 * 3)).resize((512, 512), Image.BICUBIC)
        noise = Image.frombytes("RGB", (512, 512), rng.randbytes(512 * 512 * 3))
        img = Image.blend(smooth, noise, rng.uniform(0.2, 1.0))
        # 4:2:0 at q90 gives ~0.1-0.23 MB, 4:4:4 at q95 ~0.35-0.6 MB, 4:4:4 at q100 ~0.7-1 MB
        quality, subsampling = ((90, 2), (95, 0), (100, 0))[i % 3]
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=quality, subsampling=subsampling)
        pool.append(buf.getvalue())
    return pool


def build_archive(path: Path, size_bytes: int, content: str = "noise") -> tuple[int, float]:
    """Write the zip; returns (images, mean image KB)."""
    pool = make_photo_pool() if content == "photo" else make_pool()
    mean = sum(map(len, pool)) / len(pool)
    count = max(1, int(size_bytes / (mean + 100)))  # ~100 bytes of zip header + manifest line per image
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        manifest = "".join(json.dumps({"image": f"images/{i}.jpg", "problem": f"What is in image {i}?",
                                       "solution": "<answer>x</answer>"}) + "\n" for i in range(count))
        zf.writestr("data.jsonl", manifest, compress_type=zipfile.ZIP_DEFLATED)
        for i in range(count):
            zf.writestr(f"images/{i}.jpg", pool[i % len(pool)])
    return count, mean / 1024


class RssSampler(threading.Thread):
    """Sum of VmRSS over the server's process tree, sampled every ``interval`` seconds."""

    def __init__(self, srv: Server, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.srv, self.interval = srv, interval
        self.samples: list[tuple[float, int]] = []
        self._halt = threading.Event()

    def rss(self) -> int:
        total = 0
        for pid in self.srv.pids():
            try:
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            total += int(line.split()[1]) * 1024
                            break
            except OSError:
                pass
        return total

    def run(self) -> None:
        while not self._halt.is_set():
            self.samples.append((time.perf_counter(), self.rss()))
            time.sleep(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def peak(self, start: float, end: float) -> int:
        return max((r for t, r in self.samples if start <= t <= end), default=0)


def run_once(storage: str, archive: Path, images: int, s3: services.SeaweedFS | None) -> dict:
    import httpx

    extra = {}
    if storage == "s3":
        extra = {"VRFT_S3_ENDPOINT_URL": s3.endpoint, "VRFT_S3_BUCKET": f"vrft-bench-{os.getpid()}",
                     "VRFT_S3_ACCESS_KEY_ID": services.S3_ACCESS_KEY,
                     "VRFT_S3_SECRET_ACCESS_KEY": services.S3_SECRET_KEY}
    srv = Server(f"up_{storage}", workers=1, extra_env=extra)
    try:
        key = srv.create_key()
        auth = {"Authorization": f"Bearer {key}"}
        client = httpx.Client(base_url=srv.base, headers=auth, timeout=60)
        # warm the paths the upload touches (first S3 client, first validation import) before the baseline
        from tests import factories

        r = client.post("/v1/files", files={"file": ("w.jsonl", factories.jsonl(factories.visual_rft_rows(2)))},
                        data={"purpose": "fine-tune"})
        r.raise_for_status()
        client.get(f"/v1/files/{r.json()['id']}").raise_for_status()
        time.sleep(0.5)
        sampler = RssSampler(srv)
        baseline = sampler.rss()
        sampler.start()
        load_before = loadavg()
        t0 = time.perf_counter()
        up = subprocess.run(["curl", "-sS", "--fail-with-body", "-H", f"Authorization: Bearer {key}",
                             "-F", "purpose=fine-tune", "-F", f"file=@{archive};type=application/zip",
                             f"{srv.base}/v1/files"], check=False, capture_output=True, text=True)
        t1 = time.perf_counter()
        if up.returncode != 0:
            raise RuntimeError(f"upload failed ({up.returncode}): {up.stdout} {up.stderr}\n{srv.log_path.read_text()}")
        file = json.loads(up.stdout)
        while file["status"] not in ("processed", "error"):
            time.sleep(0.05)
            file = client.get(f"/v1/files/{file['id']}").json()
        t2 = time.perf_counter()
        time.sleep(0.2)
        sampler.stop()
        load_after = loadavg()
        report = client.get(f"/v1/files/{file['id']}/validation").json()
        client.delete(f"/v1/files/{file['id']}")
        client.close()
        if file["status"] != "processed":
            raise RuntimeError(f"validation failed: {file.get('status_details')} {json.dumps(report)[:2000]}")
        validated = (file.get("report") or report or {}).get("image_count") or images
        size = archive.stat().st_size
        return {
            "storage": storage, "images": validated, "bytes": size,
            "upload_s": t1 - t0, "upload_mib_s": size / MiB / (t1 - t0),
            "validate_s": t2 - t1, "images_s": validated / (t2 - t1),
            "rss_base_mb": baseline / 1e6,
            "rss_upload_mb": (sampler.peak(t0, t1) - baseline) / 1e6,
            "rss_validate_mb": (sampler.peak(t1, t2 + 0.2) - baseline) / 1e6,
            "samples": len(sampler.samples), "load_before": load_before, "load_after": load_after,
        }
    finally:
        srv.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="archive size (default 1 GiB)")
    parser.add_argument("--small", action="store_true", help="a ~100 MiB archive")
    parser.add_argument("--storage", choices=("s3", "local", "both"), default="s3")
    parser.add_argument("--images", choices=("noise", "photo"), default="noise",
                        help="noise: 0.1-1 MB noisy JPEGs (default, big archive from few images); "
                             "photo: ~60 KB photo-like JPEGs (many more images per GiB)")
    parser.add_argument("--tmp", default=tempfile.gettempdir(), help="where the archive is written")
    args = parser.parse_args()
    size = (100 if args.small else args.size_mib) * MiB
    free = shutil.disk_usage(args.tmp).free
    if free < 3 * size:  # the archive, the server's received copy, and the stored object
        print(f"not enough disk in {args.tmp}: {free / 2**30:.1f} GiB free, need {3 * size / 2**30:.1f}",
              file=sys.stderr)
        return 1
    if not shutil.which("curl"):
        print("curl is required (apt-get install curl)", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="vrft-upload-bench-", dir=args.tmp))
    s3 = None
    try:
        archive = work / "dataset.zip"
        t = time.perf_counter()
        images, mean_kb = build_archive(archive, size, args.images)
        print(f"archive: {archive.stat().st_size / MiB:,.0f} MiB, {images:,} JPEGs 512×512 (100 distinct, "
              f"mean {mean_kb:.0f} KB), built in {time.perf_counter() - t:.1f} s", flush=True)
        storages = ["s3", "local"] if args.storage == "both" else [args.storage]
        if "s3" in storages:
            s3 = services.SeaweedFS().start()
        results = []
        for storage in storages:
            r = run_once(storage, archive, images, s3)
            results.append(r)
            print(f"{storage:5s}: upload {r['upload_s']:.1f} s ({r['upload_mib_s']:.0f} MiB/s); validation "
                  f"{r['images']:,} images in {r['validate_s']:.1f} s = {r['images_s']:,.0f} images/s; server RSS "
                  f"{r['rss_base_mb']:.0f} MB at rest, peak growth {r['rss_upload_mb']:+.0f} MB during upload, "
                  f"{r['rss_validate_mb']:+.0f} MB during validation ({r['samples']} samples; load average "
                  f"{r['load_before']} → {r['load_after']})", flush=True)
        parts = "; ".join(
            f"{r['storage']}: {r['images_s']:,.0f} images/s, "
            f"peak RSS +{max(r['rss_upload_mb'], r['rss_validate_mb']):.0f} MB, "
            f"upload {r['upload_mib_s']:.0f} MiB/s" for r in results)
        met = all(r["images_s"] >= TARGET_IMAGES_S and max(r["rss_upload_mb"], r["rss_validate_mb"]) <= TARGET_RSS_MB
                  for r in results)
        print(f"upload {size / MiB:,.0f} MiB zip ({images:,} 512×512 JPEGs, mean {mean_kb:.0f} KB) "
              f"via POST /v1/files: {parts} — target "
              f"≥ {TARGET_IMAGES_S} images/s & ≤ {TARGET_RSS_MB} MB {'met' if met else 'NOT met'} "
              f"({machine()}, load average {results[0]['load_before']})")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if s3 is not None:
            s3.stop()


if __name__ == "__main__":
    raise SystemExit(main())
