"""Greedy evaluation on a validation set: mean reward per grader plus the task's own metric.

Task metrics (the paper's evaluation, VISUAL_RFT.md):
- classification: accuracy — normalised exact match of the `<answer>` text against the item's
  (`solution` or `label`); never substring containment (the original's inflating defect);
- detection: mAP@[.5:.95] by pycocotools' COCOeval over all images and categories;
- grounding: mean IoU of the predicted box with the ground-truth box.
Boxes are compared in pixels of the original image: the model's answers are converted from its
family's convention (`norm1000` or `pixels_resized`), the ground truth from `reference_coords`
(the paper's `solution` strings are `norm1000`), or taken from `item["boxes"]` (original pixels).

Base-vs-tuned: `evaluate(..., use_adapter=False)` runs the same network with the adapter disabled.
"""

from __future__ import annotations

import contextlib
import io
import re
import string
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from workers.training.model import LoadedModel, coords_for, load_model
from workers.training.rewards import make_reward_fn, score_completions
from workers.training.rollout import generate_rollouts, image_features, prepare_prompts

_NUM = r"-?\d+(?:\.\d+)?"
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_BOX_KEY = re.compile(rf"(?:position|bbox_2d|bbox)['\"]?\s*:\s*\[+\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})",
                      re.IGNORECASE)
_CONF_KEY = re.compile(rf"confidence['\"]?\s*:\s*({_NUM})", re.IGNORECASE)
_PAIR_BOX = re.compile(rf"\(\s*({_NUM})\s*,\s*({_NUM})\s*\)\s*,\s*\(\s*({_NUM})\s*,\s*({_NUM})\s*\)")
_LIST_BOX = re.compile(rf"\[\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*\]")


def answer_text(text: str) -> str:
    """The content of the first <answer>…</answer>, or the whole text when there is none."""
    found = _ANSWER.search(text or "")
    return found.group(1) if found else (text or "")


def normalise_label(text: str) -> str:
    drop = str.maketrans("", "", string.whitespace + string.punctuation)
    return text.lower().translate(drop)


def parse_detections(text: str) -> list[tuple[list[float], float]]:
    """Answer text → [(box [x1, y1, x2, y2], confidence)]; 'No Objects' or nothing parsable → []."""
    body = answer_text(text)
    out = []
    for chunk in re.split(r"\}", body):
        box = _BOX_KEY.search(chunk)
        if box:
            conf = _CONF_KEY.search(chunk)
            out.append(([float(v) for v in box.groups()], float(conf.group(1)) if conf else 1.0))
    return out


def parse_box(text: str) -> list[float] | None:
    """One grounding box: `(x1,y1),(x2,y2)`, `[x1, y1, x2, y2]` or a keyed box, inside <answer> if any."""
    body = answer_text(text)
    for pattern in (_PAIR_BOX, _LIST_BOX, _BOX_KEY):
        found = pattern.search(body)
        if found:
            return [float(v) for v in found.groups()]
    return None


def to_pixels(box: Sequence[float], coords: str, image_size: Sequence[int], resized_size: Sequence[int]) -> list[float]:
    """A box in `coords` (norm1000 | norm1 | pixels_resized | pixels) → pixels of the original image."""
    w, h = image_size
    if coords == "norm1000":
        sx, sy = w / 1000.0, h / 1000.0
    elif coords == "norm1":
        sx, sy = float(w), float(h)
    elif coords == "pixels_resized":
        sx, sy = w / resized_size[0], h / resized_size[1]
    elif coords == "pixels":
        sx = sy = 1.0
    else:
        raise ValueError(f"unknown coordinate convention {coords!r}")
    x1, y1, x2, y2 = box
    return [x1 * sx, y1 * sy, x2 * sx, y2 * sy]


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1]) + max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _reference_boxes(item: dict, reference_coords: str, size, resized) -> list[list[float]]:
    if "boxes" in item:
        return [list(map(float, b)) for b in item["boxes"]]
    return [to_pixels(b, reference_coords, size, resized) for b, _ in parse_detections(str(item.get("solution", "")))]


def classification_accuracy(texts: Sequence[str], items: Sequence[dict]) -> float:
    hits = [normalise_label(answer_text(t)) == normalise_label(answer_text(str(it.get("solution", it.get("label", "")))))
            and normalise_label(answer_text(t)) != "" for t, it in zip(texts, items)]
    return sum(hits) / max(len(hits), 1)


