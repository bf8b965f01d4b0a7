"""Compile a validated grader into a tree of scorers, and score batches with it.

``multi`` evaluates its children then its formula; a ``visual_rft`` preset is expanded into the
graders of the paper's sum (``expand_preset`` shows it as a ``multi``) and summed with its weights.
Compiled trees are cached by the grader's JSON, so the trainer pays validation and regex compilation
once per job, not per batch. Sub-rewards are keyed by leaf: the root leaf's name, a multi child's
key, nested ones dotted (``det.iou``).
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from typing import Any

from app.errors import ErrorCode, ServiceError
from app.graders import templates, text_leaves, vision_leaves
from app.graders.formula import compile_formula
from app.graders.nodes import FLAGS, Item, Leaf, Memo, Run, Sample, ScoreResult
from app.graders.spec import check_nesting, preset_components, validate_grader

__all__ = ["FLAGS", "ScoreResult"]  # re-exported for app.graders

_LEAVES = {
    "string_check": text_leaves.StringCheck,
    "text_similarity": text_leaves.TextSimilarity,
    "format": text_leaves.Format,
    "label_match": text_leaves.LabelMatch,
    "box_iou": vision_leaves.BoxIoU,
    "box_confidence": vision_leaves.BoxConfidence,
    "grounding_iou": vision_leaves.GroundingIoU,
    "point_in_box": vision_leaves.PointInBox,
    "count_match": vision_leaves.CountMatch,
    "json_schema": vision_leaves.JsonSchema,
    "python": text_leaves.Python,
}


# ------------------------------------------------------------------------------------ composites


class _Multi:
    """Children first (each records its sub-rewards), then the formula over their rewards."""

    def __init__(self, children: dict[str, Node], formula: str) -> None:
        self.children = children
        self.formula = compile_formula(formula, set(children))

    def keys(self) -> list[str]:
        return [k for child in self.children.values() for k in child.keys()]

    def prepare(self, samples: list[Sample], items: list[Item], run: Run) -> None:
        for child in self.children.values():
            child.prepare(samples, items, run)

    def evaluate(self, i: int, sample: Sample, item: Item, memo: Memo, run: Run) -> float:
        env = {k: child.evaluate(i, sample, item, memo, run) for k, child in self.children.items()}
        try:
            value = self.formula.evaluate(env)
        except (ZeroDivisionError, OverflowError):
            value = math.nan
        if not math.isfinite(value):
            run.flags["invalid_formula_result"][i] = True
            return 0.0
        return value


def expand_preset(spec: dict[str, Any]) -> dict[str, Any]:
    """The ``multi`` a normalised ``visual_rft`` preset stands for: the paper's weighted sum."""
    common = {"input": spec["input"], "reference": spec["reference"]}
    fmt = {"type": "format", "name": "format", "input": spec["input"], "pattern": spec["format_pattern"]}
    task = spec["task"]
    if task == "classification":
        graders = {
            "accuracy": {"type": "label_match", "name": "accuracy", **common,
                         "aliases": spec["aliases"], "extract_answer": True,
                         "normalize": {"lowercase": True, "remove_spaces": True,
                                       "remove_underscores": True, "remove_punctuation": True}},
        }
    else:
        vision = {**common, "coords": spec["coords"], "reference_coords": spec["reference_coords"],
                  "extract_answer": True}
        if task == "detection":
            thr = spec["iou_threshold"]
            graders = {
                "iou": {"type": "box_iou", "name": "iou", **vision, "iou_threshold": thr},
                "confidence": {"type": "box_confidence", "name": "confidence", **vision,
                               "iou_threshold": thr},
            }
        else:
            metric = spec["grounding_metric"]
            graders = {metric: {"type": "grounding_iou", "name": metric, **vision, "metric": metric}}
    graders["format"] = fmt
    weights = spec["weights"]
    formula = " + ".join(f"{float(weights[c])!r} * {c}" for c in preset_components(spec))
    return {"type": "multi", "name": spec["name"], "graders": graders, "calculate_output": formula}


class _WeightedSum(_Multi):
    """A preset's multi: the formula is a weighted sum, computed without walking closures."""

    def __init__(self, children: dict[str, Node], weights: dict[str, float]) -> None:
        self.children = children
        self.terms = [(children[k], float(w)) for k, w in weights.items()]

    def evaluate(self, i: int, sample: Sample, item: Item, memo: Memo, run: Run) -> float:
        value = sum(w * child.evaluate(i, sample, item, memo, run) for child, w in self.terms)
        if not math.isfinite(value):  # finite weights can still overflow: 1e308 * 2 is inf
            run.flags["invalid_formula_result"][i] = True
            return 0.0
        return value


