"""Rewards for a batch of completions, from a grader spec (app.graders) or a plain callable.

Both speak one signature: `(samples, items) -> result` where each sample is
`{"output_text": str, "image_size": [w, h], "resized_image_size": [w, h]}`, each item is the
example's `item` dict, and the result has `.rewards: list[float]`, `.sub_rewards: {name: list}`,
`.flags: {name: list[bool]}` — as an object, a dict with those keys, or a 3-tuple in that order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Scores:
    rewards: list[float]
    sub_rewards: dict[str, list[float]] = field(default_factory=dict)
    flags: dict[str, list[bool]] = field(default_factory=dict)


RewardFn = Callable[[list[dict[str, Any]], list[dict[str, Any]]], Any]


def make_reward_fn(grader: dict[str, Any] | RewardFn) -> tuple[RewardFn, str]:
    """→ (reward function, the grader's display name)."""
    if callable(grader):
        return grader, getattr(grader, "__name__", "reward").strip("<>") or "reward"
    if isinstance(grader, dict):
        from app.graders import score  # the one import of ours the trainer allows: pure graders

        def grade(samples, items):
            return score(grader, samples, items)

        return grade, str(grader.get("name") or grader.get("type") or "reward")
    raise TypeError("grader must be a grader spec dict or a callable reward_fn(samples, items)")


def _normalise(result: Any, n: int) -> Scores:
    if isinstance(result, tuple):
        rewards, sub, flags = (list(result) + [None, None])[:3]
    elif isinstance(result, dict):
        rewards, sub, flags = result["rewards"], result.get("sub_rewards"), result.get("flags")
    else:
        rewards, sub, flags = result.rewards, getattr(result, "sub_rewards", None), getattr(result, "flags", None)
    scores = Scores([float(r) for r in rewards], {k: [float(x) for x in v] for k, v in (sub or {}).items()},
                    {k: [bool(x) for x in v] for k, v in (flags or {}).items()})
    if len(scores.rewards) != n:
        raise ValueError(f"reward function returned {len(scores.rewards)} rewards for {n} samples")
    return scores


def score_completions(reward_fn: RewardFn, texts: Sequence[str], examples: Sequence[dict[str, Any]],
                      image_index: Sequence[int], image_sizes: Sequence[list[int]],
                      resized_sizes: Sequence[list[int]]) -> Scores:
    """Score completion texts; row r answers examples[image_index[r]]."""
    samples = [{"output_text": text, "image_size": list(image_sizes[i]), "resized_image_size": list(resized_sizes[i])}
               for text, i in zip(texts, image_index, strict=True)]
    items = [dict(examples[i].get("item") or {}) for i in image_index]
    return _normalise(reward_fn(samples, items), len(samples))
