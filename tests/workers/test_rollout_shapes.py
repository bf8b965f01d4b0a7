"""How rollouts and evaluations are shaped for the dashboard (workers.job_hooks, no database)."""

import io

from PIL import Image

from app.jobs.metrics import eval_event
from workers.job_hooks import JobHooks

DETECT = {"type": "visual_rft", "name": "det", "task": "detection"}
SIZES = {"image_size": [224, 112], "resized_image_size": [112, 56]}
TRUTH = "<answer>[{'Position': [0, 0, 500, 500], 'Confidence': 1}]</answer>"


def shaped(grader: dict, texts: list[str], item: dict) -> dict:
    """One logged rollout as the dashboard stores it (no database: shaping is pure)."""
    buf = io.BytesIO()
    Image.new("RGB", (224, 112), (200, 30, 30)).save(buf, "PNG")
    hooks = JobHooks(job_id="j", project_id="p", worker_id="w", lease=None, store=None, settings=None,
                     examples={"a": {"image": buf.getvalue(), "item": item}}, total_steps=1,
                     completions_per_step=len(texts), grader=grader)
    n = len(texts)
    return hooks._shape_rollout(1, {"prompt_id": "a", "prompt": "Detect.", **SIZES, "completions": texts,
                                    "rewards": [0.0] * n, "advantages": [0.0] * n})


def test_norm1000_boxes_become_unit_coordinates():
    text = "<think>..</think><answer>[{'Position': [100, 200, 500, 1000], 'Confidence': 0.9}]</answer>"
    out = shaped(DETECT, [text], {"solution": TRUTH})
    assert out["gt_boxes"] == [[0.0, 0.0, 0.5, 0.5]]
    assert out["completions"][0]["boxes"] == [[0.1, 0.2, 0.5, 1.0]]


def test_qwen25_pixel_boxes_are_scaled_by_the_resized_image():
    text = "<answer>[{'bbox_2d': [56, 28, 112, 56], 'Confidence': 1}]</answer>"
    grader = {**DETECT, "coords": "pixels_resized"}  # what a Qwen2.5-VL job's grader says
    assert shaped(grader, [text], {"solution": TRUTH})["completions"][0]["boxes"] == [[0.5, 0.5, 1.0, 1.0]]


def test_the_truth_is_drawn_in_the_graders_reference_coords():
    """A pixels reference is no longer read as 0–1000."""
    grader = {**DETECT, "reference_coords": "pixels"}
    item = {"solution": "<answer>[{'Position': [22.4, 11.2, 112, 56], 'Confidence': 1}]</answer>"}
    assert shaped(grader, ["x"], item)["gt_boxes"] == [[0.1, 0.1, 0.5, 0.5]]


def test_unparseable_answers_are_not_drawn():
    texts = ["I think it is a cat", "", "[{'Position': [1, 2, 3, 4], 'Confidence': 1}]", "<answer>No Objects</answer>"]
    out = shaped(DETECT, texts, {"solution": TRUTH})
    # the third has no <answer> tag: its reward is 0, so it is not drawn either
    assert [c["boxes"] for c in out["completions"]] == [None, None, None, []]
    assert shaped(DETECT, ["x"], {"solution": "two planes"})["gt_boxes"] is None


def test_only_box_graders_draw():
    out = shaped({"type": "visual_rft", "name": "c", "task": "classification"}, ["<answer>cat</answer>"],
                 {"solution": "cat"})
    assert out["gt_boxes"] is None and out["completions"][0]["boxes"] is None
    assert out["image"].startswith("data:image/jpeg;base64,") and out["reference"] == {"solution": "cat"}


def test_eval_data_names_the_task_metric():
    data = eval_event(0, {"reward_mean": 0.25, "rewards": {"iou": 0.1}, "map": 0.05, "samples": []})
    assert data == {"step": 0, "eval": True, "valid_reward_mean": 0.25, "valid_rewards": {"iou": 0.1},
                    "valid_metric_name": "map", "valid_metric": 0.05, "valid_map": 0.05}
    assert "valid_metric" not in eval_event(3, {"reward_mean": 1.0, "rewards": {}})
