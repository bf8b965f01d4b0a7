"""The training configuration: one frozen dataclass, every field commented.

The defaults are the paper's Visual-RFT settings where it has one (G 8, β 0.04, temperature 1,
256 new tokens, ε 0.2, grad-norm clip 1.0, 401,408 max pixels) and a LoRA-sized learning rate.
`TrainConfig.from_dict` rejects unknown keys so that a typo never silently trains with a default.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workers.training.algo import LOSS_TYPES, SCALES
from workers.training.lora import DEFAULT_TARGETS
from workers.training.processor import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS

ROLLOUT_ENGINES = ("static", "generate")


@dataclass(frozen=True)
class TrainConfig:
    # --- model -------------------------------------------------------------------------------
    model: str = "vrft/tiny-qwen2-vl"  # local folder, built-in tiny name, or a hub id already cached
    model_cache_dir: str | None = None  # where tiny models are built (default ~/.cache/vrft/models)
    output_dir: str = "var/train"  # final adapter here; checkpoints in output_dir/checkpoints/step-<n>
    device: str = "auto"  # "auto" (cuda if available), "cpu", "cuda", "cuda:1"
    dtype: str = "auto"  # "auto" (bf16 on GPU, fp32 on CPU), "bf16", "fp16", "fp32"
    min_pixels: int = DEFAULT_MIN_PIXELS  # images are resized to within [min_pixels, max_pixels]
    max_pixels: int = DEFAULT_MAX_PIXELS
    seed: int = 0  # seeds python, numpy, torch, the data order and the adapter init
    init_adapter: str | None = None  # a PEFT adapter folder merged into the base first: start from (and take as
    #                                  the KL reference) that fine-tuned model — fine-tuning an `ft:` model

    # --- data and steps ----------------------------------------------------------------------
    prompts_per_step: int = 2  # prompts per optimizer step (paper: 16); each gets group_size completions
    grad_accum: int = 1  # split those prompts into this many micro-batches (memory knob; same maths)
    max_steps: int | None = None  # number of GRPO steps; None → n_epochs over the training data
    n_epochs: float = 1.0

    # --- GRPO --------------------------------------------------------------------------------
    group_size: int = 8  # G: completions sampled per prompt
    beta: float = 0.04  # KL weight (k3 estimator against the adapter-disabled model); 0 skips the ref pass
    loss_type: str = "grpo"  # "grpo" (paper: per-sequence mean), "dapo" (token mean), "dr_grpo"
    scale_rewards: str = "group"  # advantage std: "group" (paper), "batch", "none" (Dr. GRPO)
    num_iterations: int = 1  # μ: optimizer updates per rollout batch (>1 → clipped ratio vs old log-probs)
    epsilon: float = 0.2  # PPO clip, lower side (and upper unless epsilon_high is set)
    epsilon_high: float | None = None  # DAPO's asymmetric upper clip, e.g. 0.28

    # --- sampling ----------------------------------------------------------------------------
    temperature: float = 1.0  # log-probs are computed at the same temperature
    top_p: float = 1.0
    max_completion_tokens: int = 256

    # --- optimisation ------------------------------------------------------------------------
    learning_rate: float = 1e-5
    lr_schedule: str = "constant"  # "constant" or "cosine" (to 0), both after a linear warm-up
    warmup_steps: int = 0  # optimizer updates of linear warm-up from 0
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    max_grad_norm: float = 1.0

    # --- LoRA --------------------------------------------------------------------------------
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: tuple[str, ...] = field(default=DEFAULT_TARGETS)  # LLM layers only, never vision
    gradient_checkpointing: bool = False

    # --- speed knobs -------------------------------------------------------------------------
    logit_chunk_tokens: int = 1024  # completion tokens projected to the vocabulary at a time
    rollout_engine: str = "static"  # "static" (engine.py: prefill once, static cache) or "generate" (HF, fallback)
    cuda_graphs: bool = True  # static engine on CUDA: replay the token step as a captured graph
    share_prompt: bool = True  # log-prob passes: each prompt once per group (packing.py); False: per completion

    # --- checkpoints, evaluation, logging ----------------------------------------------------
    checkpoint_interval: int = 0  # write step-<n>/ every n steps (0: only on pause); final adapter always
    resume_from: str | None = None  # a step-<n>/ folder: continue exactly from there
    eval_interval: int = 0  # evaluate on val_data every n steps (0: only at the end, if val_data given)
    eval_samples: int | None = None  # cap on validation examples per evaluation
    eval_before_training: bool = True  # evaluate the base model (step 0) first, for base-vs-tuned
    eval_task: str | None = None  # task metric: "classification", "detection", "grounding" or None
    rollouts_logged_per_step: int = 2  # prompts whose rollouts go to hooks.on_rollouts

    def __post_init__(self) -> None:
        checks = [
            (self.group_size >= 2, "group_size must be >= 2"),
            (self.prompts_per_step >= 1, "prompts_per_step must be >= 1"),
            (self.grad_accum >= 1 and self.prompts_per_step % self.grad_accum == 0,
             "grad_accum must divide prompts_per_step"),
            (self.loss_type in LOSS_TYPES, f"loss_type must be one of {LOSS_TYPES}"),
            (self.scale_rewards in SCALES, f"scale_rewards must be one of {SCALES}"),
            (self.num_iterations >= 1, "num_iterations must be >= 1"),
            (self.lr_schedule in ("constant", "cosine"), "lr_schedule must be 'constant' or 'cosine'"),
            (self.rollout_engine in ROLLOUT_ENGINES, f"rollout_engine must be one of {ROLLOUT_ENGINES}"),
            (self.temperature > 0, "temperature must be > 0"),
            (0 < self.top_p <= 1, "top_p must be in (0, 1]"),
            (self.max_completion_tokens >= 1, "max_completion_tokens must be >= 1"),
            (self.max_steps is None or self.max_steps >= 1, "max_steps must be >= 1"),
            (0 < self.min_pixels <= self.max_pixels, "need 0 < min_pixels <= max_pixels"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        # JSON gives lists; keep the dataclass hashable/frozen-friendly
        object.__setattr__(self, "lora_target_modules", tuple(self.lora_target_modules))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields: {', '.join(unknown)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["lora_target_modules"] = list(self.lora_target_modules)
        return out

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A JSON or YAML file (by extension) → dict."""
    path = Path(path)
    text = path.read_text()
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        return yaml.safe_load(text) or {}
    return json.loads(text)
