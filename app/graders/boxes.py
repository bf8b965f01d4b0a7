"""Box geometry and the Visual-RFT detection rewards, as small pure functions.

Boxes are ``(x1, y1, x2, y2)`` in one frame (we score in ``norm1``: fractions of width/height).
IoU and GIoU are invariant under per-axis scaling, so the frame only matters in that prediction and
ground truth must share it — which is what the coordinate conversion below is for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.graders.parsing import Box

COORDS = ("norm1000", "pixels_resized", "pixels", "norm1")  # the spec's `Coords` values (scale_for reads them)


class MissingImageSize(LookupError):
    """A conversion needs ``image_size``/``resized_image_size`` the sample lacks; a flag, reward 0."""


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union in [0, 1]; 0 for degenerate (zero-area) boxes."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def giou(a: Sequence[float], b: Sequence[float]) -> float:
    """Generalised IoU (Rezatofighi et al. 2019) in [-1, 1]: IoU − (hull − union) / hull."""
    aa = max(a[2] - a[0], 0.0) * max(a[3] - a[1], 0.0)
    ab = max(b[2] - b[0], 0.0) * max(b[3] - b[1], 0.0)
    iw = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    ih = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    inter = iw * ih
    union = aa + ab - inter
    hull = (max(a[2], b[2]) - min(a[0], b[0])) * (max(a[3], b[3]) - min(a[1], b[1]))
    if union <= 0 or hull <= 0:
        return -1.0  # two degenerate boxes share no area: the worst score, as for far-apart boxes
    return inter / union - (hull - union) / hull


def match_boxes(
    preds: Sequence[Box], gts: Sequence[Box], threshold: float = 0.5
) -> tuple[float, list[bool]]:
    """Greedy confidence-ordered matching (paper): ``(Σ matched IoU, matched flag per prediction)``.

    Predictions are taken in descending confidence; each takes the unmatched ground-truth box of
    highest IoU, and is a match only when that IoU exceeds ``threshold``. The IoU is inlined (the
    same arithmetic as :func:`iou`): this loop is the hot path of detection scoring.
    """
    matched = [False] * len(preds)
    if not preds or not gts:
        return 0.0, matched
    order = sorted(range(len(preds)), key=lambda k: -(preds[k][4] or 0.0))
    free = [(j, g[0], g[1], g[2], g[3], (g[2] - g[0]) * (g[3] - g[1])) for j, g in enumerate(gts)]
    total = 0.0
    for k in order:
        if not free:
            break
        px1, py1, px2, py2 = preds[k][0], preds[k][1], preds[k][2], preds[k][3]
        parea = (px2 - px1) * (py2 - py1)
        best, best_at = 0.0, -1
        for at, (_, gx1, gy1, gx2, gy2, garea) in enumerate(free):
            iw = (px2 if px2 < gx2 else gx2) - (px1 if px1 > gx1 else gx1)
            if iw <= 0:
                continue
            ih = (py2 if py2 < gy2 else gy2) - (py1 if py1 > gy1 else gy1)
            if ih <= 0:
                continue
            inter = iw * ih
            union = parea + garea - inter
            v = inter / union if union > 0 else 0.0
            if v > best:
                best, best_at = v, at
        if best > threshold:
            matched[k] = True
            del free[best_at]
            total += best
    return total, matched


def iou_reward(preds: Sequence[Box], gts: Sequence[Box], matched_sum: float) -> float:
    """``R_iou = Σ matched IoU / max(n_gt, n_pred)``; 'No Objects' against no ground truth is 1."""
    denom = max(len(gts), len(preds))
    return 1.0 if denom == 0 else matched_sum / denom


def confidence_reward(confs: Sequence[float], matched: Sequence[bool], n_gt: int) -> float:
    """``mean(c if matched else 1 − c)``, c clamped to [0, 1].

    A wrong box at confidence 0 earns the full 1 − c here by design (the paper's formula): it pairs
    with IoU = 0, so the total still ranks a correct answer above it. With no predictions the mean is
    empty: 1 when there was nothing to find, else 0.
    """
    if not confs:
        return 1.0 if n_gt == 0 else 0.0
    total = 0.0
    for c, m in zip(confs, matched, strict=True):
        c = min(max(c, 0.0), 1.0)
        total += c if m else 1.0 - c
    return total / len(confs)


def scale_for(coords: str, sample: dict[str, Any]) -> tuple[float, float]:
    """Divisors (sx, sy) that take ``coords`` to ``norm1`` for this sample."""
    if coords == "norm1000":
        return 1000.0, 1000.0
    if coords == "norm1":
        return 1.0, 1.0
    key = "resized_image_size" if coords == "pixels_resized" else "image_size"
    size = sample.get(key)
    if (
        not isinstance(size, (list, tuple))
        or len(size) != 2
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in size)
    ):
        raise MissingImageSize(f"coords '{coords}' need sample.{key} = [width, height]")
    return float(size[0]), float(size[1])


def to_norm1(boxes: Sequence[Box], sx: float, sy: float) -> list[Box]:
    if sx == 1.0 and sy == 1.0:
        return list(boxes)
    return [(b[0] / sx, b[1] / sy, b[2] / sx, b[3] / sy, b[4]) for b in boxes]
