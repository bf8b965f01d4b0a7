"""What a grader read from each sample: the parsed answer and the parsed reference, in one frame.

Evaluation metrics (accuracy, COCO mAP, mean IoU) and the dashboard's boxes are computed over these
readings, not over parsers of their own: they come from the very leaf that computes the reward, so
a metric cannot credit an answer the reward refused (no ``<answer>`` tag), ignore the grader's
aliases, or assume a coordinate convention the grader does not use.

    metric_task(grader) -> "classification" | "detection" | "grounding" | None
    read(grader, samples, items, task=None) -> list[Reading]
    drawn_boxes(grader, samples, items) -> [(predicted, reference)] | None   # for pictures
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.graders.nodes import Flag, Item, Sample
from app.graders.parsing import Box
from app.graders.scoring import compile_grader
from app.graders.text_leaves import LabelMatch
from app.graders.vision_leaves import Detection, GroundingIoU

# The leaf whose parse each task's metric is computed over (a multi's first such leaf).
TASK_LEAVES: dict[str, type] = {"classification": LabelMatch, "detection": Detection, "grounding": GroundingIoU}


@dataclass(frozen=True)
class Reading:
    """One sample as the grader read it; a side that could not be read is None, with its flag.

    classification: canonical labels (normalised; an alias reads as its label).
    detection / grounding: a tuple of boxes ``(x1, y1, x2, y2, confidence | None)`` in ``norm1``
    (fractions of the image's width and height) — one box for grounding.
    """

    prediction: Any
    reference: Any
    prediction_flag: str | None = None
    reference_flag: str | None = None


def metric_task(grader: dict[str, Any]) -> str | None:
    """The task whose metric the grader implies: that of its first label_match, box_iou /
    box_confidence or grounding_iou leaf (a ``visual_rft`` preset's task), else None."""
    for leaf in compile_grader(grader).leaves():
        for task, leaf_class in TASK_LEAVES.items():
            if isinstance(leaf, leaf_class):
                return task
    return None


def _task_leaf(grader: dict[str, Any], task: str) -> Any:
    if task not in TASK_LEAVES:
        raise ValueError(f"unknown task {task!r}: one of {', '.join(TASK_LEAVES)}")
    for leaf in compile_grader(grader).leaves():
        if isinstance(leaf, TASK_LEAVES[task]):
            return leaf
    raise ValueError(f"grader {grader.get('name')!r} has no {TASK_LEAVES[task].__name__} leaf to read {task} answers")


def _one(read: Callable[[Sample, Item], Any], sample: Sample, item: Item) -> tuple[Any, str | None]:
    try:
        return read(sample, item), None
    except Flag as flag:
        return None, flag.names[0]


def read(grader: dict[str, Any], samples: list[dict[str, Any]], items: list[dict[str, Any]],
         task: str | None = None) -> list[Reading]:
    """Each sample's prediction and reference as the grader's ``task`` leaf parses and converts them
    (``task`` defaults to :func:`metric_task`). Samples are as in ``score``; never raises per sample."""
    task = task or metric_task(grader)
    if task is None:
        raise ValueError(f"grader {grader.get('name')!r} reads no labels or boxes")
    if len(samples) != len(items):
        raise ValueError(f"{len(samples)} samples but {len(items)} items")
    leaf = _task_leaf(grader, task)
    readings = []
    for sample, item in zip(samples, items, strict=True):
        pred, pred_flag = _one(leaf.read_prediction, sample, item)
        ref, ref_flag = _one(leaf.read_reference, sample, item)
        if task == "grounding":  # one box, as a list of boxes like detection's
            pred = None if pred is None else (_box(pred),)
            ref = None if ref is None else (_box(ref),)
        readings.append(Reading(pred, ref, pred_flag, ref_flag))
    return readings


def _box(b: tuple[float, float, float, float]) -> Box:
    return (b[0], b[1], b[2], b[3], None)


UnitBoxes = list[list[float]]  # [[x1, y1, x2, y2], ...] in fractions of the image, rounded


def drawn_boxes(grader: dict[str, Any], samples: list[Sample], items: list[Item]
                ) -> list[tuple[UnitBoxes | None, UnitBoxes | None]] | None:
    """For pictures (the dashboard, the run endpoint): each sample's (predicted, reference) boxes as
    the grader read them, in 0–1 image coordinates; a side it could not read is None. None when the
    grader reads no boxes at all."""
    task = metric_task(grader)
    if task not in ("detection", "grounding"):
        return None

    def unit(boxes: tuple[Box, ...] | None) -> UnitBoxes | None:
        return None if boxes is None else [[round(v, 4) for v in box[:4]] for box in boxes]

    return [(unit(r.prediction), unit(r.reference)) for r in read(grader, samples, items, task)]
