"""train(): a step on every family, adapters that reload, exact resume, hooks, accumulation."""

from __future__ import annotations

import json

import pytest
import torch
from peft import PeftModel

from tests.training.conftest import FAMILIES
from tests.training.helpers import byte_value_reward, colour_examples, constant_reward
from workers.training.config import TrainConfig, read_config_file
from workers.training.grpo import train
from workers.training.hooks import RecordingHooks
from workers.training.loop import lr_lambda
from workers.training.lora import lora_parameters
from workers.training.model import load_model
from workers.training.rollout import prepare_prompts

STEP_METRICS = {"step", "reward_mean", "reward_std", "rewards", "zero_variance_fraction", "kl", "loss",
                "completion_length_mean", "clip_ratio", "learning_rate", "tokens_per_s", "step_time_s", "elapsed_s"}


def small_config(cache, out, **changes) -> TrainConfig:
    base = dict(model="vrft/tiny-qwen2-vl", model_cache_dir=str(cache), output_dir=str(out), group_size=4,
                prompts_per_step=2, max_steps=1, max_completion_tokens=4, learning_rate=1e-2, seed=3)
    return TrainConfig(**(base | changes))


def adapter_tensors(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in lora_parameters(model).items()}


def initial_adapter(config: TrainConfig) -> dict[str, torch.Tensor]:
    from workers.training.lora import attach_lora

    loaded = load_model(config.model, cache_dir=config.model_cache_dir)
    return adapter_tensors(attach_lora(loaded.model, r=config.lora_r, alpha=config.lora_alpha,
                                       dropout=config.lora_dropout, seed=config.seed))


@pytest.mark.parametrize("family", FAMILIES)
def test_a_step_changes_every_lora_tensor_and_the_adapter_reloads(model_cache, tmp_path, family):
    # μ = 2 updates in the step: LoRA B starts at 0, so A only gets a gradient from the second update
    config = small_config(model_cache, tmp_path, model=f"vrft/tiny-{family}", num_iterations=2)
    before = initial_adapter(config)
    hooks = RecordingHooks()
    result = train(config, colour_examples(), grader=byte_value_reward, hooks=hooks)

    after = adapter_tensors(result.model)
    assert after.keys() == before.keys() and len(after) == 2 * 7 * 2  # A, B × 7 projections × 2 layers
    unchanged = [k for k in after if torch.equal(after[k], before[k])]
    assert not unchanged, unchanged

    (metrics,) = hooks.steps
    assert STEP_METRICS <= set(metrics)
    assert metrics["rewards"].keys() == {"byte_value"} and metrics["loss"] is not None
    assert 0 <= metrics["zero_variance_fraction"] < 1
    step, rollouts = hooks.rollouts[0]
    assert step == 1 and len(rollouts) == 2
    assert {"prompt_id", "prompt", "completions", "rewards", "advantages", "flags"} <= set(rollouts[0])
    assert len(rollouts[0]["completions"]) == 4 and "empty" in rollouts[0]["flags"]

    # the saved adapter (PEFT format) reproduces the in-memory model's outputs
    assert (result.adapter_dir / "adapter_config.json").is_file()
    assert (result.adapter_dir / "tokenizer.json").is_file()  # processor files travel with it
    loaded = load_model(config.model, cache_dir=model_cache)
    reloaded = PeftModel.from_pretrained(loaded.model, str(result.adapter_dir)).eval()
    batch = prepare_prompts(loaded.processor, colour_examples(), torch.device("cpu"))
    inputs = dict(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                  mm_token_type_ids=batch.mm_token_type_ids, pixel_values=batch.pixel_values,
                  image_grid_thw=batch.image_grid_thw)
    with torch.no_grad():
        expected = result.model.eval()(**inputs).logits
        got = reloaded(**inputs).logits
        with reloaded.disable_adapter():
            base = reloaded(**inputs).logits
    assert torch.allclose(got, expected, atol=1e-5)
    assert not torch.allclose(base, expected, atol=1e-4)  # and the adapter does something


def test_zero_variance_groups_give_no_update_and_are_counted(model_cache, tmp_path):
    config = small_config(model_cache, tmp_path, max_steps=2)
    before = initial_adapter(config)
    hooks = RecordingHooks()
    result = train(config, colour_examples(), grader=constant_reward, hooks=hooks)
    after = adapter_tensors(result.model)
    assert all(torch.equal(after[k], before[k]) for k in before)
    assert [m["zero_variance_fraction"] for m in hooks.steps] == [1.0, 1.0]
    assert hooks.steps[0]["loss"] is None and hooks.steps[0]["reward_mean"] == 1.0