def detection_map(texts, items, sizes, resized, model_coords: str, reference_coords: str = "norm1000") -> float | None:
    """mAP@[.5:.95] with COCOeval over all images; None when there is no ground-truth box at all."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    categories: dict[str, int] = {}
    images, annotations, results = [], [], []
    for image_id, (text, item, size, rsize) in enumerate(zip(texts, items, sizes, resized), start=1):
        category = categories.setdefault(str(item.get("category", "object")), len(categories) + 1)
        images.append({"id": image_id, "width": size[0], "height": size[1]})
        for box in _reference_boxes(item, reference_coords, size, rsize):
            x1, y1, x2, y2 = box
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": category,
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
        for box, conf in parse_detections(text):
            x1, y1, x2, y2 = to_pixels(box, model_coords, size, rsize)
            results.append({"image_id": image_id, "category_id": category,
                            "bbox": [x1, y1, x2 - x1, y2 - y1], "score": conf})
    if not annotations:
        return None
    if not results:
        return 0.0
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        gt = COCO()
        gt.dataset = {"images": images, "annotations": annotations,
                      "categories": [{"id": i, "name": n} for n, i in categories.items()]}
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes(results), iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return max(0.0, float(evaluator.stats[0]))


def grounding_miou(texts, items, sizes, resized, model_coords: str, reference_coords: str = "norm1000") -> float:
    scores = []
    for text, item, size, rsize in zip(texts, items, sizes, resized):
        if "boxes" in item:
            truth = [float(v) for v in item["boxes"][0]]
        else:
            ref = parse_box(str(item.get("solution", "")))
            truth = to_pixels(ref, reference_coords, size, rsize) if ref else None
        pred = parse_box(text)
        scores.append(iou(to_pixels(pred, model_coords, size, rsize), truth) if pred and truth else 0.0)
    return sum(scores) / max(len(scores), 1)


@torch.no_grad()
def evaluate(model, loaded: LoadedModel, data: Sequence[dict[str, Any]], grader: Any, *, task: str | None = None,
             max_new_tokens: int = 256, batch_size: int = 8, limit: int | None = None, use_adapter: bool = True,
             reference_coords: str = "norm1000") -> dict[str, Any]:
    """Greedy answers for `data` → {"reward_mean", "rewards": {grader: mean}, "<task metric>", "samples"}.

    `model` is the peft model (or a plain model with `use_adapter` ignored); `grader` as in train().
    """
    reward_fn, grader_name = make_reward_fn(grader)
    examples = list(data)[:limit] if limit else list(data)
    texts, sizes, resized, rewards, subs = [], [], [], [], {}
    was_training = model.training
    model.eval()
    adapter_off = model.disable_adapter() if (not use_adapter and hasattr(model, "disable_adapter")) else contextlib.nullcontext()
    with adapter_off:
        for start in range(0, len(examples), batch_size):
            chunk = examples[start:start + batch_size]
            batch = prepare_prompts(loaded.processor, chunk, next(model.parameters()).device)
            rollouts = generate_rollouts(
                model, batch, image_features(model, batch), tokenizer=loaded.processor.tokenizer, group_size=1,
                max_new_tokens=max_new_tokens, eos_token_ids=loaded.eos_token_ids, pad_token_id=loaded.pad_token_id,
                do_sample=False, suppressed_token_ids=loaded.suppressed_token_ids)
            scores = score_completions(reward_fn, rollouts.texts, chunk, list(range(len(chunk))),
                                       batch.image_sizes, batch.resized_sizes)
            texts += rollouts.texts
            sizes += batch.image_sizes
            resized += batch.resized_sizes
            rewards += scores.rewards
            for name, values in scores.sub_rewards.items():
                subs.setdefault(name, []).extend(values)
    model.train(was_training)
    items = [ex.get("item") or {} for ex in examples]
    n = max(len(rewards), 1)
    result: dict[str, Any] = {
        "n": len(rewards),
        "reward_mean": sum(rewards) / n,
        "rewards": {k: sum(v) / n for k, v in subs.items()} or {grader_name: sum(rewards) / n},
    }
    model_coords = coords_for(loaded.family)
    if task == "classification":
        result["accuracy"] = classification_accuracy(texts, items)
    elif task == "detection":
        result["map"] = detection_map(texts, items, sizes, resized, model_coords, reference_coords)
    elif task == "grounding":
        result["miou"] = grounding_miou(texts, items, sizes, resized, model_coords, reference_coords)
    elif task is not None:
        raise ValueError(f"unknown task {task!r}: classification, detection or grounding")
    result["samples"] = [{"id": str(ex.get("id", "")), "output_text": t, "reward": r}
                         for ex, t, r in zip(examples, texts, rewards)]
    return result


def evaluate_model(model: str | Path, data: Sequence[dict[str, Any]], grader: Any, *,
                   adapter_dir: str | Path | None = None, cache_dir: str | Path | None = None,
                   device: str = "auto", dtype: str = "auto", **kwargs: Any) -> dict[str, Any]:
    """Load a base model (and an adapter, if given) and `evaluate` it. Without adapter: the base model."""
    loaded = load_model(model, device=device, dtype=dtype, cache_dir=cache_dir)
    net = loaded.model
    if adapter_dir is not None:
        from peft import PeftModel

        net = PeftModel.from_pretrained(net, str(adapter_dir))
    return evaluate(net, loaded, data, grader, **kwargs)
