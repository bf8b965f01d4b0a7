"""Evaluation: task metrics over what the grader read, and greedy base-vs-adapter runs on a tiny model."""

from __future__ import annotations

import pytest
import torch

from app.graders import metric_task, score
from tests.training.helpers import byte_value_reward, colour_examples
from workers.training.evaluate import evaluate, task_metric
from workers.training.lora import attach_lora
from workers.training.model import load_model

SIZE, RESIZED = [200, 100], [224, 112]  # an image and the processor's resize of it
CLASSIFY = {"type": "visual_rft", "name": "cls", "task": "classification",
            "aliases": {"Boeing 737-800": ["737-800", "B738"]}}


def samples(*texts: str, size=SIZE, resized=RESIZED) -> list[dict]:
    return [{"output_text": t, "image_size": size, "resized_image_size": resized} for t in texts]


def test_classification_accuracy_uses_the_graders_aliases_and_tags():
    items = [{"solution": "<answer>Boeing 737-800</answer>"}] * 7 + [{"solution": "<answer>Red Rose</answer>"}]
    texts = ["<think>…</think><answer>Boeing 737-800</answer>",  # right
             "<answer>B738</answer>",  # an alias of the truth: right (evaluation used to ignore aliases)
             "Boeing 737-800",  # no <answer> tag: the reward scores it 0, so must the metric
             "<answer>7</answer>",  # a substring of the truth: wrong (the original scored it 1)
             "<answer></answer>",  # empty: wrong (the original scored it 1)
             "<answer>737-800 or 747</answer>",  # hedging: wrong
             "<answer>747</answer>",  # wrong
             "<answer>red_rose</answer>"]  # the same after normalisation: right
    got = task_metric(CLASSIFY, samples(*texts), items)
    assert got == {"accuracy": pytest.approx(3 / 8)}
    # the metric and the accuracy reward are one judgement
    rewards = score(CLASSIFY, samples(*texts), items).sub_rewards["accuracy"]
    assert got["accuracy"] == pytest.approx(sum(rewards) / len(rewards))


DETECT_PIXELS = {"type": "visual_rft", "name": "det", "task": "detection", "reference_coords": "pixels"}
# (20, 10)–(100, 50) in pixels of the 200×100 image = (0.1, 0.1)–(0.5, 0.5) of it
TRUTH_PX = "<answer>[{'Position': [20, 10, 100, 50], 'Confidence': 1}]</answer>"


def test_detection_map_reads_the_reference_in_the_graders_coords():
    items = [{"solution": TRUTH_PX, "category": "plane"}]
    perfect_norm = "<answer>[{'Position': [100, 100, 500, 500], 'Confidence': 0.9}]</answer>"
    assert task_metric(DETECT_PIXELS, samples(perfect_norm), items) == {"map": pytest.approx(1.0)}
    # assuming norm1000 for the reference (as evaluation used to) would put the truth at
    # (0.02, 0.01)–(0.1, 0.05) and score this perfect answer 0
    norm_truth = {**DETECT_PIXELS, "reference_coords": "norm1000"}
    assert task_metric(norm_truth, samples(perfect_norm), items)["map"] == 0.0

    # Qwen2.5-VL writes pixels of the resized image: the grader's `coords` says so
    qwen25 = {**DETECT_PIXELS, "coords": "pixels_resized"}
    perfect_px = '<answer>[{"bbox_2d": [22.4, 11.2, 112, 56], "confidence": 0.9}]</answer>'
    assert task_metric(qwen25, samples(perfect_px), items)["map"] == pytest.approx(1.0)
    assert task_metric(DETECT_PIXELS, samples(perfect_px), items)["map"] < 0.5  # read as norm1000: wrong

    wrong = "<answer>[{'Position': [600, 600, 900, 900], 'Confidence': 0.9}]</answer>"
    untagged = "[{'Position': [100, 100, 500, 500], 'Confidence': 0.9}]"  # reward 0 (missing_answer)
    for text in (wrong, "<answer>No Objects</answer>", untagged):
        assert task_metric(DETECT_PIXELS, samples(text), items)["map"] == 0.0, text
    nothing_to_find = [{"solution": "<answer>No Objects</answer>"}]
    assert task_metric(DETECT_PIXELS, samples("x"), nothing_to_find) == {"map": None}


