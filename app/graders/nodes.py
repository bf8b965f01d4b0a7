"""The scoring framework shared by every grader: flags, per-call state, and the leaf base class.

A leaf returns a reward or raises ``Flag``; ``Leaf.evaluate`` records the flag and scores 0, so one
bad completion never aborts a batch — and nothing is swallowed: every failure is a named flag.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.graders import parsing, templates
from app.graders.templates import Renderer

Sample = dict[str, Any]  # {"output_text", "image_size", "resized_image_size"}: what a completion carries
Item = dict[str, Any]  # a dataset row's reference fields
Memo = dict[Any, Any]  # one sample's work shared between leaves (a detection's parse, for iou and confidence)

FLAGS = (
    "sample_parse_error",  # the completion's answer could not be parsed
    "missing_answer",  # no <answer>…</answer> (or an empty one)
    "reference_parse_error",  # the item's ground truth could not be parsed
    "missing_item_field",  # a template names an item field this row lacks
    "missing_image_size",  # a coordinate conversion needs image_size / resized_image_size
    "invalid_formula_result",  # a multi formula or preset weighted sum divided by zero or overflowed
    "python_grader_runtime_error",  # grade() raised, returned a non-number, or its process died
    "python_grader_memory_limit",  # grade() ran out of its memory limit
    "python_grader_blocked_operation",  # grade() tried network, processes or file writes
    "timeout",  # grade() ran past its time limit
)


@dataclass
class ScoreResult:
    rewards: list[float]
    sub_rewards: dict[str, list[float]]  # per leaf grader, unweighted
    flags: dict[str, list[bool]]  # every name in FLAGS, one bool per sample


class Flag(Exception):
    def __init__(self, *names: str):
        super().__init__(names[0])
        self.names = names


class Run:
    """Per-call state, so one compiled tree can serve concurrent calls."""

    def __init__(self, n: int, keys: list[str]):
        self.flags = {f: [False] * n for f in FLAGS}
        self.subs = {k: [0.0] * n for k in keys}
        self.batch: dict[int, Any] = {}


def render_value(template: Renderer, sample: Sample, item: Item) -> Any:
    """A compiled template's value; a field the row lacks is a flag, not an exception escaping."""
    try:
        return template(sample, item)
    except templates.MissingField as exc:
        raise Flag("missing_item_field" if exc.ref.startswith("item.") else "sample_parse_error") from None


def render_text(template: Renderer, sample: Sample, item: Item) -> str:
    return templates.as_text(render_value(template, sample, item))


class Leaf:
    """A grader that scores one sample; ``key`` is its sub-reward name."""

    def __init__(self, key: str, spec: dict[str, Any]) -> None:
        self.key = key
        self.spec = spec

    def keys(self) -> list[str]:
        return [self.key]

    def prepare(self, samples: list[Sample], items: list[Item], run: Run) -> None:
        pass

    def evaluate(self, i: int, sample: Sample, item: Item, memo: Memo, run: Run) -> float:
        try:
            reward = self.reward(i, sample, item, memo, run)
        except Flag as flag:
            for name in flag.names:
                run.flags[name][i] = True
            reward = 0.0
        run.subs[self.key][i] = reward
        return reward

    def reward(self, i: int, sample: Sample, item: Item, memo: Memo, run: Run) -> float:
        raise NotImplementedError


class TemplatedLeaf(Leaf):
    """A leaf that reads the completion through ``input`` and the truth through ``reference`` (a
    spec without one renders it empty), taking the ``<answer>`` body when ``extract_answer`` says."""

    def __init__(self, key: str, spec: dict[str, Any]) -> None:
        super().__init__(key, spec)
        self.input = templates.compile_template(spec["input"])
        self.reference = templates.compile_template(spec.get("reference", ""))
        self.extract: bool = spec.get("extract_answer", False)


def answer(template: Renderer, sample: Sample, item: Item, extract: bool, *, allow_unterminated: bool) -> str:
    """The completion's ``<answer>`` body (or the whole text when ``extract`` is off)."""
    text = render_text(template, sample, item)
    if not extract:
        return text.strip()
    body = parsing.answer_text(text, allow_unterminated=allow_unterminated)
    if not body:
        raise Flag("missing_answer")
    return body


def reference(template: Renderer, sample: Sample, item: Item) -> str:
    return parsing.reference_text(render_text(template, sample, item))
