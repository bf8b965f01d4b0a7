"""The visual_rft preset against literal completions, including every exploit in VISUAL_RFT.md."""

import pytest

from app.graders import grader_names

from .helpers import completion, run_one

DETECTION = {"type": "visual_rft", "name": "det", "task": "detection"}
CLASSIFICATION = {"type": "visual_rft", "name": "cls", "task": "classification"}
GROUNDING = {"type": "visual_rft", "name": "ground", "task": "grounding"}

TWO_BOXES = {
    "solution": "<answer>[{'Position': [100, 100, 200, 200], 'Confidence': 1}, "
    "{'Position': [300, 300, 400, 400], 'Confidence': 1}]</answer>"
}


def boxes(*items):
    return "[" + ", ".join(f"{{'Position': {list(b)}, 'Confidence': {c}}}" for b, c in items) + "]"


# ------------------------------------------------------------------------------- classification


@pytest.mark.parametrize(
    "answer, accuracy",
    [
        ("737-800", 1.0),
        ("737_800", 1.0),  # normalisation drops underscores/punctuation on both sides
        (" 737-800. ", 1.0),
        ("7", 0.0),  # substring of the label: the original scored 1
        ("737-800 or A320 or 747", 0.0),  # hedging: the original scored 1
        ("Boeing 737-800", 0.0),  # exact match only, unless an alias says so
    ],
)
def test_classification(answer, accuracy):
    reward, subs, flags = run_one(CLASSIFICATION, completion(answer), {"solution": "<answer>737-800</answer>"})
    assert subs == {"accuracy": accuracy, "format": 1.0}
    assert reward == accuracy + 1.0
    assert not flags


def test_classification_empty_answer_scores_zero():
    # the empty string is a substring of everything: the original scored this 1.0
    reward, subs, flags = run_one(CLASSIFICATION, completion(""), {"solution": "<answer>737-800</answer>"})
    assert subs["accuracy"] == 0.0
    assert "missing_answer" in flags


def test_classification_no_answer_tag():
    reward, subs, flags = run_one(CLASSIFICATION, "It is a 737-800.", {"solution": "737-800"})
    assert reward == 0.0 and flags == {"missing_answer"}


def test_classification_aliases():
    grader = {**CLASSIFICATION, "aliases": {"737-800": ["Boeing 737-800", "B738"]}}
    item = {"solution": "<answer>737-800</answer>"}
    assert run_one(grader, completion("B738"), item)[1]["accuracy"] == 1.0
    assert run_one(grader, completion("Boeing 737-800"), item)[1]["accuracy"] == 1.0
    assert run_one(grader, completion("737-700"), item)[1]["accuracy"] == 0.0


# ------------------------------------------------------------------------------------ detection


def test_detection_correct_answer():
    text = completion(boxes(((100, 100, 200, 200), 0.9), ((300, 300, 400, 400), 0.9)))
    reward, subs, flags = run_one(DETECTION, text, TWO_BOXES)
    assert subs == pytest.approx({"iou": 1.0, "confidence": 0.9, "format": 1.0})
    assert reward == pytest.approx(2.9)
    assert not flags


def test_detection_first_number_exploit_scores_by_iou_only():
    # x1 = 100 equals the ground truth's first number; the original's math verifier paid 1.0 for it
    text = completion(boxes(((100, 500, 150, 550), 0.9)))
    reward, subs, _ = run_one(DETECTION, text, TWO_BOXES)
    assert subs["iou"] == 0.0
    assert subs["confidence"] == pytest.approx(0.1)
    assert reward == pytest.approx(1.1)


def test_wrong_boxes_at_zero_confidence_rank_below_the_right_answer():
    wrong = completion(boxes(((600, 600, 700, 700), 0.0), ((800, 800, 900, 900), 0.0)))
    right = completion(boxes(((100, 100, 200, 200), 0.9), ((300, 300, 400, 400), 0.9)))
    wrong_reward, wrong_subs, _ = run_one(DETECTION, wrong, TWO_BOXES)
    right_reward, _, _ = run_one(DETECTION, right, TWO_BOXES)
    assert wrong_subs["iou"] == 0.0
    assert wrong_subs["confidence"] == 1.0  # the paper's formula credits 1 − c; documented
    assert wrong_reward == pytest.approx(2.0)
    assert wrong_reward < right_reward


