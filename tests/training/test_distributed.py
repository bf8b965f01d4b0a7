"""Data-parallel GRPO (distributed.py) in real processes: torchrun, gloo on CPU.

Two ranks make the same LoRA update as one rank on the same prompts; a checkpoint written by two ranks
resumes on one and one written by one rank resumes on two; two launchers on this machine form a
simulated two-node job through a c10d rendezvous on 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from tests.services import free_port
from tests.training.helpers import COLOURS, png

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _write_job(folder: Path, model_cache: Path, **changes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    def data_url(rgb) -> str:
        return "data:image/png;base64," + base64.b64encode(png(rgb)).decode()

    rows = [{"id": f"{name}{k}", "prompt": "Colour?", "image": data_url(rgb), "item": {"label": i}}
            for k in range(2) for i, (name, rgb) in enumerate(COLOURS.items())]
    (folder / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    config = dict(model="vrft/tiny-qwen2-vl", model_cache_dir=str(model_cache), output_dir=str(folder / "out"),
                  train_file="train.jsonl", grader="tests.training.helpers:byte_value_reward", max_steps=2,
                  group_size=4, prompts_per_step=4, max_completion_tokens=6, learning_rate=5e-3, lora_dropout=0.0,
                  checkpoint_interval=1, seed=5) | changes
    (folder / "job.json").write_text(json.dumps(config))
    return folder / "job.json"


def _env() -> dict:
    return os.environ | {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _run(args: list[str], timeout: int = 400) -> list[dict]:
    proc = subprocess.run(args, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def single(config: Path) -> list[dict]:
    return _run([sys.executable, "-m", "workers.training", str(config), "--threads", "1"])


def torchrun(config: Path, nproc: int = 2) -> list[dict]:
    return _run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
                 "--master-addr", "127.0.0.1", "--master-port", str(free_port()),
                 "-m", "workers.training", str(config), "--threads", "1"])


def adapter(folder: Path) -> dict:
    return load_file(str(folder / "out" / "adapter" / "adapter_model.safetensors"))


def assert_same_adapter(a: dict, b: dict) -> None:
    assert a.keys() == b.keys() and a
    for key in a:
        assert (a[key] - b[key]).abs().max() < 1e-5, key


def test_two_ranks_make_the_same_update_as_one_and_checkpoints_cross_world_sizes(model_cache, tmp_path):
    one = single(_write_job(tmp_path / "one", model_cache))
    two = torchrun(_write_job(tmp_path / "two", model_cache))
    assert_same_adapter(adapter(tmp_path / "one"), adapter(tmp_path / "two"))
    steps_one = [e for e in one if e["event"] == "step"]
    steps_two = [e for e in two if e["event"] == "step"]  # rank 0 alone reports
    assert [e["step"] for e in steps_two] == [1, 2] and all(e["world_size"] == 2 for e in steps_two)
    for a, b in zip(steps_one, steps_two, strict=True):  # metrics are whole-batch figures on any world size
        assert abs(a["reward_mean"] - b["reward_mean"]) < 1e-6 and abs(a["loss"] - b["loss"]) < 1e-6
    assert [e["event"] for e in two].count("done") == 1

    # written by two ranks, resumed on one; written by one, resumed on two
    two_to_one = _write_job(tmp_path / "two_to_one", model_cache,
                            resume_from=str(tmp_path / "two" / "out" / "checkpoints" / "step-1"))
    single(two_to_one)
    one_to_two = _write_job(tmp_path / "one_to_two", model_cache,
                            resume_from=str(tmp_path / "one" / "out" / "checkpoints" / "step-1"))
    torchrun(one_to_two)
    for folder in ("two_to_one", "one_to_two"):
        assert_same_adapter(adapter(tmp_path / "one"), adapter(tmp_path / folder))


def test_two_launchers_form_a_two_node_job_through_a_c10d_rendezvous(model_cache, tmp_path):
    config = _write_job(tmp_path / "nodes", model_cache, max_steps=1)
    port = free_port()
    launchers = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node-rank", str(rank),
         "--nproc-per-node", "1", "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}",
         "--rdzv-id", "vrft-test", "-m", "workers.training", str(config), "--threads", "1"],
        cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for rank in range(2)]
    outputs = [p.communicate(timeout=400) for p in launchers]
    assert all(p.returncode == 0 for p in launchers), [err[-3000:] for _, err in outputs]
    events = [json.loads(line) for out, _ in outputs for line in out.splitlines() if line.startswith("{")]
    steps = [e for e in events if e["event"] == "step"]
    assert len(steps) == 1 and steps[0]["world_size"] == 2
    assert (tmp_path / "nodes" / "out" / "adapter" / "adapter_model.safetensors").is_file()
