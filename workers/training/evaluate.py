"""Greedy evaluation on a validation set: mean reward per grader plus the task's own metric.

Task metrics (the paper's evaluation, VISUAL_RFT.md) are computed over what the job's grader read
(`app.graders.read`): its `<answer>` extraction, aliases, label normalisation and coordinate frame
(`coords` / `reference_coords`). So a metric never credits what the reward refuses — an untagged
answer is wrong for both — and never assumes a coordinate convention the grader does not use.
- classification: accuracy — the share of answers whose label is the reference's (or an alias of it);
- detection: mAP@[.5:.95] by pycocotools' COCOeval over all images, per `item["category"]`;
- grounding: mean IoU of the predicted box with the ground-truth box.
The task is the one the grader implies (`app.graders.metric_task`) unless `task=` names it.

Base-vs-tuned: `evaluate(..., use_adapter=False)` runs the same network with the adapter disabled.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from app.graders import Reading, metric_task, read
from app.graders.boxes import iou
from workers.training import engine
from workers.training.model import LoadedModel, load_model
from workers.training.rewards import make_reward_fn, score_completions
from workers.training.rollout import image_features, prepare_prompts

METRICS = {"classification": "accuracy", "detection": "map", "grounding": "miou"}  # task -> result key


def accuracy(readings: Sequence[Reading]) -> float:
    """Share of samples whose label reads as the reference's; an unreadable side is a miss."""
    hits = [r.prediction is not None and r.reference is not None and r.prediction == r.reference for r in readings]
    return sum(hits) / max(len(hits), 1)


def _xywh(box: Sequence[float]) -> list[float]:
    """COCO's [x, y, w, h]. An inverted box gets no area: it matches nothing, as in the reward."""
    return [box[0], box[1], max(box[2] - box[0], 0.0), max(box[3] - box[1], 0.0)]


