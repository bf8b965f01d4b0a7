"""How rollouts and evaluations are shaped for the dashboard (pure functions of workers.job_hooks)."""

from workers.job_hooks import _boxes, eval_event_data


def test_norm1000_boxes_become_unit_coordinates():
    text = "<think>..</think><answer>[{'Position': [100, 200, 500, 1000], 'Confidence': 0.9}]</answer>"
    assert _boxes(text, 1000, 1000) == [[0.1, 0.2, 0.5, 1.0]]


def test_qwen25_pixel_boxes_are_scaled_by_the_resized_image():
    text = "<answer>[{'bbox_2d': [56, 28, 112, 56]}]</answer>"
    assert _boxes(text, 112, 56) == [[0.5, 0.5, 1.0, 1.0]]


def test_unparseable_answers_are_not_drawn():
    assert _boxes("I think it is a cat", 1000, 1000) is None
    assert _boxes("", 1000, 1000) is None
    assert _boxes("<answer>No Objects</answer>", 1000, 1000) == []


def test_eval_data_names_the_task_metric():
    data = eval_event_data(0, {"reward_mean": 0.25, "rewards": {"iou": 0.1}, "map": 0.05, "samples": []})
    assert data == {"step": 0, "eval": True, "valid_reward_mean": 0.25, "valid_rewards": {"iou": 0.1},
                    "valid_metric_name": "map", "valid_metric": 0.05, "valid_map": 0.05}
    assert "valid_metric" not in eval_event_data(3, {"reward_mean": 1.0, "rewards": {}})
