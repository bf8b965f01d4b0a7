"""How rollouts and evaluations are shaped for the dashboard (pure functions of workers.job_hooks)."""

from app.jobs.metrics import eval_event
from workers.job_hooks import box_task, drawn_boxes

DETECT = {"type": "visual_rft", "name": "det", "task": "detection"}
SIZES = {"image_size": [224, 112], "resized_image_size": [112, 56]}
TRUTH = {"solution": "<answer>[{'Position': [0, 0, 500, 500], 'Confidence': 1}]</answer>"}


def test_norm1000_boxes_become_unit_coordinates():
    text = "<think>..</think><answer>[{'Position': [100, 200, 500, 1000], 'Confidence': 0.9}]</answer>"
    assert drawn_boxes(DETECT, "detection", [text], SIZES, TRUTH) == ([[0.0, 0.0, 0.5, 0.5]], [[[0.1, 0.2, 0.5, 1.0]]])


def test_qwen25_pixel_boxes_are_scaled_by_the_resized_image():
    text = "<answer>[{'bbox_2d': [56, 28, 112, 56], 'Confidence': 1}]</answer>"
    grader = {**DETECT, "coords": "pixels_resized"}  # what a Qwen2.5-VL job's grader says
    assert drawn_boxes(grader, "detection", [text], SIZES, TRUTH)[1] == [[[0.5, 0.5, 1.0, 1.0]]]


def test_the_truth_is_drawn_in_the_graders_reference_coords():
    """A pixels reference is no longer read as 0–1000."""
    grader = {**DETECT, "reference_coords": "pixels"}
    item = {"solution": "<answer>[{'Position': [22.4, 11.2, 112, 56], 'Confidence': 1}]</answer>"}
    assert drawn_boxes(grader, "detection", ["x"], SIZES, item)[0] == [[0.1, 0.1, 0.5, 0.5]]
    grounding = {"type": "grounding_iou", "name": "g", "reference": "{{item.box}}", "reference_coords": "pixels"}
    got = drawn_boxes(grounding, "grounding", ["<answer>(0,0),(500,500)</answer>"], SIZES, {"box": [0, 0, 112, 56]})
    assert got == ([[0.0, 0.0, 0.5, 0.5]], [[[0.0, 0.0, 0.5, 0.5]]])


def test_unparseable_answers_are_not_drawn():
    texts = ["I think it is a cat", "", "[{'Position': [1, 2, 3, 4], 'Confidence': 1}]", "<answer>No Objects</answer>"]
    truth, boxes = drawn_boxes(DETECT, "detection", texts, SIZES, TRUTH)
    assert boxes == [None, None, None, []]  # the third has no <answer> tag: its reward is 0, it is not drawn
    assert drawn_boxes(DETECT, "detection", ["x"], SIZES, {"solution": "two planes"}) == (None, [None])


def test_only_box_graders_draw():
    assert box_task(DETECT) == "detection"
    multi = {"type": "multi", "name": "m", "calculate_output": "g", "graders": {"g": {"type": "grounding_iou"}}}
    assert box_task(multi) == "grounding"
    assert box_task({"type": "visual_rft", "name": "c", "task": "classification"}) is None


def test_eval_data_names_the_task_metric():
    data = eval_event(0, {"reward_mean": 0.25, "rewards": {"iou": 0.1}, "map": 0.05, "samples": []})
    assert data == {"step": 0, "eval": True, "valid_reward_mean": 0.25, "valid_rewards": {"iou": 0.1},
                    "valid_metric_name": "map", "valid_metric": 0.05, "valid_map": 0.05}
    assert "valid_metric" not in eval_event(3, {"reward_mean": 1.0, "rewards": {}})
