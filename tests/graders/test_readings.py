"""``read``: the parsed answer and reference of each sample, as the reward's own leaf sees them."""

import pytest

from app.graders import Reading, read

SIZE = {"image_size": [200, 100], "resized_image_size": [224, 112]}


def test_classification_reads_canonical_labels():
    grader = {"type": "visual_rft", "name": "c", "task": "classification", "aliases": {"Rose": ["red rose"]}}
    got = read(grader, [{"output_text": "<answer>Red_Rose</answer>"}, {"output_text": "Rose"}],
               [{"solution": "<answer>Rose</answer>"}, {"solution": ""}])
    assert got == [Reading("rose", "rose"), Reading(None, None, "missing_answer", "reference_parse_error")]


def test_detection_reads_both_sides_into_norm1():
    grader = {"type": "visual_rft", "name": "d", "task": "detection", "coords": "pixels_resized",
              "reference_coords": "pixels"}
    text = "<answer>[{'bbox_2d': [22.4, 11.2, 112, 56], 'Confidence': 0.8}]</answer>"
    (got,) = read(grader, [{"output_text": text, **SIZE}], [{"solution": "[[20, 10, 100, 50]]"}])
    assert len(got.prediction) == 1 and got.prediction[0] == pytest.approx((0.1, 0.1, 0.5, 0.5, 0.8))
    assert got.reference[0][:4] == pytest.approx((0.1, 0.1, 0.5, 0.5))


def test_each_side_is_read_on_its_own():
    """A bad answer leaves the reference readable (evaluation still counts the truth it missed)."""
    grader = {"type": "visual_rft", "name": "d", "task": "detection", "reference_coords": "pixels"}
    (bad_answer,) = read(grader, [{"output_text": "<answer>two planes</answer>", **SIZE}],
                         [{"solution": "[[20, 10, 100, 50]]"}])
    assert bad_answer.prediction is None and bad_answer.prediction_flag == "sample_parse_error"
    assert bad_answer.reference is not None and bad_answer.reference_flag is None
    (no_size,) = read(grader, [{"output_text": "<answer>No Objects</answer>"}], [{"solution": "[[20, 10, 100, 50]]"}])
    assert no_size.prediction == () and no_size.reference_flag == "missing_image_size"


def test_grounding_reads_one_box_as_a_list_of_one():
    grader = {"type": "grounding_iou", "name": "g"}
    (got,) = read(grader, [{"output_text": "<answer>(0,0),(500,250)</answer>"}], [{"solution": "[0, 0, 1000, 1000]"}])
    assert got.prediction == ((0.0, 0.0, 0.5, 0.25, None),) and got.reference == ((0.0, 0.0, 1.0, 1.0, None),)


def test_a_grader_without_the_tasks_leaf_says_so():
    with pytest.raises(ValueError, match="reads no labels or boxes"):
        read({"type": "format", "name": "f"}, [{"output_text": "x"}], [{}])
    with pytest.raises(ValueError, match="no GroundingIoU leaf"):
        read({"type": "box_iou", "name": "b"}, [{"output_text": "x"}], [{}], task="grounding")


def test_drawn_boxes_are_rounded_unit_lists_and_none_for_other_graders():
    from app.graders import drawn_boxes

    grader = {"type": "visual_rft", "name": "g", "task": "grounding", "reference_coords": "pixels"}
    samples = [{"output_text": "<answer>(0,0),(333,500)</answer>", **SIZE}, {"output_text": "x", **SIZE}]
    got = drawn_boxes(grader, samples, [{"solution": "[0, 0, 100, 50]"}] * 2)
    assert got == [([[0.0, 0.0, 0.333, 0.5]], [[0.0, 0.0, 0.5, 0.5]]), (None, [[0.0, 0.0, 0.5, 0.5]])]
    assert drawn_boxes({"type": "label_match", "name": "l"}, [{"output_text": "x"}], [{"solution": "x"}]) is None
