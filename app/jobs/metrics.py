"""The names a job's metrics go by, from the trainer to the events API to the dashboard.

``StepMetrics`` is what ``workers.training.grpo.train`` hands ``on_step`` (``grpo_step``'s figures
plus ``elapsed_s`` and ``epoch``); a test runs a real step and compares. ``SftStepMetrics`` is the
same for ``workers.training.sft.train_sft``. A metrics event's ``data`` is a ``StepEvent`` (or an
``SftStepEvent``); an evaluation's is an ``EvalEvent``. The dashboard's charts read these names
(a test checks ``app/dashboard/job.js`` against them). No torch here: the API imports this.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, TypedDict


class StepMetrics(TypedDict):
    step: int
    reward_mean: float
    reward_std: float
    rewards: dict[str, float]  # per grader (sub-reward) mean
    zero_variance_fraction: float  # groups whose completions all scored the same (no gradient)
    kl: float | None  # None: no update this step (every group flat)
    loss: float | None
    clip_ratio: float | None
    grad_norm: float | None
    completion_length_mean: float
    learning_rate: float
    tokens_per_s: float
    generate_time_s: float
    step_time_s: float
    elapsed_s: float  # training time so far, across resumes
    epoch: float  # passes over the training data so far
    world_size: int  # ranks (devices) the step ran on (data parallelism)


class StepEvent(StepMetrics):
    total_steps: int


class SftStepMetrics(TypedDict):
    """What ``workers.training.sft.train_sft`` hands ``on_step`` (``sft_step``'s figures plus
    ``elapsed_s`` and ``epoch``), under OpenAI's names."""
    step: int
    train_loss: float  # mean next-token loss over the step's assistant tokens
    train_mean_token_accuracy: float  # share of those tokens the model's top guess got right
    loss: float
    grad_norm: float
    learning_rate: float
    trained_tokens: int
    tokens_per_s: float
    step_time_s: float
    elapsed_s: float
    epoch: float
    world_size: int


class SftStepEvent(SftStepMetrics):
    total_steps: int


class EvalEvent(TypedDict, total=False):
    step: int
    eval: bool  # always True: tells evaluation events from step events
    valid_reward_mean: float
    valid_rewards: dict[str, float]
    valid_metric_name: str  # the task metric: accuracy (classification), map (detection), miou (grounding)
    valid_metric: float
    valid_accuracy: float
    valid_map: float
    valid_miou: float
    valid_loss: float  # supervised jobs: teacher-forced loss on the validation targets
    valid_mean_token_accuracy: float


STEP_KEYS = tuple(StepMetrics.__annotations__)
SFT_STEP_KEYS = tuple(SftStepMetrics.__annotations__)
SFT_EVAL_KEYS = ("valid_loss", "valid_mean_token_accuracy")
TASK_METRICS = ("accuracy", "map", "miou")  # what workers.training.evaluate reports per task


def finite(value: Any) -> Any:
    """``value`` with every non-finite float (a diverged step's NaN loss) as None: strict JSON has no
    NaN, and a stored NaN would make every later read of the events fail to render."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def step_event(metrics: StepMetrics, total_steps: int) -> StepEvent:
    event: dict[str, Any] = {key: metrics[key] for key in STEP_KEYS}  # type: ignore[literal-required]
    event["total_steps"] = total_steps
    return finite(event)


def sft_step_event(metrics: SftStepMetrics, total_steps: int) -> SftStepEvent:
    event: dict[str, Any] = {key: metrics[key] for key in SFT_STEP_KEYS}  # type: ignore[literal-required]
    event["total_steps"] = total_steps
    return finite(event)


def eval_event(step: int, metrics: Mapping[str, Any]) -> EvalEvent:
    """The trainer's evaluation result as event data: the grader's ``reward_mean``, ``rewards`` and one
    task metric (RFT, and SFT with a grader), and a supervised job's ``valid_loss`` and token accuracy."""
    data: dict[str, Any] = {"step": step, "eval": True}
    if "reward_mean" in metrics:
        data.update(valid_reward_mean=float(metrics["reward_mean"]), valid_rewards=dict(metrics["rewards"]))
    data.update({key: float(metrics[key]) for key in SFT_EVAL_KEYS if metrics.get(key) is not None})
    for name in TASK_METRICS:
        if metrics.get(name) is not None:
            data.update({"valid_metric_name": name, "valid_metric": float(metrics[name]),
                         f"valid_{name}": float(metrics[name])})
            break
    return finite(data)
