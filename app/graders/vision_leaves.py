"""Vision graders (VISUAL_RFT.md): detection IoU and confidence, grounding (GIoU + 1 or IoU),
point-in-box, count and JSON-schema checks. Predictions and ground truth are brought to one frame
(``norm1``) when their coordinate conventions differ; a missing image size is a flag."""

from __future__ import annotations

import json
from typing import Any

from app.graders import boxes as bx
from app.graders import json_schema, parsing, templates
from app.graders.nodes import Flag, Item, Memo, Run, Sample, TemplatedLeaf, answer, reference, render_value

# (predictions, ground truth, Σ matched IoU, matched flag per prediction): one detection's matching
Match = tuple[tuple[parsing.Box, ...], tuple[parsing.Box, ...], float, list[bool]]


class Vision(TemplatedLeaf):
    def __init__(self, key: str, spec: dict[str, Any]) -> None:
        super().__init__(key, spec)
        self.coords = spec["coords"]
        self.reference_coords = spec["reference_coords"]

    def answer(self, sample: Sample, item: Item) -> str:
        return answer(self.input, sample, item, self.extract, allow_unterminated=True)

    @staticmethod
    def scale(coords: str, sample: Sample) -> tuple[float, float]:
        try:
            return bx.scale_for(coords, sample)
        except bx.MissingImageSize:
            raise Flag("missing_image_size") from None

    def scales(self, sample: Sample) -> tuple[tuple[float, float], tuple[float, float]]:
        return self.scale(self.coords, sample), self.scale(self.reference_coords, sample)


class Detection(Vision):
    """box_iou / box_confidence: one parse-and-match per sample, shared through ``memo``."""

    def __init__(self, key: str, spec: dict[str, Any]) -> None:
        super().__init__(key, spec)
        self.threshold = spec["iou_threshold"]
        self.memo_key = ("detection", spec["input"], spec["reference"], self.coords,
                         self.reference_coords, self.extract, self.threshold)

    def matched(self, sample: Sample, item: Item, memo: Memo) -> Match:
        hit = memo.get(self.memo_key)
        if hit is None:
            try:
                hit = self._match(sample, item)
            except Flag as flag:
                hit = flag
            memo[self.memo_key] = hit
        if isinstance(hit, Flag):
            raise hit
        return hit

    def predictions(self, sample: Sample, item: Item) -> tuple[parsing.Box, ...]:
        """The completion's boxes as written (in ``coords``)."""
        try:
            return parsing.parse_box_list(self.answer(sample, item))
        except parsing.ParseError:
            raise Flag("sample_parse_error") from None

    def references(self, sample: Sample, item: Item) -> tuple[parsing.Box, ...]:
        """The ground-truth boxes as written (in ``reference_coords``); none for an empty reference."""
        ref = reference(self.reference, sample, item)
        try:
            return parsing.parse_box_list(ref) if ref else ()
        except parsing.ParseError:
            raise Flag("reference_parse_error") from None

    def read_prediction(self, sample: Sample, item: Item) -> tuple[parsing.Box, ...]:
        """The completion's boxes in ``norm1`` — the frame both sides are compared in."""
        return tuple(bx.to_norm1(self.predictions(sample, item), *self.scale(self.coords, sample)))

    def read_reference(self, sample: Sample, item: Item) -> tuple[parsing.Box, ...]:
        return tuple(bx.to_norm1(self.references(sample, item), *self.scale(self.reference_coords, sample)))

    def _match(self, sample: Sample, item: Item) -> Match:
        preds = self.predictions(sample, item)
        gts = self.references(sample, item)
        pscale, gscale = self.scales(sample)
        if pscale == gscale:  # IoU is scale-invariant: one shared frame needs no conversion
            total, matched = bx.match_boxes(preds, gts, self.threshold)
        else:
            total, matched = bx.match_boxes(
                bx.to_norm1(preds, *pscale), bx.to_norm1(gts, *gscale), self.threshold
            )
        return preds, gts, total, matched


class BoxIoU(Detection):
    def reward(self, i: int, sample: Sample, item: Item, memo: Memo, run: Run) -> float:
        preds, gts, total, _ = self.matched(sample, item, memo)
        return bx.iou_reward(preds, gts, total)


