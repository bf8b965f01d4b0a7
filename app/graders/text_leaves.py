"""Text graders: OpenAI's string_check and text_similarity, the format check, label_match, and
the python grader (its batch runs in the sandbox during ``prepare``)."""

from __future__ import annotations

import re
import string
from typing import Any

from app.graders.nodes import Flag, Item, Leaf, Memo, Run, Sample, TemplatedLeaf, answer, reference, render_text
from app.graders.sandbox import Outcome, run_python_grader
from app.graders.spec import DEFAULT_FORMAT
from app.graders.text_metrics import similarity


class StringCheck(TemplatedLeaf):
    def __init__(self, key: str, spec: dict[str, Any]) -> None:
        super().__init__(key, spec)
        self.op = spec["operation"]

    def reward(self, i: int, sample: Sample, item: Item, memo: Memo, run: Run) -> float:
        a = render_text(self.input, sample, item)
        b = render_text(self.reference, sample, item)
        if self.op == "eq":
            return float(a == b)
        if self.op == "ne":
            return float(a != b)
        if self.op == "like":  # OpenAI: the input contains the reference
            return float(b in a)
        return float(b.lower() in a.lower())


class TextSimilarity(TemplatedLeaf):
    def __init__(self, key: str, spec: dict[str, Any]) -> None:
        super().__init__(key, spec)
        self.metric = spec["evaluation_metric"]

    def reward(self, i: int, sample: Sample, item: Item, memo: Memo, run: Run) -> float:
        a = render_text(self.input, sample, item)
        b = render_text(self.reference, sample, item)
        return similarity(self.metric, a, b)


def think_answer_format(text: str) -> bool:
    """``re.fullmatch(DEFAULT_FORMAT, text, re.S)`` in linear time.

    The regex backtracks quadratically in the number of ``</think>`` occurrences (seconds on a
    100 kB run-endpoint sample); this walks each occurrence once: ``<think>`` A ``</think>`` W
    ``<answer>`` B ``</answer>`` with W whitespace (``\\s`` is ``str.isspace``) and A, B anything.
    """
    if not (text.startswith("<think>") and text.endswith("</answer>")):
        return False
    last_open = len(text) - len("</answer>") - len("<answer>")  # latest start of the <answer>
    at = text.find("</think>", len("<think>"))
    while at != -1:
        j = at + len("</think>")
        while j < len(text) and text[j].isspace():
            j += 1
        if j > last_open:
            return False  # later occurrences only start later
        if text.startswith("<answer>", j):
            return True
        at = text.find("</think>", at + 1)
    return False


class Format(TemplatedLeaf):
    def __init__(self, key: str, spec: dict[str, Any]) -> None:
        super().__init__(key, spec)
        if spec["pattern"] == DEFAULT_FORMAT:
            self.match = think_answer_format
        else:
            pattern = re.compile(spec["pattern"], re.S)
            self.match = lambda text: pattern.fullmatch(text) is not None

    def reward(self, i: int, sample: Sample, item: Item, memo: Memo, run: Run) -> float:
        return 1.0 if self.match(render_text(self.input, sample, item)) else 0.0


class LabelMatch(TemplatedLeaf):
    """Normalised exact match (or a shared alias group) — never substring containment."""

    def __init__(self, key: str, spec: dict[str, Any]) -> None:
        super().__init__(key, spec)
        opts = spec["normalize"]
        drop = ""
        if opts["remove_punctuation"]:
            drop += string.punctuation
        if opts["remove_underscores"]:
            drop += "_"
        self.table = str.maketrans("", "", drop)
        self.lower = opts["lowercase"]
        self.no_spaces = opts["remove_spaces"]
        self.canonical: dict[str, str] = {}
        for label, aliases in spec["aliases"].items():
            for alias in (label, *aliases):
                self.canonical[self.norm(alias)] = self.norm(label)

    def norm(self, text: str) -> str:
        text = text.translate(self.table)
        if self.lower:
            text = text.lower()
        return "".join(text.split()) if self.no_spaces else " ".join(text.split())

    def read_prediction(self, sample: Sample, item: Item) -> str:
        """The answer's label, normalised, as its alias group's canonical label."""
        pred = self.norm(answer(self.input, sample, item, self.extract, allow_unterminated=False))
        if not pred:
            raise Flag("missing_answer")
        return self.canonical.get(pred, pred)

    def read_reference(self, sample: Sample, item: Item) -> str:
        ref = self.norm(reference(self.reference, sample, item))
        if not ref:
            raise Flag("reference_parse_error")
        return self.canonical.get(ref, ref)

    def reward(self, i: int, sample: Sample, item: Item, memo: Memo, run: Run) -> float:
        pred = self.read_prediction(sample, item)
        return 1.0 if pred == self.read_reference(sample, item) else 0.0


_PYTHON_FLAGS = {
    "timeout": ("timeout",),
    "memory": ("python_grader_memory_limit", "python_grader_runtime_error"),
    "blocked": ("python_grader_blocked_operation", "python_grader_runtime_error"),
    "runtime": ("python_grader_runtime_error",),
}


class Python(Leaf):
    """Batch-run in one sandboxed child during ``prepare``; ``evaluate`` reads the outcome."""

    def prepare(self, samples: list[Sample], items: list[Item], run: Run) -> None:
        run.batch[id(self)] = run_python_grader(self.spec["source"], samples, items)

    def reward(self, i: int, sample: Sample, item: Item, memo: Memo, run: Run) -> float:
        outcome: Outcome = run.batch[id(self)][i]
        if outcome.reward is None:
            raise Flag(*_PYTHON_FLAGS[outcome.error or "runtime"])
        return outcome.reward
