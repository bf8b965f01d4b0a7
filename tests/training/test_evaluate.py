"""Evaluation: task metrics on literal answers, and greedy base-vs-adapter runs on a tiny model."""

from __future__ import annotations

import pytest
import torch

from tests.training.helpers import byte_value_reward, colour_examples
from workers.training.evaluate import (
    classification_accuracy,
    detection_map,
    evaluate,
    grounding_miou,
    parse_detections,
    to_pixels,
)
from workers.training.lora import attach_lora
from workers.training.model import load_model


def test_classification_accuracy_is_exact_match_not_containment():
    items = [{"solution": "<answer>737-800</answer>"}] * 4 + [{"solution": "<answer>Red Rose</answer>"}]
    texts = ["<think>…</think><answer>737-800</answer>",  # right
             "<answer>7</answer>",  # substring of the truth: wrong (the original scored it 1)
             "<answer></answer>",  # empty: wrong (the original scored it 1)
             "<answer>737-800 or 747</answer>",  # hedging: wrong
             "<answer>red_rose</answer>"]  # same after normalisation: right
    assert classification_accuracy(texts, items) == pytest.approx(2 / 5)


def test_detection_map_uses_cocoeval_in_original_pixels():
    size, resized = [200, 100], [224, 112]
    truth = "<answer>[{'Position': [100, 100, 500, 500], 'Confidence': 1}]</answer>"  # norm1000
    items = [{"solution": truth, "category": "cat"}]
    perfect_norm = "<answer>[{'Position': [100, 100, 500, 500], 'Confidence': 0.9}]</answer>"
    assert detection_map([perfect_norm], items, [size], [resized], "norm1000") == pytest.approx(1.0)
    # the same box as Qwen2.5-VL writes it: pixels of the resized image
    box = [v * r / s for v, r, s in zip(to_pixels([100, 100, 500, 500], "norm1000", size, resized),
                                          resized * 2, size * 2)]
    coords = ", ".join(f"{v:.3f}" for v in box)
    perfect_px = f'<answer>[{{"bbox_2d": [{coords}], "confidence": 0.9}}]</answer>'
    assert detection_map([perfect_px], items, [size], [resized], "pixels_resized") == pytest.approx(1.0)
    wrong = "<answer>[{'Position': [600, 600, 900, 900], 'Confidence': 0.9}]</answer>"
    assert detection_map([wrong], items, [size], [resized], "norm1000") == 0.0
    assert detection_map(["No Objects"], items, [size], [resized], "norm1000") == 0.0
    assert parse_detections("<answer>No Objects</answer>") == []
    assert detection_map(["x"], [{"solution": "<answer>No Objects</answer>"}], [size], [resized], "norm1000") is None


def test_grounding_mean_iou():
    items = [{"solution": "<answer>(0,0),(500,500)</answer>"}, {"boxes": [[0, 0, 50, 50]]}]
    texts = ["<answer>(0,0),(500,500)</answer>", "<answer>[0, 0, 250, 500]</answer>"]
    # second: prediction norm1000 on a 100×100 image → (0,0,25,50) vs truth (0,0,50,50): IoU 0.5
    assert grounding_miou(texts, items, [[100, 100]] * 2, [[112, 112]] * 2, "norm1000") == pytest.approx(0.75)
    assert grounding_miou(["garbage"], items[:1], [[100, 100]], [[112, 112]], "norm1000") == 0.0


def test_evaluate_base_versus_adapter(model_cache):
    loaded = load_model("vrft/tiny-qwen3-vl", cache_dir=model_cache)
    base_result = evaluate(loaded.model, loaded, colour_examples(), byte_value_reward, max_new_tokens=4)
    model = attach_lora(loaded.model, r=4, alpha=8, seed=0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    as_base = evaluate(model, loaded, colour_examples(), byte_value_reward, max_new_tokens=4, use_adapter=False)
    tuned = evaluate(model, loaded, colour_examples(), byte_value_reward, max_new_tokens=4, batch_size=2)
    assert as_base["samples"] == base_result["samples"]  # adapter disabled = the base model
    assert tuned["samples"] != base_result["samples"]
    assert tuned["n"] == 3 and set(tuned["rewards"]) == {"byte_value"}
    assert tuned["reward_mean"] == pytest.approx(sum(s["reward"] for s in tuned["samples"]) / 3)
