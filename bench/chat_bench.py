"""Chat latency of the embedded inference process (`python -m workers.inference`) on the tiny model.

    python bench/chat_bench.py                 # vrft/tiny-qwen2-vl, CPU, 3 rounds
    python bench/chat_bench.py --tokens 128 --rounds 5

Starts the inference process as the embedded server does (its own data folder, adapters in a local
object store), then times requests over its HTTP socket:
- first-token latency: a `max_tokens=1` request (the whole request: HTTP, image preprocessing, prefill,
  one token) — about what a stream's first chunk costs (it can come a token later: a character split
  across tokens waits for its last byte);
- tokens/s: a `max_tokens=N` request's generated tokens over its wall time (prefill included), and the
  decode rate (N − 1) / (t_N − t_1);
each for the base model on its first request (weights loaded), an adapter not yet cached (fetched from
storage and loaded: cold) and the same adapter again (warm). Greedy; the random tiny model rarely
emits an EOS, so requests run to the token limit (checked). Random weights: speed only.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODEL = {"name": "vrft/tiny-qwen2-vl", "location": "builtin:qwen2-vl"}


def _image() -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 40, 40)).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _request(adapter: str | None, max_tokens: int) -> dict:
    return {"id": f"bench-{time.time_ns()}", "model": MODEL, "adapter_key": adapter, "min_pixels": 3136,
            "max_pixels": 401408, "n": 1, "max_tokens": max_tokens, "temperature": 0.0, "top_p": 1.0, "stop": [],
            "seed": None, "deadline": time.time() + 300,
            "messages": [{"role": "user", "content": [{"type": "image", "data": _image()},
                                                      {"type": "text", "text": "What colour is this image?"}]}]}


def _store_adapters(data_dir: Path, cache: Path, count: int) -> list[str]:
    """`count` copies of one LoRA adapter (non-zero B) in the local object store, under distinct keys."""
    import torch

    from app.storage import LocalStore
    from workers.artifacts import upload_folder
    from workers.training.lora import attach_lora
    from workers.training.model import load_model
    from workers.training.tiny import resolve_model

    net = attach_lora(load_model(resolve_model(MODEL["name"], cache / "models"), device="cpu").model, seed=0)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)
    folder = data_dir / "adapter-src"
    net.save_pretrained(str(folder))
    store = LocalStore(data_dir / "objects")
    keys = [f"bench/adapter-{i}/adapter.tar" for i in range(count)]
    for key in keys:
        upload_folder(store, folder, key)
    return keys


def _post(port: int, body: dict) -> tuple[float, dict]:
    import httpx

    started = time.perf_counter()
    r = httpx.post(f"http://127.0.0.1:{port}/generate", json=body, timeout=300)
    elapsed = time.perf_counter() - started
    r.raise_for_status()
    return elapsed, r.json()


def _measure(port: int, first: str | None, then: str | None, tokens: int) -> dict:
    """A 1-token request on `first`, then an N-token one on `then`: each pays what is cold for its adapter
    (the same key twice: the second is warm; two fresh keys: both cold)."""
    t1, _ = _post(port, _request(first, 1))
    tn, answer = _post(port, _request(then, tokens))
    generated = answer["choices"][0]["completion_tokens"]
    return {"first_token_s": round(t1, 4), "request_s": round(tn, 4), "tokens": generated,
            "tokens_per_s": round(generated / tn, 1),
            "decode_tokens_per_s": round((generated - 1) / max(tn - t1, 1e-9), 1)}


def _medians(results: dict[str, list[dict]]) -> dict[str, dict[str, float]]:
    import statistics

    return {case: {k: statistics.median(r[k] for r in rows) for k in rows[0] if k != "tokens"}
            for case, rows in results.items()}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="vrft-chat-bench-"))
    data_dir, cache = tmp / "data", Path(os.environ.get("VRFT_MODEL_CACHE", tmp / "cache"))
    keys = _store_adapters(data_dir, cache, 2 * args.rounds)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VRFT_")}
    env.update(VRFT_DATA_DIR=str(data_dir), VRFT_MODEL_CACHE=str(cache), VRFT_LOG_LEVEL="WARNING")
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "workers.inference", "--fd", str(sock.fileno())],
                            pass_fds=[sock.fileno()], env=env, cwd=ROOT)
    sock.close()
    try:
        results: dict[str, list[dict]] = {"base_first_request": [], "base_warm": [], "adapter_cold": [],
                                          "adapter_warm": []}
        t, answer = _post(port, _request(None, args.tokens))  # loads the base weights
        results["base_first_request"].append({"request_s": round(t, 4),
                                              "tokens": answer["choices"][0]["completion_tokens"]})
        for r in range(args.rounds):
            cold_a, cold_b = keys[2 * r], keys[2 * r + 1]  # new to the worker: fetched from storage and loaded
            results["adapter_cold"].append(_measure(port, cold_a, cold_b, args.tokens))
            results["adapter_warm"].append(_measure(port, cold_a, cold_a, args.tokens))
            results["base_warm"].append(_measure(port, None, None, args.tokens))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    load = os.getloadavg()
    report = {"model": MODEL["name"], "device": "cpu", "machine": f"{platform.machine()} {os.cpu_count()} cpus",
              "load_average_1m": round(load[0], 2), "date": time.strftime("%Y-%m-%d", time.gmtime()),
              "max_tokens": args.tokens, "median": _medians(results), "results": results}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
