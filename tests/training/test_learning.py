"""The trainer learns: on an image-conditioned task a random tiny policy goes from chance to ≥ 0.9.

Task: three solid-colour images (red, green, blue), the same question for all. The model answers
with one token; the answer's first character c names a colour by ord(c) mod 3 (only ASCII counts:
a lone high byte decodes to U+FFFD and scores 0 for every colour). A random policy is right about
1 time in 6; a constant answer is right for one colour only, so the final greedy check per image
fails unless the policy reads the image.
"""

from __future__ import annotations

from tests.training.helpers import colour_code_reward, colour_examples
from workers.training.config import TrainConfig
from workers.training.evaluate import evaluate_model
from workers.training.grpo import train
from workers.training.hooks import RecordingHooks


class StopWhenLearned(RecordingHooks):
    """Pause (which writes a checkpoint) once the last three steps average ≥ 0.9 reward."""

    def should_stop(self):
        recent = [m["reward_mean"] for m in self.steps[-3:]]
        return "pause" if len(recent) == 3 and sum(recent) / 3 >= 0.9 else None


def test_reward_rises_from_chance_and_policy_reads_the_image(model_cache, tmp_path):
    data = colour_examples()
    config = TrainConfig(
        model="vrft/tiny-qwen2-vl", model_cache_dir=str(model_cache), output_dir=str(tmp_path),
        group_size=16, prompts_per_step=3, max_steps=60, max_completion_tokens=1,
        learning_rate=5e-3, lora_dropout=0.0, beta=0.04, seed=0)
    hooks = StopWhenLearned()
    result = train(config, data, grader=colour_code_reward, hooks=hooks)

    rewards = [m["reward_mean"] for m in hooks.steps]
    assert rewards[0] < 0.5, f"the untrained policy should be near chance, got {rewards[0]}"
    assert result.stopped == "pause", f"reward never reached 0.9 within 60 steps: {rewards}"
    assert sum(rewards[-3:]) / 3 >= 0.9

    greedy = evaluate_model("vrft/tiny-qwen2-vl", data, colour_code_reward, adapter_dir=result.checkpoint_dir,
                            cache_dir=model_cache, max_new_tokens=1)
    per_image = {s["id"]: s["reward"] for s in greedy["samples"]}
    assert per_image == {"red": 1.0, "green": 1.0, "blue": 1.0}, greedy["samples"]
