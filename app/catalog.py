"""Base models a job may name: the operator's (``VRFT_BASE_MODELS``) plus the built-in tiny ones.

The tiny models are random-initialised Qwen-VL architectures the worker builds from configs, so the
whole path — upload, train, download an adapter — runs on a CPU with no downloads.
"""

from __future__ import annotations

import json
from pathlib import Path

from app.config import Settings

# config.json model_type -> family; the box convention of each family's answers
MODEL_TYPES = {"qwen2_vl": "qwen2-vl", "qwen2_5_vl": "qwen2.5-vl", "qwen3_vl": "qwen3-vl", "qwen3_vl_moe": "qwen3-vl"}
ANSWER_COORDS = {"qwen2-vl": "norm1000", "qwen2.5-vl": "pixels_resized", "qwen3-vl": "norm1000"}

BUILTIN_TINY_MODELS = {
    "vrft/tiny-qwen2-vl": "qwen2-vl",
    "vrft/tiny-qwen2.5-vl": "qwen2.5-vl",
    "vrft/tiny-qwen3-vl": "qwen3-vl",
}


def base_models(settings: Settings) -> dict[str, str]:
    """name -> location (a local folder, a hub id, or ``builtin:<family>``)."""
    models = {name: f"builtin:{family}" for name, family in BUILTIN_TINY_MODELS.items()}
    models.update(settings.base_models)
    return models


def is_known(settings: Settings, name: str) -> bool:
    return name in base_models(settings)


def family(settings: Settings, name: str) -> str | None:
    """The model family, when it can be told without loading anything (None for a hub id)."""
    location = base_models(settings).get(name, "")
    if location.startswith("builtin:"):
        return location.removeprefix("builtin:")
    config = Path(location) / "config.json"
    if config.is_file():
        try:
            return MODEL_TYPES.get(json.loads(config.read_text()).get("model_type"))
        except (OSError, ValueError):
            return None
    lowered = name.lower()  # hub ids name their family: Qwen/Qwen2.5-VL-7B-Instruct
    for marker, fam in (("qwen2.5-vl", "qwen2.5-vl"), ("qwen2_5_vl", "qwen2.5-vl"), ("qwen3-vl", "qwen3-vl"),
                        ("qwen2-vl", "qwen2-vl")):
        if marker in lowered:
            return fam
    return None
