"""vrft's trainer: Visual-RFT (GRPO with verifiable rewards) on a LoRA adapter of a Qwen VL model.

A library: it imports neither the API (`app/`, except the pure graders in `app.graders` and the
model-family table in `app.catalog`) nor Celery, and runs in a notebook or as `python -m workers.training CONFIG`.

    from workers.training import TrainConfig, train, Hooks
    result = train(TrainConfig(model="vrft/tiny-qwen2-vl", max_steps=10), train_data, grader=reward_fn)

Names are imported lazily, so `import workers.training` stays cheap until torch is needed.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "TrainConfig": "config", "read_config_file": "config",
    "train": "grpo", "TrainResult": "grpo",
    "Hooks": "hooks", "RecordingHooks": "hooks",
    "evaluate": "evaluate", "evaluate_model": "evaluate",
    "load_model": "model", "family_of": "model", "coords_for": "model", "FAMILIES": "model",
    "load_processor": "processor",
    "make_tiny_model": "tiny", "resolve_model": "tiny", "TINY_NAMES": "tiny",
    "read_jsonl": "data",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"workers.training.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'workers.training' has no attribute {name!r}")
