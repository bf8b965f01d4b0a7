"""How inference workers are deployed: `vrft-worker --inference` (one per GPU) and the compose service."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.test_docker import SERVICES, parse_with_console_script


def test_compose_runs_an_inference_worker_on_a_gpu_from_the_worker_image():
    spec = SERVICES["inference"]
    assert parse_with_console_script(spec["command"]).inference
    assert spec["image"] == SERVICES["worker"]["image"]
    devices = spec["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices)
    assert spec["environment"]["VRFT_MODEL_CACHE"] == SERVICES["worker"]["environment"]["VRFT_MODEL_CACHE"]


def test_inference_worker_needs_a_broker():
    env = {k: v for k, v in os.environ.items() if not k.startswith("VRFT_")}
    done = subprocess.run([sys.executable, "-m", "workers.cli", "--inference"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and "VRFT_BROKER_URL" in done.stderr


def test_one_inference_process_per_gpu_is_parsed():
    args = parse_with_console_script(["vrft-worker", "--inference", "--gpus", "0,1"])
    assert args.inference and args.gpus == "0,1"
