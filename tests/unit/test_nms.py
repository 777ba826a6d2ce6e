"""Greedy NMS (native): known answers, against a plain reference loop, bounded candidates, NaN and ties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgenode.core.nms import nms


def reference_nms(boxes: np.ndarray, scores: np.ndarray, iou: float, max_boxes: int,
                  classes: np.ndarray | None = None) -> list[int]:
    """The textbook greedy loop (EdgeFirst HAL's), one pair at a time, in float32."""
    order = sorted(range(len(scores)), key=lambda i: -float(scores[i]))  # sorted() is stable
    if iou >= 1.0:
        return order[:max_boxes]
    alive = [True] * len(order)
    kept = []
    for a, i in enumerate(order):
        if not alive[a]:
            continue
        kept.append(i)
        for b in range(a + 1, len(order)):
            j = order[b]
            if not alive[b] or (classes is not None and classes[i] != classes[j]):
                continue
            bi, bj = boxes[i].astype(np.float32), boxes[j].astype(np.float32)
            w = max(np.float32(0), min(bi[2], bj[2]) - max(bi[0], bj[0]))
            h = max(np.float32(0), min(bi[3], bj[3]) - max(bi[1], bj[1]))
            inter = np.float32(w * h)
            union = (bi[2] - bi[0]) * (bi[3] - bi[1]) + (bj[2] - bj[0]) * (bj[3] - bj[1]) - inter
            if inter > np.float32(iou) * union:
                alive[b] = False
    return kept[:max_boxes]


BOXES = np.array([[0.0, 0.0, 0.4, 0.4],     # 0: best of a cluster
                  [0.02, 0.0, 0.42, 0.4],   # 1: overlaps 0 (IoU ~0.9)
                  [0.6, 0.6, 0.9, 0.9],     # 2: alone
                  [0.0, 0.05, 0.4, 0.45]],  # 3: overlaps 0 and 1
                 np.float32)
SCORES = np.array([0.9, 0.8, 0.7, 0.6], np.float32)


def test_greedy_keeps_best_of_each_cluster_in_score_order() -> None:
    assert nms(BOXES, SCORES, 0.5, 10).tolist() == [0, 2]


def test_class_aware_only_suppresses_the_same_class() -> None:
    classes = np.array([0, 1, 0, 0])
    assert nms(BOXES, SCORES, 0.5, 10, classes).tolist() == [0, 1, 2]


def test_iou_one_suppresses_nothing_and_max_boxes_caps() -> None:
    assert nms(BOXES, SCORES, 1.0, 10).tolist() == [0, 1, 2, 3]
    assert nms(BOXES, SCORES, 0.5, 1).tolist() == [0]


def test_suppression_needs_overlap_strictly_above_threshold() -> None:
    boxes = np.array([[0, 0, 2, 1], [1, 0, 3, 1]], np.float32)  # IoU exactly 1/3
    scores = np.array([0.9, 0.8], np.float32)
    assert nms(boxes, scores, 1 / 3, 10).tolist() == [0, 1]
    assert nms(boxes, scores, 0.33, 10).tolist() == [0]


def test_equal_scores_keep_input_order_and_quantised_scores_work() -> None:
    boxes = np.array([[0, 0, 1, 1], [0.5, 0.5, 1.5, 1.5], [0, 0, 1, 1]], np.float32)
    assert nms(boxes, np.array([-100, -100, -100], np.int8), 0.5, 10).tolist() == [0, 1]


def test_cap_keeps_the_best_boxes_ties_first() -> None:
    apart = np.array([[i, 0, i + 0.5, 1] for i in range(5)], np.float32)  # no two overlap
    scores = np.array([0.1, 0.9, 0.5, 0.9, 0.7], np.float32)
    assert nms(apart, scores, 0.5, 10, cap=2).tolist() == [1, 3]
    assert nms(apart, scores, 0.5, 10, cap=3).tolist() == [1, 3, 4]
    assert nms(apart, scores, 0.5, 10, cap=9).tolist() == [1, 3, 4, 2, 0]
    tied = np.full(5, 0.5, np.float32)
    assert nms(apart, tied, 0.5, 10, cap=3).tolist() == [0, 1, 2]


def test_nan_scores_come_last_and_nan_boxes_never_suppress() -> None:
    scores = np.array([np.nan, 0.8, 0.9], np.float32)
    apart = np.array([[0, 0, 1, 1], [2, 2, 3, 3], [4, 4, 5, 5]], np.float32)
    assert nms(apart, scores, 0.5, 10).tolist() == [2, 1, 0]
    boxes = np.array([[0, 0, 1, 1], [0, 0, 1, np.nan], [0, 0, 1, 1]], np.float32)
    assert nms(boxes, np.array([0.9, 0.8, 0.7], np.float32), 0.5, 10).tolist() == [0, 1]


boxes_strategy = st.integers(1, 150).flatmap(lambda n: st.tuples(
    st.lists(st.tuples(st.floats(0, 1, width=32), st.floats(0, 1, width=32), st.floats(0.015625, 0.5, width=32),
                       st.floats(0.015625, 0.5, width=32)), min_size=n, max_size=n),
    st.lists(st.sampled_from([0.3, 0.5, 0.7, 0.9, 0.95]), min_size=n, max_size=n),
    st.lists(st.integers(0, 2), min_size=n, max_size=n)))


@settings(max_examples=60, deadline=None)
@given(data=boxes_strategy, iou=st.sampled_from([0.0, 0.3, 0.45, 0.7, 1.0]), aware=st.booleans(),
       max_boxes=st.integers(1, 60))
def test_matches_the_reference_loop(data: tuple, iou: float, aware: bool, max_boxes: int) -> None:
    raw, score_list, class_list = data
    xywh = np.array(raw, np.float32)
    boxes = np.stack([xywh[:, 0], xywh[:, 1], xywh[:, 0] + xywh[:, 2], xywh[:, 1] + xywh[:, 3]], axis=1)
    scores = np.array(score_list, np.float32)
    classes = np.array(class_list) if aware else None
    expected = reference_nms(boxes, scores, iou, max_boxes, classes)
    assert nms(boxes, scores, iou, max_boxes, classes).tolist() == expected


@pytest.mark.parametrize("count", [1, 2, 64, 65, 300, 1000])
def test_many_boxes_give_the_reference_answer(count: int) -> None:
    rng = np.random.default_rng(7)
    xy = rng.uniform(0, 0.9, (count, 2)).astype(np.float32)
    boxes = np.concatenate([xy, xy + rng.uniform(0.02, 0.2, (count, 2)).astype(np.float32)], axis=1)
    scores = rng.uniform(0.2, 1.0, count).astype(np.float32)
    classes = rng.integers(0, 3, count)
    assert nms(boxes, scores, 0.45, 100).tolist() == reference_nms(boxes, scores, 0.45, 100)
    assert nms(boxes, scores, 0.3, 300, classes).tolist() == reference_nms(boxes, scores, 0.3, 300, classes)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int8, np.uint8, np.int16])
def test_every_score_type_gives_the_reference_answer(dtype: type) -> None:
    rng = np.random.default_rng(3)
    for count in (2, 29, 64, 65, 200):
        xy = rng.uniform(0, 0.9, (count, 2)).astype(np.float32)
        boxes = np.concatenate([xy, xy + rng.uniform(0.0, 0.2, (count, 2)).astype(np.float32)], axis=1)
        scores = rng.integers(0, 120, count).astype(dtype)  # many ties: they keep input order
        expected = reference_nms(boxes, scores.astype(np.float32), 0.45, 100)
        assert nms(boxes, scores, 0.45, 100).tolist() == expected
