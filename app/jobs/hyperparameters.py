"""Job hyperparameters: OpenAI's names plus vrft's, each a value or ``"auto"``, and how auto resolves.

Pure functions, shared by the API (to validate and show ``progress.total_steps`` at once) and the
worker (to train with exactly what the job row says).

Auto rules (also in the README):
- ``batch_size`` (prompts per optimizer step): min(16, rows) — the paper's 16 prompts × 8 completions.
- ``n_epochs``: enough passes to reach ~200 steps (the paper found 200 "sufficient"), clamped to 1..50;
  with an explicit ``max_steps``, the passes those steps amount to.
- ``max_steps``: ceil(rows / batch_size) × n_epochs.
- ``learning_rate``: 5e-5 × learning_rate_multiplier (LoRA wants far more than the paper's full-weight 1e-6).
- ``checkpoint_interval``: ceil(max_steps / 4); ``eval_interval``: the checkpoint interval.
- ``eval_samples``: min(validation rows, 64).
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Auto = Literal["auto"]
BASE_LEARNING_RATE = 5e-5


class LoraSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    r: int = Field(default=16, ge=1, le=512)
    alpha: float = Field(default=32, gt=0)
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: list[str] | None = None  # None = the language model's attention + MLP projections


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # OpenAI's
    n_epochs: int | Auto = "auto"
    batch_size: int | Auto = "auto"
    learning_rate_multiplier: float | Auto = "auto"
    eval_interval: int | Auto = "auto"
    eval_samples: int | Auto = "auto"
    reasoning_effort: str | None = None  # accepted for openai-python parity, unused by VLM training
    compute_multiplier: float | Auto | None = None  # likewise
    # vrft's
    group_size: int = Field(default=8, ge=2, le=64)
    beta: float = Field(default=0.04, ge=0)
    learning_rate: float | Auto = "auto"
    max_completion_tokens: int = Field(default=256, ge=1, le=8192)
    temperature: float = Field(default=1.0, gt=0, le=2)
    top_p: float = Field(default=1.0, gt=0, le=1)
    loss_type: Literal["grpo", "dr_grpo", "dapo"] = "grpo"
    scale_rewards: Literal["group", "batch", "none"] = "group"
    num_iterations: int = Field(default=1, ge=1, le=16)
    max_steps: int | Auto = "auto"
    lora: LoraSettings = Field(default_factory=LoraSettings)
    max_pixels: int = Field(default=401_408, ge=3136)
    min_pixels: int = Field(default=3_136, ge=784)
    checkpoint_interval: int | Auto = "auto"
    gradient_accumulation_steps: int = Field(default=1, ge=1, le=64)


def _positive(name: str, value) -> None:
    if value != "auto" and value is not None and value <= 0:
        raise ValueError(f"{name} must be positive")


def check(hp: Hyperparameters) -> Hyperparameters:
    for name in ("n_epochs", "batch_size", "learning_rate_multiplier", "eval_interval", "learning_rate",
                 "max_steps", "checkpoint_interval"):
        _positive(name, getattr(hp, name))
    if hp.eval_samples != "auto" and hp.eval_samples < 0:
        raise ValueError("eval_samples must be >= 0")
    return hp


def resolve(hp: Hyperparameters, *, train_rows: int, val_rows: int = 0) -> dict:
    """Replace every ``"auto"`` with a number; returns a plain dict the trainer consumes."""
    batch = hp.batch_size if hp.batch_size != "auto" else max(1, min(16, train_rows))
    steps_per_epoch = max(1, math.ceil(train_rows / batch))
    if hp.n_epochs != "auto":
        epochs = hp.n_epochs
    elif hp.max_steps != "auto":  # the step budget decides; show the passes it amounts to
        epochs = max(1, math.ceil(hp.max_steps / steps_per_epoch))
    else:
        epochs = min(50, max(1, math.ceil(200 / steps_per_epoch)))
    max_steps = hp.max_steps if hp.max_steps != "auto" else steps_per_epoch * epochs
    multiplier = hp.learning_rate_multiplier if hp.learning_rate_multiplier != "auto" else 1.0
    lr = hp.learning_rate if hp.learning_rate != "auto" else BASE_LEARNING_RATE * multiplier
    ckpt = hp.checkpoint_interval if hp.checkpoint_interval != "auto" else max(1, math.ceil(max_steps / 4))
    eval_interval = hp.eval_interval if hp.eval_interval != "auto" else ckpt
    eval_samples = hp.eval_samples if hp.eval_samples != "auto" else min(val_rows, 64)
    out = hp.model_dump()
    out.update(
        batch_size=batch, n_epochs=epochs, max_steps=max_steps, learning_rate_multiplier=multiplier,
        learning_rate=lr, checkpoint_interval=ckpt, eval_interval=eval_interval, eval_samples=eval_samples,
    )
    return out
