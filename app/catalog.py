"""Base models a job may name: the operator's (``VRFT_BASE_MODELS``) plus the built-in tiny ones,
and the one table of model families.

The tiny models are random-initialised Qwen-VL architectures the worker builds from configs, so the
whole path — upload, train, download an adapter — runs on a CPU with no downloads.

``FAMILIES`` holds what both sides must agree on, with no torch: the trainer's own family table
(``workers.training.model.FAMILIES``) and its tiny-model names are built from it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the trainer imports FAMILIES without the API's settings
    from app.config import Settings


@dataclass(frozen=True)
class Family:
    model_types: tuple[str, ...]  # config.json ``model_type`` values of this family
    answer_coords: str  # how its answers write boxes (VISUAL_RFT.md "Coordinates"); box graders default to it
    tiny_model: str  # the built-in random model of this family
    hub_markers: tuple[str, ...]  # how hub ids name it (lower-cased): Qwen/Qwen2.5-VL-7B-Instruct


FAMILIES: dict[str, Family] = {
    "qwen2-vl": Family(("qwen2_vl",), "norm1000", "vrft/tiny-qwen2-vl", ("qwen2-vl",)),
    "qwen2.5-vl": Family(("qwen2_5_vl",), "pixels_resized", "vrft/tiny-qwen2.5-vl", ("qwen2.5-vl", "qwen2_5_vl")),
    "qwen3-vl": Family(("qwen3_vl", "qwen3_vl_moe"), "norm1000", "vrft/tiny-qwen3-vl", ("qwen3-vl",)),
}
MODEL_TYPES = {t: name for name, fam in FAMILIES.items() for t in fam.model_types}  # model_type -> family
BUILTIN_TINY_MODELS = {fam.tiny_model: name for name, fam in FAMILIES.items()}  # tiny name -> family


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
    for fam_name, fam in FAMILIES.items():
        if any(marker in lowered for marker in fam.hub_markers):
            return fam_name
    return None


def answer_coords(settings: Settings, name: str) -> str | None:
    """The box convention of the model's answers, when its family can be told (else None)."""
    fam = family(settings, name)
    return FAMILIES[fam].answer_coords if fam is not None else None


# The built-in tiny models' sizes (counted from the models the worker builds; a test keeps them true).
TINY_PARAMETERS = {"vrft/tiny-qwen2-vl": 188_416, "vrft/tiny-qwen2.5-vl": 192_480, "vrft/tiny-qwen3-vl": 226_848}


def parameter_count(settings: Settings, name: str) -> int | None:
    """Roughly how many parameters a base model has, told without loading it (None: unknown).

    Enough to decide size-driven defaults such as gradient checkpointing (on above 1 B): the tiny
    models' counts, else the size a hub-style name states (``Qwen2-VL-2B-Instruct`` → 2 B, for the
    name or the operator's folder), else an estimate from a local ``config.json``.
    """
    if name in TINY_PARAMETERS:
        return TINY_PARAMETERS[name]
    location = base_models(settings).get(name, "")
    for text in (name, Path(location).name):
        found = re.search(r"(?<![A-Za-z0-9.])(\d+(?:\.\d+)?)B(?![A-Za-z])", text, re.IGNORECASE)
        if found:
            return int(float(found.group(1)) * 1e9)
    try:
        config = json.loads((Path(location) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    text = config.get("text_config") or config
    try:
        hidden, layers = int(text["hidden_size"]), int(text["num_hidden_layers"])
        mlp, vocab = int(text.get("intermediate_size", 4 * hidden)), int(text["vocab_size"])
    except (KeyError, TypeError, ValueError):
        return None
    # per layer: attention (≤ 4 h²) + gated MLP (3 h·i); embeddings and the LM head (2 v·h)
    return layers * (4 * hidden * hidden + 3 * hidden * mlp) + 2 * vocab * hidden
