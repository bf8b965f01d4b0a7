"""Checkpoints that resume exactly: adapter + optimizer + scheduler + RNG states + data cursor + step.

Layout of `<output_dir>/checkpoints/step-<n>/`:
  adapter_config.json, adapter_model.safetensors   PEFT format: `PeftModel.from_pretrained` loads it
  trainer_state.pt                                  optimizer, scheduler, RNG states, cursor, step
  metrics.json, train_config.json                   for people and the API

A folder is written under a temporary name and renamed when complete, so a crash mid-write never
leaves a folder that looks like a checkpoint. Resuming restores the RNG states *after* the model
is rebuilt, so sampling and LoRA dropout continue the same random stream: N straight steps and
k + resume + (N−k) steps give the same adapter (on CPU, within float tolerance).
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

STATE_FILE = "trainer_state.pt"

# Files of the base model folder that make an adapter folder self-sufficient to run (processor side).
PROCESSOR_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json",
                   "added_tokens.json", "preprocessor_config.json", "chat_template.jinja", "chat_template.json",
                   "generation_config.json")


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _atomic_dir(final: Path, write) -> Path:
    """Call write(tmp_dir), then move tmp_dir to `final` (replacing an older folder of that name)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        write(tmp)
        if final.exists():
            old = final.with_name(f".{final.name}-old")
            shutil.rmtree(old, ignore_errors=True)
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def copy_processor_files(model_dir: Path, target: Path) -> None:
    for name in PROCESSOR_FILES:
        if (model_dir / name).is_file():
            shutil.copy2(model_dir / name, target / name)


def save_checkpoint(folder: Path, *, model, optimizer, scheduler, step: int, cursor: int,
                    metrics: dict[str, Any], config: dict[str, Any], extra: dict[str, Any] | None = None) -> Path:
    def write(tmp: Path) -> None:
        model.save_pretrained(str(tmp))
        torch.save({"step": step, "cursor": cursor, "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "rng": rng_state(), **(extra or {})}, tmp / STATE_FILE)
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
        (tmp / "train_config.json").write_text(json.dumps(config, indent=2, default=str))

    return _atomic_dir(folder, write)


def save_adapter(folder: Path, *, model, model_dir: Path, metrics: dict[str, Any], config: dict[str, Any]) -> Path:
    """The final artifact: PEFT adapter + the processor files needed to run it."""
    def write(tmp: Path) -> None:
        model.save_pretrained(str(tmp))
        copy_processor_files(model_dir, tmp)
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
        (tmp / "train_config.json").write_text(json.dumps(config, indent=2, default=str))

    return _atomic_dir(folder, write)


# A run that started from a fine-tuned model (TrainConfig.init_adapter) keeps its own adapter at the
# checkpoint's root (what resume loads) and the adapter to hand out, composed with the one it started
# from so that it loads on the plain base model (lora.compose_adapters), in this subfolder.
STANDALONE = "standalone"


def export_dir(folder: Path) -> Path:
    """The adapter of a checkpoint to publish: its standalone composition if it has one, else itself."""
    return folder / STANDALONE if (folder / STANDALONE).is_dir() else folder


def load_state(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not a checkpoint (no {STATE_FILE})")
    # Our own file, holding python/numpy RNG tuples: full unpickling is needed and safe here.
    return torch.load(path, map_location="cpu", weights_only=False)


def checkpoint_dir(output_dir: str | Path, step: int) -> Path:
    return Path(output_dir) / "checkpoints" / f"step-{step}"
