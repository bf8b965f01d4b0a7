"""The trainer with a real grader spec, scored by app.graders (the one package of ours it imports)."""

from __future__ import annotations

import pytest

from tests.training.helpers import colour_examples
from workers.training.config import TrainConfig
from workers.training.grpo import train
from workers.training.hooks import RecordingHooks

pytest.importorskip("app.graders")


def test_train_and_evaluate_with_a_visual_rft_classification_grader(model_cache, tmp_path):
    grader = {"type": "visual_rft", "task": "classification", "name": "cls"}
    data = [ex | {"item": {"solution": f"<answer>{ex['id']}</answer>"}} for ex in colour_examples()]
    config = TrainConfig(model="vrft/tiny-qwen2-vl", model_cache_dir=str(model_cache), output_dir=str(tmp_path),
                         group_size=4, prompts_per_step=3, max_steps=1, max_completion_tokens=6,
                         eval_task="classification")
    hooks = RecordingHooks()
    result = train(config, data, val_data=data, grader=grader, hooks=hooks)

    metrics = hooks.steps[0]
    assert set(metrics["rewards"]) == {"accuracy", "format"}
    assert 0.0 <= metrics["reward_mean"] <= 2.0
    rollout = hooks.rollouts[0][1][0]
    assert set(rollout["sub_rewards"]) == {"accuracy", "format"}
    assert "missing_answer" in rollout["flags"] and len(rollout["flags"]["missing_answer"]) == 4
    assert result.eval_metrics["n"] == 3 and 0.0 <= result.eval_metrics["accuracy"] <= 1.0
    assert set(result.eval_metrics["rewards"]) == {"accuracy", "format"}


def test_label_match_spec_from_the_brief(model_cache, tmp_path):
    grader = {"type": "label_match", "name": "accuracy", "input": "{{sample.output_text}}",
              "reference": "{{item.solution}}"}
    config = TrainConfig(model="vrft/tiny-qwen3-vl", model_cache_dir=str(model_cache), output_dir=str(tmp_path),
                         group_size=2, prompts_per_step=3, max_steps=1, max_completion_tokens=2)
    hooks = RecordingHooks()
    train(config, colour_examples(), grader=grader, hooks=hooks)
    assert set(hooks.steps[0]["rewards"]) == {"accuracy"}