def detection_map(readings: Sequence[Reading], categories: Sequence[str]) -> float | None:
    """mAP@[.5:.95] with COCOeval over all images; None when there is no ground-truth box at all.

    Boxes are in the grader's `norm1` frame (IoU does not depend on it). An image whose reference
    the grader could not read is left out: there is no truth to score it against.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    category_ids: dict[str, int] = {}
    images, annotations, results = [], [], []
    for image_id, (reading, name) in enumerate(zip(readings, categories, strict=True), start=1):
        if reading.reference is None:
            continue
        category = category_ids.setdefault(str(name), len(category_ids) + 1)
        images.append({"id": image_id, "width": 1, "height": 1})
        for box in reading.reference:
            bbox = _xywh(box)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": category,
                                "bbox": bbox, "area": bbox[2] * bbox[3], "iscrowd": 0})
        for box in reading.prediction or ():
            results.append({"image_id": image_id, "category_id": category, "bbox": _xywh(box),
                            "score": 1.0 if box[4] is None else float(box[4])})
    if not annotations:
        return None
    if not results:
        return 0.0
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        gt = COCO()
        gt.dataset = {"images": images, "annotations": annotations,
                      "categories": [{"id": i, "name": n} for n, i in category_ids.items()]}
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes(results), iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return max(0.0, float(evaluator.stats[0]))


def grounding_miou(readings: Sequence[Reading]) -> float:
    """Mean IoU of the predicted box with the reference box; an unreadable side scores 0."""
    scores = [iou(r.prediction[0], r.reference[0]) if r.prediction and r.reference else 0.0 for r in readings]
    return sum(scores) / max(len(scores), 1)


def task_metric(grader: dict[str, Any], samples: list[dict[str, Any]], items: list[dict[str, Any]],
                task: str | None = None) -> dict[str, float | None]:
    """`{metric name: value}` for completions already made (samples as the graders take them:
    `{"output_text", "image_size", "resized_image_size"}`); `{}` when the grader implies no task."""
    task = task or metric_task(grader)
    if task is None:
        return {}
    if task not in METRICS:
        raise ValueError(f"unknown task {task!r}: classification, detection or grounding")
    readings = read(grader, samples, items, task)
    if task == "classification":
        return {"accuracy": accuracy(readings)}
    if task == "detection":
        return {"map": detection_map(readings, [str(item.get("category", "object")) for item in items])}
    return {"miou": grounding_miou(readings)}


def generate_answers(model, loaded: LoadedModel, examples: Sequence[dict[str, Any]], *, max_new_tokens: int,
                     batch_size: int, use_adapter: bool,
                     rollout_engine: str = "static") -> tuple[list[str], list[list[int]], list[list[int]]]:
    """Greedy answers → (texts, original image sizes, resized image sizes). Evaluation's only decode: the
    rollout engine (each prompt prefilled once, static cache, finished rows dropped), `batch_size` prompts
    at a time."""
    texts: list[str] = []
    sizes: list[list[int]] = []
    resized: list[list[int]] = []
    was_training = model.training
    model.eval()
    use_base = not use_adapter and hasattr(model, "disable_adapter")
    with model.disable_adapter() if use_base else contextlib.nullcontext():
        for start in range(0, len(examples), batch_size):
            chunk = list(examples[start:start + batch_size])
            batch = prepare_prompts(loaded.processor, chunk, next(model.parameters()).device)
            rollouts = engine.sample_with(
                rollout_engine, model, batch, image_features(model, batch), tokenizer=loaded.processor.tokenizer,
                group_size=1, max_new_tokens=max_new_tokens, eos_token_ids=loaded.eos_token_ids,
                pad_token_id=loaded.pad_token_id, do_sample=False, suppressed_token_ids=loaded.suppressed_token_ids)
            texts += rollouts.texts
            sizes += batch.image_sizes
            resized += batch.resized_sizes
    model.train(was_training)
    return texts, sizes, resized


@torch.no_grad()
def evaluate(model, loaded: LoadedModel, data: Sequence[dict[str, Any]], grader: Any, *, task: str | None = None,
             max_new_tokens: int = 256, batch_size: int = 32, limit: int | None = None,
             use_adapter: bool = True, rollout_engine: str = "static") -> dict[str, Any]:
    """Greedy answers for `data` → {"n", "reward_mean", "rewards": {grader: mean}, "<task metric>", "samples"}.

    `model` is the peft model (or a plain model with `use_adapter` ignored); `grader` as in train().
    A task metric needs a grader spec: a plain reward callable gets the rewards only.
    """
    reward_fn, grader_name = make_reward_fn(grader)
    if task is not None and not isinstance(grader, dict):
        raise ValueError(f"task {task!r}: a task metric reads answers through a grader spec, not a callable")
    examples = list(data)[:limit] if limit else list(data)
    texts, sizes, resized = generate_answers(model, loaded, examples, max_new_tokens=max_new_tokens,
                                             batch_size=batch_size, use_adapter=use_adapter,
                                             rollout_engine=rollout_engine)
    index = list(range(len(examples)))
    scores = score_completions(reward_fn, texts, examples, index, sizes, resized)
    n = max(len(scores.rewards), 1)
    result: dict[str, Any] = {
        "n": len(scores.rewards),
        "reward_mean": sum(scores.rewards) / n,
        "rewards": {k: sum(v) / n for k, v in scores.sub_rewards.items()} or {grader_name: sum(scores.rewards) / n},
    }
    if isinstance(grader, dict):
        samples = [{"output_text": t, "image_size": list(s), "resized_image_size": list(r)}
                   for t, s, r in zip(texts, sizes, resized, strict=True)]
        result.update(task_metric(grader, samples, [dict(ex.get("item") or {}) for ex in examples], task))
    result["samples"] = [{"id": str(ex.get("id", "")), "output_text": t, "reward": r}
                         for ex, t, r in zip(examples, texts, scores.rewards, strict=True)]
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
