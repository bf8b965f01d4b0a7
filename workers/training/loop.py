"""The training loop both methods share: build the run, resume, step, checkpoint, evaluate, save.

`run_loop` owns everything around a step — the data cursor, stop requests (pause writes a checkpoint,
cancel does not), periodic checkpoints and evaluations, the step-0 evaluation of the base model, and
the final adapter — so GRPO (grpo.py) and SFT (sft.py) each write only their step and their
evaluation, reading top to bottom. A checkpoint holds adapter + optimizer + scheduler + RNG + data
cursor: a resumed run continues the very same random stream and prompt order.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workers.training import distributed
from workers.training.checkpoint import (
    STANDALONE,
    STATE_FILE,
    checkpoint_dir,
    load_state,
    save_adapter,
    save_checkpoint,
    set_rng_state,
)
from workers.training.config import TrainConfig
from workers.training.data import PromptOrder
from workers.training.hooks import bind
from workers.training.lora import attach_lora, compose_adapters, load_lora, merge_adapter
from workers.training.model import LoadedModel, load_model


@dataclass
class TrainResult:
    adapter_dir: Path | None  # final adapter (PEFT format + processor files); None if stopped
    steps: int  # last completed step
    metrics: list[dict[str, Any]] = field(default_factory=list)  # per-step metrics of this run
    stopped: str | None = None  # "cancel" / "pause" when should_stop() ended the run
    checkpoint_dir: Path | None = None  # last checkpoint written (the pause checkpoint on pause)
    eval_metrics: dict[str, Any] | None = None  # last evaluation, if any
    model: Any = field(default=None, repr=False)  # the trained peft model, still in memory (notebooks, tests)


@dataclass
class Run:
    """What a step needs, built once by `build_run`."""

    config: TrainConfig
    loaded: LoadedModel
    model: Any  # the peft model
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    params: list[torch.nn.Parameter]
    device: torch.device
    reward_fn: Any = None  # GRPO: the reward function and its name (make_reward_fn)
    grader_name: str = ""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def total_steps(config: TrainConfig, n_examples: int) -> int:
    if config.max_steps is not None:
        return config.max_steps
    return max(1, math.ceil(config.n_epochs * n_examples / config.prompts_per_step))


def lr_lambda(config: TrainConfig, total_updates: int):
    """Factor on the base lr for optimizer update u (0-based): linear warm-up, then constant/cosine."""
    warmup = config.warmup_steps

    def factor(u: int) -> float:
        if u < warmup:
            return (u + 1) / (warmup + 1)
        if config.lr_schedule == "constant":
            return 1.0
        progress = (u - warmup) / max(1, total_updates - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def build_run(config: TrainConfig) -> tuple[Run, dict[str, Any] | None]:
    """Model + LoRA (fresh, or the checkpoint's when resuming) + optimizer; the checkpoint state if resuming.

    With `config.init_adapter` (a fine-tuned model as the starting point) that adapter is merged into the
    base weights first: the new adapter trains on top of the fine-tuned model, and the reference policy
    (adapter disabled) is that fine-tuned model, not the original base.
    """
    loaded = load_model(config.model, device=config.device, dtype=config.dtype, min_pixels=config.min_pixels,
                        max_pixels=config.max_pixels, cache_dir=config.model_cache_dir)
    if config.init_adapter:
        loaded.model = merge_adapter(loaded.model, config.init_adapter)
    state = None
    if config.resume_from:
        model = load_lora(loaded.model, config.resume_from, trainable=True,
                          gradient_checkpointing=config.gradient_checkpointing)
        state = load_state(config.resume_from)
    else:
        model = attach_lora(loaded.model, r=config.lora_r, alpha=config.lora_alpha, dropout=config.lora_dropout,
                            target_modules=config.lora_target_modules,
                            gradient_checkpointing=config.gradient_checkpointing, seed=config.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, betas=(config.adam_beta1, config.adam_beta2),
                                  weight_decay=config.weight_decay)
    return Run(config, loaded, model, optimizer, None, params, next(model.parameters()).device), state  # type: ignore[arg-type]


StepFn = Callable[[Run, list[dict[str, Any]], int], tuple[dict[str, Any], list[dict[str, Any]]]]
EvalFn = Callable[[Run], dict[str, Any]]


def run_loop(run: Run, state: dict[str, Any] | None, train_data: Sequence[dict[str, Any]],
             val_data: Sequence[dict[str, Any]] | None, hooks: Any, *, step_fn: StepFn, eval_fn: EvalFn,
             updates_per_step: int = 1) -> TrainResult:
    """Run `step_fn` on `prompts_per_step` examples at a time until the configured number of steps.

    `step_fn(run, examples, step) -> (metrics, rollouts to log)`; `eval_fn(run) -> metrics` on val_data.
    `updates_per_step`: optimizer updates a step makes (GRPO's μ), for the learning-rate schedule.
    """
    config = run.config
    world = distributed.current()
    if not world.is_main:  # rank 0 alone reports, checkpoints and evaluates; the others follow its stop requests
        hooks = bind(None)
    steps_total = total_steps(config, len(train_data))
    run.scheduler = torch.optim.lr_scheduler.LambdaLR(run.optimizer, lr_lambda(config, steps_total * updates_per_step))
    step, cursor, elapsed_before = 0, 0, 0.0
    if state is not None:
        run.optimizer.load_state_dict(state["optimizer"])
        run.scheduler.load_state_dict(state["scheduler"])
        step, cursor, elapsed_before = state["step"], state["cursor"], state.get("elapsed_s", 0.0)
        set_rng_state(state["rng"])  # after the model is built: continue the very same random stream
    else:
        seed_everything(config.seed)
    order = PromptOrder(len(train_data), config.seed)
    history: list[dict[str, Any]] = []
    last_ckpt: Path | None = None
    eval_metrics = None
    started = time.perf_counter()

    def checkpoint(metrics: dict[str, Any]) -> Path:
        if not world.is_main:
            return checkpoint_dir(config.output_dir, step)
        path = save_checkpoint(checkpoint_dir(config.output_dir, step), model=run.model, optimizer=run.optimizer,
                               scheduler=run.scheduler, step=step, cursor=cursor, metrics=metrics,
                               config=config.to_dict(),
                               extra={"elapsed_s": elapsed_before + time.perf_counter() - started})
        if config.init_adapter:
            compose_adapters(config.init_adapter, path, path / STANDALONE, skip=(STATE_FILE,))
        hooks.on_checkpoint(path, step, metrics)
        return path

    def run_eval() -> dict[str, Any] | None:
        if not world.is_main:
            return None
        result = eval_fn(run)
        result["step"] = step
        hooks.on_eval(step, result)
        return result

    if val_data and config.eval_before_training and state is None:
        # the LoRA B matrices start at zero, so the policy at step 0 *is* the starting model
        eval_metrics = run_eval()
    while step < steps_total:
        reason = distributed.broadcast(hooks.should_stop())
        if reason:
            if reason == "pause":
                last_ckpt = checkpoint(history[-1] if history else {"step": step})
            return TrainResult(None, step, history, stopped=reason, checkpoint_dir=last_ckpt,
                               eval_metrics=eval_metrics, model=run.model)
        examples = [train_data[i] for i in order.take(cursor, config.prompts_per_step)]
        cursor += config.prompts_per_step
        step += 1
        metrics, logged = step_fn(run, examples, step)
        metrics["elapsed_s"] = elapsed_before + time.perf_counter() - started
        metrics["epoch"] = cursor / len(train_data)
        history.append(metrics)
        hooks.on_step(metrics)
        if logged:
            hooks.on_rollouts(step, logged)
        if config.checkpoint_interval and step % config.checkpoint_interval == 0 and step < steps_total:
            last_ckpt = checkpoint(metrics)
        if val_data and config.eval_interval and step % config.eval_interval == 0 and step < steps_total:
            eval_metrics = run_eval()

    if val_data:
        eval_metrics = run_eval()
    final_metrics = dict(history[-1]) if history else {"step": step}
    if eval_metrics:
        final_metrics["eval"] = eval_metrics
    if config.checkpoint_interval and step % config.checkpoint_interval == 0:
        last_ckpt = checkpoint(final_metrics)
    adapter = Path(config.output_dir) / "adapter"
    if world.is_main:
        own = Path(config.output_dir) / "adapter-own" if config.init_adapter else adapter
        save_adapter(own, model=run.model, model_dir=run.loaded.path, metrics=final_metrics,
                     config=config.to_dict())
        if config.init_adapter:  # publish one adapter that loads on the plain base model
            compose_adapters(config.init_adapter, own, adapter)
    distributed.barrier()  # no rank leaves (and no launcher reports success) before the adapter is complete
    return TrainResult(adapter, step, history, stopped=None, checkpoint_dir=last_ckpt, eval_metrics=eval_metrics,
                       model=run.model)