Node = Leaf | _Multi  # a compiled grader tree's node


def _build(spec: dict[str, Any], label: str, prefix: str) -> Node:
    kind = spec["type"]
    if kind == "visual_rft":
        expanded = expand_preset(spec)
        children = {
            key: _build(child, prefix + key, prefix + key + ".")
            for key, child in expanded["graders"].items()
        }
        weights = {c: spec["weights"][c] for c in preset_components(spec)}
        return _WeightedSum(children, weights)
    if kind == "multi":
        children = {
            key: _build(child, prefix + key, prefix + key + ".")
            for key, child in spec["graders"].items()
        }
        return _Multi(children, spec["calculate_output"])
    return _LEAVES[kind](label, spec)


# ---------------------------------------------------------------------------------- public entry


class Compiled:
    def __init__(self, normalized: dict[str, Any]):
        self.normalized = normalized
        self.root = _build(normalized, normalized["name"], "")
        self.keys = self.root.keys()

    def leaves(self) -> list[Any]:
        """The leaf scorers in document order (a preset's in the order of its sum)."""
        out, stack = [], [self.root]
        while stack:
            node = stack.pop()
            if isinstance(node, _Multi):
                stack.extend(reversed(list(node.children.values())))
            else:
                out.append(node)
        return out

    def score(self, samples: list[dict[str, Any]], items: list[dict[str, Any]]) -> ScoreResult:
        if len(samples) != len(items):
            raise ValueError(f"{len(samples)} samples but {len(items)} items")
        run = Run(len(samples), self.keys)
        self.root.prepare(samples, items, run)
        rewards = [
            self.root.evaluate(i, sample, item, {}, run)
            for i, (sample, item) in enumerate(zip(samples, items, strict=True))
        ]
        return ScoreResult(rewards=rewards, sub_rewards=run.subs, flags=run.flags)


@lru_cache(maxsize=256)
def _compile_normalized(normalized_json: str) -> Compiled:
    return Compiled(json.loads(normalized_json))


@lru_cache(maxsize=256)
def _normalize(spec_json: str) -> str:
    # Scoring runs on graders the API already validated (python allowed: the job was accepted).
    return json.dumps(validate_grader(json.loads(spec_json), allow_python=True), sort_keys=True)


def compile_grader(spec: dict[str, Any]) -> Compiled:
    """Validate (ServiceError if invalid) and compile, both cached by the spec's JSON."""
    check_nesting(spec)  # before json.dumps, which would overflow on a hostile depth
    return _compile_normalized(_normalize(json.dumps(spec, sort_keys=True)))


def score(grader: dict[str, Any], samples: list[dict[str, Any]], items: list[dict[str, Any]]) -> ScoreResult:
    """Score ``samples[i]`` against ``items[i]``; failures are flags with reward 0, never raised."""
    return compile_grader(grader).score(samples, items)


def grader_names(spec: dict[str, Any]) -> list[str]:
    """The sub-reward names the trainer logs, in order (leaf graders; nested ones dotted)."""
    return list(compile_grader(spec).keys)


def _template_sites(spec: dict[str, Any]) -> list[tuple[str, set[str]]]:
    """``(param path, item fields)`` for every template string of a grader."""
    normalized = compile_grader(spec).normalized
    sites: list[tuple[str, set[str]]] = []

    def walk(node: dict[str, Any], path: str) -> None:
        for key in ("input", "reference"):
            if isinstance(node.get(key), str):
                sites.append((f"{path}.{key}", templates.item_fields(node[key])))
        for name, child in node.get("graders", {}).items():
            walk(child, f"{path}.graders.{name}")

    walk(normalized, "grader")
    return sites


def template_fields(spec: dict[str, Any]) -> set[str]:
    """Top-level item fields the grader's templates reference (check them against the dataset)."""
    return set().union(*(fields for _, fields in _template_sites(spec)))


def check_item_fields(spec: dict[str, Any], available: set[str] | frozenset[str]) -> None:
    """Raise INVALID_GRADER naming the first template that reads a field the dataset lacks."""
    for param, fields in _template_sites(spec):
        missing = sorted(fields - set(available))
        if missing:
            have = ", ".join(sorted(available)) or "none"
            raise ServiceError(
                ErrorCode.INVALID_GRADER,
                f"template reads item.{missing[0]}, which the training file's rows do not have "
                f"(reference fields: {have})",
                param=param,
            )