class BoxConfidence(Detection):
    def reward(self, i: int, sample: Sample, item: Item, memo: Memo, run: Run) -> float:
        preds, gts, _, matched = self.matched(sample, item, memo)
        confs = [p[4] for p in preds if p[4] is not None]
        if len(confs) < len(preds):
            raise Flag("sample_parse_error")  # a confidence reward needs every Confidence
        return bx.confidence_reward(confs, matched, len(gts))


class GroundingIoU(Vision):
    def __init__(self, key: str, spec: dict[str, Any]) -> None:
        super().__init__(key, spec)
        self.giou = spec["metric"] == "giou"

    def read_prediction(self, sample: Sample, item: Item) -> tuple[float, float, float, float]:
        """The completion's box in ``norm1`` (the frame both sides are compared in)."""
        try:
            pred = parsing.parse_one_box(self.answer(sample, item))
        except parsing.ParseError:
            raise Flag("sample_parse_error") from None
        sx, sy = self.scale(self.coords, sample)
        return (pred[0] / sx, pred[1] / sy, pred[2] / sx, pred[3] / sy)

    def read_reference(self, sample: Sample, item: Item) -> tuple[float, float, float, float]:
        try:
            gt = parsing.parse_one_box(reference(self.reference, sample, item))
        except parsing.ParseError:
            raise Flag("reference_parse_error") from None
        sx, sy = self.scale(self.reference_coords, sample)
        return (gt[0] / sx, gt[1] / sy, gt[2] / sx, gt[3] / sy)

    def reward(self, i: int, sample: Sample, item: Item, memo: Memo, run: Run) -> float:
        p = self.read_prediction(sample, item)
        g = self.read_reference(sample, item)
        return bx.giou(p, g) + 1.0 if self.giou else bx.iou(p, g)


class PointInBox(Vision):
    def reward(self, i: int, sample: Sample, item: Item, memo: Memo, run: Run) -> float:
        try:
            x, y = parsing.parse_point(self.answer(sample, item))
        except parsing.ParseError:
            raise Flag("sample_parse_error") from None
        ref = reference(self.reference, sample, item)
        try:
            try:
                gts = [b[:4] for b in parsing.parse_box_list(ref)]
            except parsing.ParseError:
                gts = [parsing.parse_one_box(ref)]  # LISA style (x1,y1),(x2,y2)
        except parsing.ParseError:
            raise Flag("reference_parse_error") from None
        (psx, psy), (gsx, gsy) = self.scales(sample)
        x, y = x / psx, y / psy
        for b in gts:
            if b[0] / gsx <= x <= b[2] / gsx and b[1] / gsy <= y <= b[3] / gsy:
                return 1.0
        return 0.0


class CountMatch(TemplatedLeaf):
    def __init__(self, key: str, spec: dict[str, Any]) -> None:
        super().__init__(key, spec)
        self.tolerance = spec["tolerance"]

    def reward(self, i: int, sample: Sample, item: Item, memo: Memo, run: Run) -> float:
        try:
            pred = parsing.parse_count(
                answer(self.input, sample, item, self.extract, allow_unterminated=True)
            )
        except parsing.ParseError:
            raise Flag("sample_parse_error") from None
        raw = render_value(self.reference, sample, item)
        if isinstance(raw, int) and not isinstance(raw, bool):
            truth = raw
        else:
            try:
                truth = parsing.parse_count(parsing.reference_text(templates.as_text(raw)))
            except parsing.ParseError:
                raise Flag("reference_parse_error") from None
        return 1.0 if abs(pred - truth) <= self.tolerance else 0.0


class JsonSchema(TemplatedLeaf):
    def __init__(self, key: str, spec: dict[str, Any]) -> None:
        super().__init__(key, spec)
        self.schema = spec["schema"]

    def reward(self, i: int, sample: Sample, item: Item, memo: Memo, run: Run) -> float:
        text = answer(self.input, sample, item, self.extract, allow_unterminated=False)
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            raise Flag("sample_parse_error") from None
        return 1.0 if json_schema.conforms(value, self.schema) else 0.0
