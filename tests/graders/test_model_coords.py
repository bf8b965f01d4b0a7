"""``validate_grader(..., model_coords=)``: box graders that leave ``coords`` out take the model's."""

import pytest

from app.errors import ServiceError
from app.graders import validate_grader
from app.graders.spec import MODELS


@pytest.mark.parametrize("spec", [
    {"type": "box_iou", "name": "x"},
    {"type": "box_confidence", "name": "x"},
    {"type": "grounding_iou", "name": "x"},
    {"type": "point_in_box", "name": "x"},
    {"type": "visual_rft", "name": "x", "task": "detection"},
    {"type": "visual_rft", "name": "x", "task": "grounding"},
])
def test_box_graders_take_the_model_coords_when_omitted(spec):
    assert validate_grader(spec, model_coords="pixels_resized")["coords"] == "pixels_resized"
    assert validate_grader(spec)["coords"] == "norm1000"  # no model known: the paper's convention
    assert validate_grader({**spec, "coords": "norm1"}, model_coords="pixels_resized")["coords"] == "norm1"


def test_graders_without_boxes_are_left_alone():
    cls = validate_grader({"type": "visual_rft", "name": "c", "task": "classification"},
                          model_coords="pixels_resized")
    assert "coords" not in cls  # and no "does not apply to task" error either
    assert "coords" not in validate_grader({"type": "count_match", "name": "n"}, model_coords="pixels_resized")


def test_nested_box_graders_take_it_too():
    spec = {"type": "multi", "name": "m", "calculate_output": "a + b", "graders": {
        "a": {"type": "box_iou"},
        "b": {"type": "multi", "calculate_output": "c", "graders": {"c": {"type": "point_in_box", "coords": "norm1"}}},
    }}
    out = validate_grader(spec, model_coords="pixels_resized")
    assert out["graders"]["a"]["coords"] == "pixels_resized"
    assert out["graders"]["b"]["graders"]["c"]["coords"] == "norm1"


def test_every_grader_with_a_coords_field_reads_model_boxes():
    """The spec classes decide (no hand-kept list of type names): a class has ``coords`` exactly when
    it answers True for some task."""
    for kind, cls in MODELS.items():
        has_coords = "coords" in cls.model_fields
        reads = any(cls.reads_model_boxes({"task": t}) for t in ("classification", "detection", "grounding"))
        assert has_coords == reads, kind


def test_a_task_that_is_not_a_string_is_a_named_error_not_a_crash():
    with pytest.raises(ServiceError) as info:
        validate_grader({"type": "visual_rft", "name": "x", "task": ["detection"]}, model_coords="pixels")
    assert info.value.param == "grader.task"
