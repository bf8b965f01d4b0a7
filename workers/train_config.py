"""A job → the trainer's ``TrainConfig``, field for field: the one place the API's vocabulary
(``ResolvedHyperparameters``, checked when the job was created) meets the trainer's.

Nothing here has a default or a cast of its own: every value is the job's, or the worker's (where
files go). Trainer knobs a job does not expose (device, dtype, clip ε, warm-up, the rollout engine)
keep ``TrainConfig``'s own values.
"""

from __future__ import annotations

from typing import Any

from app.graders import metric_task
from app.jobs.hyperparameters import Resolved, ResolvedHyperparameters
from workers.training.config import TrainConfig


def train_config(hp: Resolved, *, model: str, seed: int, grader: dict | None, model_cache_dir: str,
                 output_dir: str, resume_from: str | None, init_adapter: str | None = None) -> TrainConfig:
    """``hp`` of either method; a supervised job's (``ResolvedSupervised``) has no GRPO fields, and the
    trainer's GRPO knobs, which SFT never reads, keep ``TrainConfig``'s values."""
    grpo: dict[str, Any] = {}
    if isinstance(hp, ResolvedHyperparameters):
        grpo = dict(group_size=hp.group_size, beta=hp.beta, loss_type=hp.loss_type, scale_rewards=hp.scale_rewards,
                    num_iterations=hp.num_iterations, temperature=hp.temperature, top_p=hp.top_p)
    return TrainConfig(
        model=model, model_cache_dir=model_cache_dir, output_dir=output_dir, seed=seed, init_adapter=init_adapter,
        min_pixels=hp.min_pixels, max_pixels=hp.max_pixels,
        prompts_per_step=hp.batch_size, grad_accum=hp.gradient_accumulation_steps,
        max_steps=hp.max_steps, n_epochs=hp.n_epochs, **grpo,
        max_completion_tokens=hp.max_completion_tokens, learning_rate=hp.learning_rate,
        lora_r=hp.lora.r, lora_alpha=hp.lora.alpha, lora_dropout=hp.lora.dropout,
        lora_target_modules=tuple(hp.lora.target_modules), gradient_checkpointing=hp.gradient_checkpointing,
        checkpoint_interval=hp.checkpoint_interval, eval_interval=hp.eval_interval,
        eval_samples=hp.eval_samples, eval_task=metric_task(grader) if grader else None, resume_from=resume_from,
    )