def test_detection_map_keeps_the_truth_of_unparseable_answers():
    """A failed answer still has ground truth to miss: it lowers the mAP instead of leaving the set."""
    items = [{"solution": TRUTH_PX}] * 2
    good = "<answer>[{'Position': [100, 100, 500, 500], 'Confidence': 0.9}]</answer>"
    assert task_metric(DETECT_PIXELS, samples(good, good), items)["map"] == pytest.approx(1.0)
    half = task_metric(DETECT_PIXELS, samples(good, "<answer>two planes</answer>"), items)["map"]
    assert 0.0 < half < 0.6


def test_grounding_mean_iou_in_the_graders_frame():
    grader = {"type": "visual_rft", "name": "g", "task": "grounding", "grounding_metric": "iou",
              "reference": "{{item.boxes}}", "reference_coords": "pixels"}
    items = [{"boxes": [0, 0, 100, 100]}, {"boxes": [0, 0, 50, 50]}]  # pixels of 100×100 images
    texts = ["<answer>(0,0),(1000,1000)</answer>", "<answer>[0, 0, 250, 500]</answer>"]
    # second: (0, 0)–(0.25, 0.5) against (0, 0)–(0.5, 0.5) → IoU 0.5
    got = task_metric(grader, samples(*texts, size=[100, 100], resized=[112, 112]), items)
    assert got == {"miou": pytest.approx(0.75)}
    unreadable = samples("garbage", "(0,0),(250,500)", size=[100, 100])  # the second has no <answer>
    assert task_metric(grader, unreadable, items) == {"miou": 0.0}


def test_the_metric_is_the_one_the_grader_implies():
    multi = {"type": "multi", "name": "m", "calculate_output": "f + b", "graders": {
        "f": {"type": "format"}, "b": {"type": "box_iou", "reference_coords": "pixels"}}}
    assert metric_task(multi) == "detection"
    assert metric_task(CLASSIFY) == "classification"
    assert metric_task({"type": "format", "name": "f"}) is None
    items = [{"solution": TRUTH_PX}]
    perfect = "<answer>[{'Position': [100, 100, 500, 500], 'Confidence': 0.9}]</answer>"
    assert task_metric(multi, samples(perfect), items) == {"map": pytest.approx(1.0)}
    assert task_metric({"type": "format", "name": "f"}, samples("x"), [{}]) == {}
    with pytest.raises(ValueError, match="no LabelMatch leaf"):
        task_metric(multi, samples(perfect), items, task="classification")


def test_evaluate_reports_the_graders_accuracy(model_cache):
    """End to end on the tiny model: the greedy answers (random bytes, but fixed) are made right by
    the items and the grader's aliases; untagged, they are wrong for the preset, as for its reward."""
    loaded = load_model("vrft/tiny-qwen2-vl", cache_dir=model_cache)
    data = colour_examples()
    first = evaluate(loaded.model, loaded, data, byte_value_reward, max_new_tokens=3)
    texts = [s["output_text"] for s in first["samples"]]
    items = [{"solution": f"<answer>{texts[0]}</answer>"}, {"solution": "colour one"}, {"solution": "neither"}]
    data = [ex | {"item": item} for ex, item in zip(data, items, strict=True)]
    raw = {"type": "label_match", "name": "acc", "extract_answer": False, "aliases": {"colour one": [texts[1]]}}

    result = evaluate(loaded.model, loaded, data, raw, max_new_tokens=3)
    assert [s["output_text"] for s in result["samples"]] == texts
    assert result["accuracy"] == pytest.approx(2 / 3) == result["rewards"]["acc"]

    preset = evaluate(loaded.model, loaded, data, {**CLASSIFY, "aliases": raw["aliases"]}, max_new_tokens=3)
    assert preset["accuracy"] == 0.0 == preset["rewards"]["accuracy"]  # no <answer> tag in any of them

    with pytest.raises(ValueError, match="grader spec"):
        evaluate(loaded.model, loaded, data, byte_value_reward, task="classification", max_new_tokens=1)


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
