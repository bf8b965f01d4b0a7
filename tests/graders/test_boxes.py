import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.graders.boxes import confidence_reward, giou, iou, iou_reward, match_boxes


def test_iou_literals():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0  # touching edges share no area
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)
    assert iou((0, 0, 0, 10), (0, 0, 0, 10)) == 0.0  # degenerate


def test_giou_literals():
    assert giou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    # disjoint: hull 30x10 = 300, union 200 → 0 − 100/300
    assert giou((0, 0, 10, 10), (20, 0, 30, 10)) == pytest.approx(-1 / 3)
    assert giou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)


coord = st.floats(min_value=-2000, max_value=2000, allow_nan=False)
box = st.tuples(coord, coord, coord, coord).map(
    lambda b: (min(b[0], b[2]), min(b[1], b[3]), max(b[0], b[2]), max(b[1], b[3]))
)


@given(box, box)
def test_iou_symmetric_and_bounded(a, b):
    assert iou(a, b) == pytest.approx(iou(b, a))
    assert 0.0 <= iou(a, b) <= 1.0


@given(box, box)
def test_giou_symmetric_bounded_and_below_iou(a, b):
    g = giou(a, b)
    assert g == pytest.approx(giou(b, a))
    assert -1.0 - 1e-9 <= g <= 1.0 + 1e-9
    assert g <= iou(a, b) + 1e-9


@given(box)
def test_iou_of_box_with_itself(a):
    area = (a[2] - a[0]) * (a[3] - a[1])
    if area > 1e-6:
        assert iou(a, a) == pytest.approx(1.0)


def test_greedy_matching_confidence_order():
    gts = [(0, 0, 10, 10, None)]
    # the confident prediction claims the only ground truth even though the other overlaps more
    preds = [(0, 0, 10, 9, 0.2), (0, 0, 10, 8, 0.9)]
    total, matched = match_boxes(preds, gts)
    assert matched == [False, True]
    assert total == pytest.approx(0.8)


def test_matching_needs_iou_above_threshold():
    total, matched = match_boxes([(0, 0, 10, 10, 1.0)], [(5, 0, 15, 10, None)])
    assert (total, matched) == (0.0, [False])


def test_rewards_edge_cases():
    assert iou_reward([], [], 0.0) == 1.0  # 'No Objects' and nothing to find
    assert iou_reward([], [(0, 0, 1, 1, None)], 0.0) == 0.0
    assert confidence_reward([], [], n_gt=0) == 1.0
    assert confidence_reward([], [], n_gt=2) == 0.0
    assert confidence_reward([0.9, 0.2], [True, False], n_gt=1) == pytest.approx((0.9 + 0.8) / 2)
    assert confidence_reward([1.7], [True], n_gt=1) == 1.0  # clamped