@pytest.mark.parametrize("empty_truth", ["<answer>[]</answer>", "<answer>No Objects</answer>", ""])
def test_no_objects_against_empty_ground_truth_scores_one(empty_truth):
    reward, subs, flags = run_one(DETECTION, completion("No Objects"), {"solution": empty_truth})
    assert subs == {"iou": 1.0, "confidence": 1.0, "format": 1.0}
    assert not flags


def test_no_objects_against_real_objects():
    reward, subs, _ = run_one(DETECTION, completion("No Objects"), TWO_BOXES)
    assert subs["iou"] == 0.0 and subs["confidence"] == 0.0


def test_partial_detection_and_overlap():
    # one of two objects found, with IoU 10000/12000
    text = completion(boxes(((100, 100, 200, 220), 0.8)))
    reward, subs, _ = run_one(DETECTION, text, TWO_BOXES)
    assert subs["iou"] == pytest.approx((10000 / 12000) / 2)
    assert subs["confidence"] == pytest.approx(0.8)


def test_bbox_2d_keys_parse():
    text = completion('[{"bbox_2d": [100, 100, 200, 200], "confidence": 0.9}, '
                      '{"bbox_2d": [300, 300, 400, 400], "confidence": 0.9}]')
    _, subs, flags = run_one(DETECTION, text, TWO_BOXES)
    assert subs["iou"] == 1.0 and not flags


def test_truncated_completion_keeps_complete_elements():
    text = ("<think>two boxes</think><answer>[{'Position': [100, 100, 200, 200], 'Confidence': 0.9}, "
            "{'Position': [300, 3")
    reward, subs, flags = run_one(DETECTION, text, TWO_BOXES)
    assert subs == pytest.approx({"iou": 0.5, "confidence": 0.9, "format": 0.0})
    assert not flags


def test_duplicate_boxes_do_not_inflate_or_punish():
    text = completion(boxes(*[((100, 100, 200, 200), 0.9)] * 3))
    _, subs, _ = run_one(DETECTION, text, TWO_BOXES)
    assert subs["iou"] == pytest.approx(0.5)  # deduplicated to one prediction


def test_unparseable_answer_is_a_flag_not_a_crash():
    reward, subs, flags = run_one(DETECTION, completion("two cats on a sofa"), TWO_BOXES)
    assert subs == {"iou": 0.0, "confidence": 0.0, "format": 1.0}
    assert flags == {"sample_parse_error"}


def test_missing_reference_field_is_flagged():
    reward, subs, flags = run_one(DETECTION, completion("No Objects"), {"problem": "x"})
    assert "missing_item_field" in flags and subs["iou"] == 0.0


def test_weights():
    grader = {**DETECTION, "weights": {"format": 0.5, "confidence": 0.0}}
    text = completion(boxes(((100, 100, 200, 200), 0.9), ((300, 300, 400, 400), 0.9)))
    reward, _, _ = run_one(grader, text, TWO_BOXES)
    assert reward == pytest.approx(1.5)


# ---------------------------------------------------------------------------------- coordinates

RESIZED = [644, 476]  # what Qwen2.5-VL's processor made of the image (multiples of 28)


def to_resized_pixels(b):
    return [b[0] * RESIZED[0] / 1000, b[1] * RESIZED[1] / 1000, b[2] * RESIZED[0] / 1000, b[3] * RESIZED[1] / 1000]


