"""`python -m workers.training CONFIG` end to end, in a subprocess, on a tiny model."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.training.helpers import COLOURS, png

ROOT = Path(__file__).resolve().parents[2]


def run_cli(config: Path) -> list[dict]:
    """`python -m workers.training CONFIG` in a subprocess → the JSON events it printed (it must succeed)."""
    proc = subprocess.run([sys.executable, "-m", "workers.training", str(config), "--threads", "1"], cwd=ROOT,
                          env=os.environ | {"PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def test_cli_trains_from_a_jsonl_and_writes_the_adapter(model_cache, tmp_path):
    rows = []
    for i, (name, rgb) in enumerate(COLOURS.items()):
        if i == 0:  # an image given as a path, relative to the JSONL file
            (tmp_path / "red.png").write_bytes(png(rgb))
            image = "red.png"
        else:
            image = "data:image/png;base64," + base64.b64encode(png(rgb)).decode()
        rows.append({"id": name, "prompt": "Colour?", "image": image, "item": {"label": i}})
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "run.yaml").write_text(
        "model: vrft/tiny-qwen2.5-vl\n"
        f"model_cache_dir: {model_cache}\n"
        "output_dir: out\n"
        "train_file: train.jsonl\n"
        "val_file: train.jsonl\n"
        "grader: tests.training.helpers:byte_value_reward\n"
        "max_steps: 2\ngroup_size: 4\nprompts_per_step: 3\nmax_completion_tokens: 3\ncheckpoint_interval: 1\n")
    events = run_cli(tmp_path / "run.yaml")
    assert [e["step"] for e in events if e["event"] == "step"] == [1, 2]
    assert [e["event"] for e in events].count("checkpoint") == 2
    assert any(e["event"] == "eval" and "reward_mean" in e for e in events)
    done = events[-1]
    assert done["event"] == "done" and done["stopped"] is None
    assert Path(done["adapter_dir"]) == tmp_path / "out" / "adapter"
    assert (tmp_path / "out" / "adapter" / "adapter_model.safetensors").is_file()
    assert (tmp_path / "out" / "checkpoints" / "step-2" / "trainer_state.pt").is_file()


def test_cli_runs_sft_on_chat_rows(model_cache, tmp_path):
    image = "data:image/png;base64," + base64.b64encode(png((255, 0, 0))).decode()
    chat = {"id": "c1", "images": [image], "messages": [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Colour?"}]},
        {"role": "assistant", "content": "red"}]}
    row = {"id": "r1", "prompt": "Colour?", "image": image, "item": {"solution": "red"}}
    (tmp_path / "train.jsonl").write_text(json.dumps(chat) + "\n" + json.dumps(row) + "\n")
    (tmp_path / "run.json").write_text(json.dumps({
        "method": "sft", "model": "vrft/tiny-qwen2-vl", "model_cache_dir": str(model_cache), "output_dir": "out",
        "train_file": "train.jsonl", "val_file": "train.jsonl", "max_steps": 2, "prompts_per_step": 2}))
    events = run_cli(tmp_path / "run.json")
    assert [e["step"] for e in events if e["event"] == "step"] == [1, 2]
    assert all("train_loss" in e for e in events if e["event"] == "step")
    assert any(e["event"] == "eval" and "valid_loss" in e for e in events)
    assert (tmp_path / "out" / "adapter" / "adapter_model.safetensors").is_file()
