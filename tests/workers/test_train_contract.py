"""The job → trainer contract: hyperparameters map onto TrainConfig field for field, the metric names
the trainer emits are the ones the events and the dashboard use, the catalog's sizes are true, and the
trainer's named failures become the job error codes users see."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import torch

from app.catalog import TINY_PARAMETERS
from app.jobs.hyperparameters import DEFAULT_LORA_TARGETS, ResolvedHyperparameters, parse, resolve
from app.jobs.metrics import SFT_STEP_KEYS, STEP_KEYS, TASK_METRICS, EvalEvent, SftStepEvent, StepEvent, eval_event
from app.jobs.status import JobErrorCode
from workers.runner import JobFailure, trainer_errors
from workers.train_config import train_config
from workers.training.config import TrainConfig
from workers.training.errors import ExampleRejected, GraderFailed, ModelLoadFailed
from workers.training.grpo import train
from workers.training.hooks import RecordingHooks
from workers.training.lora import DEFAULT_TARGETS
from workers.training.model import load_model
from workers.training.tiny import resolve_model

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[2]


def _hp(**raw) -> ResolvedHyperparameters:
    return resolve(parse(raw), train_rows=12, val_rows=5, model_parameters=3_000_000_000)


def _config(hp: ResolvedHyperparameters, **kw) -> TrainConfig:
    args = dict(model="vrft/tiny-qwen2-vl", seed=7, grader={"type": "visual_rft", "name": "d", "task": "detection"},
                model_cache_dir="/cache", output_dir="/out", resume_from=None) | kw
    return train_config(hp, **args)


def test_every_hyperparameter_reaches_the_trainer():
    hp = _hp(batch_size=6, gradient_accumulation_steps=3, max_steps=9, group_size=4, beta=0.1, loss_type="dapo",
             scale_rewards="batch", num_iterations=2, temperature=0.7, top_p=0.9, max_completion_tokens=33,
             learning_rate=3e-4, lora={"r": 4, "alpha": 8, "dropout": 0.1, "target_modules": ["q_proj"]},
             max_pixels=200_704, min_pixels=6_272, checkpoint_interval=3, eval_interval=2, eval_samples=4,
             gradient_checkpointing=False)
    config = _config(hp)
    assert (config.prompts_per_step, config.grad_accum, config.max_steps, config.n_epochs) == (6, 3, 9, 5)
    assert (config.group_size, config.beta, config.loss_type, config.scale_rewards, config.num_iterations) == \
        (4, 0.1, "dapo", "batch", 2)
    assert (config.temperature, config.top_p, config.max_completion_tokens) == (0.7, 0.9, 33)
    assert config.learning_rate == 3e-4
    assert (config.lora_r, config.lora_alpha, config.lora_dropout) == (4, 8, 0.1)
    assert config.lora_target_modules == ("q_proj",)
    assert (config.max_pixels, config.min_pixels, config.gradient_checkpointing) == (200_704, 6_272, False)
    assert (config.checkpoint_interval, config.eval_interval, config.eval_samples) == (3, 2, 4)
    assert config.eval_task == "detection"
    assert (config.seed, config.model, config.resume_from) == (7, "vrft/tiny-qwen2-vl", None)
    # every resolved field has a TrainConfig counterpart (the multiplier is folded into learning_rate)
    mapped = {"batch_size", "gradient_accumulation_steps", "lora", "learning_rate_multiplier"}
    named = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(ResolvedHyperparameters.model_fields) - mapped <= named


def test_auto_resolves_to_what_the_trainer_runs():
    config = _config(_hp())
    assert config.gradient_checkpointing is True and config.lora_target_modules == DEFAULT_TARGETS
    assert config.eval_samples == 5  # min(64, the validation rows): applied once, by the trainer


def test_the_api_knows_the_trainers_defaults_and_the_tiny_models_sizes(tmp_path):
    from workers.training.evaluate import METRICS

    assert DEFAULT_LORA_TARGETS == DEFAULT_TARGETS
    assert set(TASK_METRICS) == set(METRICS.values())  # the evaluation metrics events can name
    for name, count in TINY_PARAMETERS.items():
        model = load_model(resolve_model(name, tmp_path), device="cpu").model
        assert sum(p.numel() for p in model.parameters()) == count, name


def test_step_metrics_are_what_the_trainer_emits(tmp_path):
    from tests.training.helpers import byte_value_reward, colour_examples

    hooks = RecordingHooks()
    config = TrainConfig(model="vrft/tiny-qwen2-vl", model_cache_dir=str(tmp_path), output_dir=str(tmp_path / "o"),
                         prompts_per_step=1, group_size=2, max_steps=1, max_completion_tokens=4)
    train(config, colour_examples(), None, byte_value_reward, hooks)
    assert set(hooks.steps[0]) == set(STEP_KEYS)


def test_sft_metrics_are_what_the_supervised_trainer_emits(tmp_path):
    from tests.training.helpers import colour_examples
    from workers.training.sft import train_sft

    rows = [dict(ex, item={"solution": ex["id"]}) for ex in colour_examples()]
    hooks = RecordingHooks()
    config = TrainConfig(model="vrft/tiny-qwen2-vl", model_cache_dir=str(tmp_path), output_dir=str(tmp_path / "o"),
                         prompts_per_step=1, max_steps=1, eval_before_training=False)
    train_sft(config, rows, rows[:1], hooks=hooks)
    assert set(hooks.steps[0]) == set(SFT_STEP_KEYS)
    data = eval_event(1, hooks.evals[-1][1])  # no grader: loss and token accuracy, no reward
    assert set(data) == {"step", "eval", "valid_loss", "valid_mean_token_accuracy"}
    assert data["valid_loss"] > 0 and 0 <= data["valid_mean_token_accuracy"] <= 1


def test_the_dashboard_charts_only_names_of_the_contract():
    source = (ROOT / "app/dashboard/job.js").read_text()
    charts = source[source.index("function buildCharts"):]
    charts = charts[:charts.index("\n}\n")]
    used = set(re.findall(r'pts\("(\w+)"', charts)) | set(re.findall(r"\bd\.(\w+)", charts))
    known = set(StepEvent.__annotations__) | set(SftStepEvent.__annotations__) | set(EvalEvent.__annotations__)
    assert used and used <= known, used - known


@pytest.mark.parametrize("raised, code, words", [
    (GraderFailed("ZeroDivisionError in calculate_output"), JobErrorCode.GRADER_ERROR, "grader failed"),
    (ModelLoadFailed("config.json is not valid JSON"), JobErrorCode.MODEL_NOT_FOUND, "base model"),
    (ExampleRejected("line-7", "the image is 1×300, an aspect ratio the processor refuses"),
     JobErrorCode.DATASET_INVALID, "line-7"),
])
def test_the_trainers_named_failures_become_job_error_codes(raised, code, words):
    with pytest.raises(JobFailure) as caught, trainer_errors():
        raise raised
    assert caught.value.code == code and words in caught.value.message


def test_other_failures_are_not_guessed_at():
    with pytest.raises(ValueError), trainer_errors():  # left to classify(): internal, logged
        raise ValueError("could not read config")


def test_a_diverged_step_is_stored_as_strict_json():
    """NaN/inf from a diverged step become null in the event, so the events list always renders."""
    import json

    from app.jobs.metrics import eval_event, step_event

    metrics = {key: 1.0 for key in STEP_KEYS} | {"step": 3, "rewards": {"iou": float("nan")}, "loss": float("inf"),
                                                 "kl": float("nan")}
    event = step_event(metrics, total_steps=10)
    assert event["loss"] is None and event["kl"] is None and event["rewards"] == {"iou": None}
    assert event["total_steps"] == 10 and event["step"] == 3
    json.dumps(event, allow_nan=False)
    data = eval_event(3, {"reward_mean": float("nan"), "rewards": {}, "map": 0.5})
    assert data["valid_reward_mean"] is None and data["valid_map"] == 0.5
    json.dumps(data, allow_nan=False)