def test_qwen25_pixel_answer_scores_like_qwen2_norm1000_answer():
    norm_boxes = [(100, 100, 200, 220), (310, 290, 400, 400)]
    qwen2 = completion(boxes(*[(b, 0.8) for b in norm_boxes]))
    qwen25 = completion(boxes(*[(to_resized_pixels(b), 0.8) for b in norm_boxes]))
    _, subs2, _ = run_one(DETECTION, qwen2, TWO_BOXES, resized_image_size=RESIZED)
    _, subs25, flags = run_one({**DETECTION, "coords": "pixels_resized"}, qwen25, TWO_BOXES,
                               resized_image_size=RESIZED)
    assert not flags
    assert subs25 == pytest.approx(subs2)
    assert 0.5 < subs2["iou"] < 1.0


def test_pixel_answer_scored_as_norm1000_is_wrong():
    # the trap of Visual-RFT issues #14/#119/#232: Qwen2.5-VL pixels read as 0–1000
    qwen25 = completion(boxes((to_resized_pixels((100, 100, 200, 200)), 0.9),
                              (to_resized_pixels((300, 300, 400, 400)), 0.9)))
    _, subs, _ = run_one(DETECTION, qwen25, TWO_BOXES)
    assert subs["iou"] < 0.5


def test_pixels_resized_without_size_is_flagged():
    grader = {**DETECTION, "coords": "pixels_resized"}
    reward, subs, flags = run_one(grader, completion(boxes(((64, 47, 128, 95), 0.9))), TWO_BOXES)
    assert flags == {"missing_image_size"}
    assert subs["iou"] == 0.0


def test_original_pixel_ground_truth():
    grader = {**DETECTION, "reference_coords": "pixels"}
    item = {"solution": "[{'Position': [128, 96, 256, 192], 'Confidence': 1}]"}  # 1280x960 image
    text = completion(boxes(((100, 100, 200, 200), 1.0)))
    _, subs, flags = run_one(grader, text, item, image_size=[1280, 960])
    assert subs["iou"] == pytest.approx(1.0) and not flags


# ------------------------------------------------------------------------------------ grounding


@pytest.mark.parametrize(
    "answer, giou_plus_1",
    [
        ("(100,100),(200,200)", 2.0),
        ("[150, 100, 250, 200]", 1 + 1 / 3),  # IoU 1/3, hull = union
        ("{'bbox_2d': [300, 300, 400, 400]}", 1 - 70000 / 90000),  # disjoint: GIoU < 0
    ],
)
def test_grounding(answer, giou_plus_1):
    reward, subs, _ = run_one(GROUNDING, completion(answer), {"solution": "<answer>[100, 100, 200, 200]</answer>"})
    assert subs["giou"] == pytest.approx(giou_plus_1)
    assert reward == pytest.approx(giou_plus_1 + 1.0)


def test_grounding_plain_iou_option():
    grader = {**GROUNDING, "grounding_metric": "iou"}
    _, subs, _ = run_one(grader, completion("[150, 100, 250, 200]"), {"solution": "[100, 100, 200, 200]"})
    assert subs == pytest.approx({"iou": 1 / 3, "format": 1.0})


def test_preset_names():
    assert grader_names(CLASSIFICATION) == ["accuracy", "format"]
    assert grader_names(DETECTION) == ["iou", "confidence", "format"]
    assert grader_names(GROUNDING) == ["giou", "format"]
    assert grader_names({**GROUNDING, "grounding_metric": "iou"}) == ["iou", "format"]


@pytest.mark.parametrize("preset", [DETECTION, CLASSIFICATION, GROUNDING])
def test_expand_preset_is_the_same_grader(preset):
    from app.graders import expand_preset, score, validate_grader

    multi = expand_preset(validate_grader({**preset, "weights": {"format": 0.5}}))
    assert validate_grader(multi)["type"] == "multi"
    texts = [completion(boxes(((100, 100, 200, 200), 0.9))), completion("737-800"), "no tags",
             completion("[100, 100, 200, 200]")]
    samples = [{"output_text": t} for t in texts]
    items = [{"solution": "<answer>[{'Position': [100, 100, 200, 200], 'Confidence': 1}]</answer>"}] * 4
    assert score(multi, samples, items).rewards == pytest.approx(
        score({**preset, "weights": {"format": 0.5}}, samples, items).rewards
    )
