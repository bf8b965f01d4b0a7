"""Base models a job may name: the operator's (``VRFT_BASE_MODELS``) plus the built-in tiny ones.

The tiny models are random-initialised Qwen-VL architectures the worker builds from configs, so the
whole path — upload, train, download an adapter — runs on a CPU with no downloads.
"""

from __future__ import annotations

from app.config import Settings

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
