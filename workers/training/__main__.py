"""`python -m workers.training CONFIG` — train from a JSON or YAML file, print metrics as JSON lines.

The file holds every `TrainConfig` field you want to set, flat, plus:
  train_file   JSONL of {"id", "prompt", "image": data URL or path, "item": {...}} (see data.read_jsonl)
  val_file     optional, same format; evaluated at eval_interval and at the end
  grader       a grader spec (inline object, or the path of a JSON file holding one), scored by
               app.graders; or "package.module:function" naming a reward_fn(samples, items)
  method       "grpo" (default, needs a grader) or "sft" (supervised: rows' item.solution or chat rows
               {"messages", "images"} are the targets; a grader, if given, adds a task metric to evaluations)
Relative paths are relative to the config file. Example:

  {"model": "vrft/tiny-qwen2-vl", "output_dir": "var/run1", "train_file": "train.jsonl",
   "grader": {"type": "label_match", "name": "accuracy", "input": "{{sample.output_text}}",
              "reference": "{{item.solution}}"},
   "max_steps": 20, "group_size": 8, "learning_rate": 1e-4}

The adapter is written to <output_dir>/adapter, checkpoints to <output_dir>/checkpoints/step-<n>.
Under torchrun (`torchrun --nproc-per-node 2 -m workers.training CONFIG`) the job runs data-parallel,
one rank per process (distributed.py); rank 0 prints and writes.
Ctrl-C pauses after the current step (a checkpoint is written; resume with "resume_from").
"""

from __future__ import annotations

import argparse
import importlib
import json
import signal
import sys
from pathlib import Path
from typing import Any

CLI_KEYS = ("train_file", "val_file", "grader", "method")


def _resolve(base: Path, value: str | None) -> Path | None:
    if value is None:
        return None
    path = Path(value)
    return path if path.is_absolute() else base / path


def load_grader(value: Any, base: Path):
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and ":" in value and not value.endswith(".json"):
        module, _, attr = value.partition(":")
        return getattr(importlib.import_module(module), attr)
    if isinstance(value, str):
        return json.loads(_resolve(base, value).read_text())
    raise ValueError("grader must be a spec object, a JSON file path, or 'module:function'")


class PrintHooks:
    """Metrics to stdout as JSON lines; Ctrl-C → pause at the next step boundary."""

    def __init__(self) -> None:
        self.stop: str | None = None

    def on_step(self, metrics: dict) -> None:
        print(json.dumps({"event": "step", **metrics}), flush=True)

    def on_checkpoint(self, path: Path, step: int, metrics: dict) -> None:
        print(json.dumps({"event": "checkpoint", "step": step, "path": str(path)}), flush=True)

    def on_eval(self, step: int, metrics: dict) -> None:
        print(json.dumps({"event": "eval", **{k: v for k, v in metrics.items() if k != "samples"}}), flush=True)

    def should_stop(self) -> str | None:
        return self.stop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.training", description=__doc__.split("\n")[0])
    parser.add_argument("config", type=Path, help="JSON or YAML file (see module docstring)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)

    import torch

    from workers.training import distributed
    from workers.training.config import TrainConfig, read_config_file
    from workers.training.data import read_jsonl
    from workers.training.grpo import train
    from workers.training.sft import train_sft

    if args.threads:
        torch.set_num_threads(args.threads)
    raw = read_config_file(args.config)
    base = args.config.resolve().parent
    method = raw.get("method", "grpo")
    if method not in ("grpo", "sft"):
        parser.error(f"method must be 'grpo' or 'sft', not {method!r}")
    if "train_file" not in raw or (method == "grpo" and "grader" not in raw):
        parser.error("the config file needs 'train_file' (and 'grader' for GRPO)")
    fields = {k: v for k, v in raw.items() if k not in CLI_KEYS}
    for key in ("output_dir", "resume_from", "model_cache_dir"):
        if fields.get(key):
            fields[key] = str(_resolve(base, fields[key]))
    model = fields.get("model")
    if model and not str(model).startswith("vrft/") and _resolve(base, model).is_dir():
        fields["model"] = str(_resolve(base, model))
    config = TrainConfig.from_dict(fields)
    train_data = read_jsonl(_resolve(base, raw["train_file"]))
    val_data = read_jsonl(_resolve(base, raw["val_file"])) if raw.get("val_file") else None
    grader = load_grader(raw["grader"], base) if raw.get("grader") is not None else None

    hooks = PrintHooks()

    def pause(signum, frame):
        hooks.stop = "pause"
        print(json.dumps({"event": "pause_requested"}), file=sys.stderr, flush=True)

    signal.signal(signal.SIGINT, pause)
    result = (train if method == "grpo" else train_sft)(config, train_data, val_data=val_data, grader=grader,
                                                         hooks=hooks)
    if distributed.current().is_main:
        print(json.dumps({"event": "done", "steps": result.steps, "stopped": result.stopped,
                          "adapter_dir": str(result.adapter_dir) if result.adapter_dir else None,
                          "checkpoint_dir": str(result.checkpoint_dir) if result.checkpoint_dir else None}), flush=True)
    distributed.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