def test_resume_continues_exactly(model_cache, tmp_path):
    # dropout > 0 and sampling: both random streams must continue where they stopped
    common = dict(max_steps=4, checkpoint_interval=2, lora_dropout=0.1, beta=0.04)
    straight_hooks = RecordingHooks()
    straight = train(small_config(model_cache, tmp_path / "a", **common), colour_examples(),
                     grader=byte_value_reward, hooks=straight_hooks)
    checkpoint = tmp_path / "a" / "checkpoints" / "step-2"
    assert (checkpoint / "adapter_model.safetensors").is_file() and (checkpoint / "trainer_state.pt").is_file()
    assert json.loads((checkpoint / "metrics.json").read_text())["step"] == 2

    resumed_hooks = RecordingHooks()
    resumed = train(small_config(model_cache, tmp_path / "b", resume_from=str(checkpoint), **common),
                    colour_examples(), grader=byte_value_reward, hooks=resumed_hooks)

    assert [m["step"] for m in resumed_hooks.steps] == [3, 4]  # no step runs twice
    assert [r[1][0]["prompt_id"] for r in resumed_hooks.rollouts] == \
        [r[1][0]["prompt_id"] for r in straight_hooks.rollouts[2:]]  # same data order
    assert [r[1][0]["completions"] for r in resumed_hooks.rollouts] == \
        [r[1][0]["completions"] for r in straight_hooks.rollouts[2:]]  # same samples
    a, b = adapter_tensors(straight.model), adapter_tensors(resumed.model)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert resumed_hooks.steps[-1]["learning_rate"] == straight_hooks.steps[-1]["learning_rate"]


def test_pause_writes_a_checkpoint_and_cancel_does_not(model_cache, tmp_path):
    paused = RecordingHooks(stop_after=1, stop_reason="pause")
    result = train(small_config(model_cache, tmp_path / "p", max_steps=3), colour_examples(),
                   grader=byte_value_reward, hooks=paused)
    assert result.stopped == "pause" and result.steps == 1 and result.adapter_dir is None
    assert result.checkpoint_dir.name == "step-1" and paused.checkpoints == [(result.checkpoint_dir, 1)]

    cancelled = RecordingHooks(stop_after=1, stop_reason="cancel")
    result = train(small_config(model_cache, tmp_path / "c", max_steps=3), colour_examples(),
                   grader=byte_value_reward, hooks=cancelled)
    assert result.stopped == "cancel" and result.checkpoint_dir is None and result.adapter_dir is None
    assert not (tmp_path / "c" / "checkpoints").exists()


def test_gradient_accumulation_and_checkpointing_do_not_change_the_update(model_cache, tmp_path):
    results = {}
    for name, changes in {"plain": {}, "accum": {"grad_accum": 2},
                          "gc": {"gradient_checkpointing": True}}.items():
        config = small_config(model_cache, tmp_path / name, lora_dropout=0.0, num_iterations=2, **changes)
        results[name] = adapter_tensors(train(config, colour_examples(), grader=byte_value_reward).model)
    # Adam divides by the gradient's running RMS, so fp32 rounding in near-zero gradient entries (summation
    # order differs between one pass and two micro-batches) reaches the weights at up to ~1e-3 of one
    # lr-1e-2 step; the gradients themselves agree to 1e-5 (test_shared_prompt.py).
    for name in ("accum", "gc"):
        assert all(torch.allclose(results[name][k], results["plain"][k], atol=5e-5) for k in results["plain"]), name


def test_clipped_multi_update_dapo_and_eval_hooks(model_cache, tmp_path):
    config = small_config(model_cache, tmp_path, max_steps=2, num_iterations=3, loss_type="dapo",
                          epsilon_high=0.28, scale_rewards="batch", eval_interval=1, lr_schedule="cosine",
                          warmup_steps=1)
    hooks = RecordingHooks()
    result = train(config, colour_examples(), val_data=colour_examples()[:2], grader=byte_value_reward, hooks=hooks)
    assert all(m["clip_ratio"] is not None and 0 <= m["clip_ratio"] <= 1 for m in hooks.steps)
    assert [s for s, _ in hooks.evals] == [0, 1, 2]  # step 0: the base model, before any update
    assert hooks.evals[-1][1]["n"] == 2 and "byte_value" in hooks.evals[-1][1]["rewards"]
    assert result.eval_metrics["step"] == 2
    assert hooks.steps[0]["learning_rate"] == pytest.approx(1e-2 / 2)  # first warm-up update


def test_lr_schedule_and_config_validation(tmp_path):
    cosine = lr_lambda(TrainConfig(lr_schedule="cosine", warmup_steps=2), total_updates=10)
    assert [round(cosine(u), 3) for u in (0, 1, 2, 6)] == [0.333, 0.667, 1.0, 0.5]
    constant = lr_lambda(TrainConfig(), total_updates=10)
    assert constant(0) == constant(9) == 1.0
    with pytest.raises(ValueError, match="unknown TrainConfig fields: bogus"):
        TrainConfig.from_dict({"bogus": 1})
    with pytest.raises(ValueError):
        TrainConfig(grad_accum=3, prompts_per_step=2)
    path = tmp_path / "c.yaml"
    path.write_text("group_size: 4\nlora_target_modules: [q_proj, v_proj]\n")
    config = TrainConfig.from_dict(read_config_file(path))
    assert config.group_size == 4 and config.lora_target_modules == ("q_proj", "v_proj")
    assert TrainConfig.from_dict(config.to_dict()) == config
