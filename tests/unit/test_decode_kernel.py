"""The native decode kernel's bounds: plans are checked, capacities never exceeded, bad plans refused."""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np
import pytest

from edgenode.kernels import decode as kernel
from edgenode.kernels.decode import BOXES_XYWH, NORMALISE_NEVER, TYPE_F32, DecodePlan, Source, address


def plan(head: np.ndarray, *, max_boxes: int = 100, cap: int = 300, iou: float = 0.45) -> DecodePlan:
    """A plan over a float32 ``[4 + classes, anchors]`` head."""
    rows, anchors = head.shape
    classes = np.arange(rows - 4)
    return DecodePlan(score=Source(TYPE_F32), row_offsets=(classes + 4) * anchors, class_ids=classes, anchors=anchors,
                      anchor_stride=1, threshold=0.5, box=Source(TYPE_F32), box_format=BOXES_XYWH,
                      box_offsets=(0, anchors, 2 * anchors, 3 * anchors), box_anchor_stride=1, iou=iou,
                      class_aware=False, max_boxes=max_boxes, cap=cap, normalise=NORMALISE_NEVER,
                      score_elements=head.size, box_elements=head.size)


def apart(anchors: int, classes: int = 2) -> np.ndarray:
    """Every anchor a candidate (score 0.9, class 1), no two boxes overlapping."""
    head = np.zeros((4 + classes, anchors), np.float32)
    head[0], head[1] = np.arange(anchors) * 2.0, 0.5
    head[2:4] = 1.0
    head[5] = 0.9
    return head


@pytest.mark.parametrize(("anchors", "max_boxes", "cap", "kept"), [(1000, 7, 300, 7), (1000, 300, 20, 20),
                                                                     (5, 100, 300, 5), (600, 1, 1, 1)])
def test_kept_rows_never_exceed_the_capacities(anchors: int, max_boxes: int, cap: int, kept: int) -> None:
    head = apart(anchors)
    made = plan(head, max_boxes=max_boxes, cap=cap)
    assert made.boxes.shape == (max_boxes, 4) and made.candidates.shape == (cap,)
    at = address(head)
    assert made.decode(at, at) == kept
    assert made.anchors[:kept].tolist() == list(range(kept))  # tied scores: the first anchors


def test_plans_are_checked_before_any_call() -> None:
    head = apart(10)
    with pytest.raises(ValueError, match="max_boxes 0 and cap 300 must be at least 1"):
        plan(head, max_boxes=0)
    with pytest.raises(ValueError, match="0 anchors"):
        plan(np.zeros((6, 0), np.float32))
    settings: dict[str, Any] = dict(
        score=Source(TYPE_F32), row_offsets=np.array([40]), class_ids=np.array([0]), anchors=10, anchor_stride=1,
        threshold=0.5, box=Source(TYPE_F32), box_format=BOXES_XYWH, box_offsets=(0, 10, 20, 30), box_anchor_stride=1,
        iou=0.5, class_aware=False, max_boxes=1, cap=1, normalise=NORMALISE_NEVER, score_elements=50, box_elements=50)
    DecodePlan(**settings)
    with pytest.raises(ValueError, match="256-entry float32 table"):
        DecodePlan(**{**settings, "score": Source(kernel.TYPE_I8)})
    with pytest.raises(ValueError, match="256-entry float32 table"):
        DecodePlan(**{**settings, "score": Source(kernel.TYPE_U8, np.zeros(512, np.float32)[::2])})
    with pytest.raises(ValueError, match="element type 7 is none the kernel reads"):
        DecodePlan(**{**settings, "box": Source(7)})
    with pytest.raises(ValueError, match="its scores reach past the 49 elements"):
        DecodePlan(**{**settings, "score_elements": 49})
    with pytest.raises(ValueError, match="its boxes reach past the 50 elements"):
        DecodePlan(**{**settings, "box_offsets": (0, 10, 20, 41)})
    with pytest.raises(ValueError, match="its boxes reach past"):
        DecodePlan(**{**settings, "objectness_offset": 41})
    with pytest.raises(ValueError, match="its scores reach past"):
        DecodePlan(**{**settings, "anchor_stride": -1})


def test_the_kernel_refuses_a_plan_whose_scratch_is_too_small() -> None:
    head = apart(100)
    made = plan(head)
    made._plan.scratch_bytes -= 8
    at = address(head)
    with pytest.raises(RuntimeError, match="refused its plan"):
        made.decode(at, at)


def test_the_plan_mirror_has_the_c_structs_size() -> None:
    library = kernel._kernels()  # checks ctypes.sizeof(Plan) against decode.c's sizeof
    assert library.nms is not None and ctypes.sizeof(kernel.Plan) % 8 == 0


def test_nms_writes_at_most_max_boxes_indices() -> None:
    count, max_boxes = 50, 5
    boxes = np.stack([np.arange(count) * 2.0, np.zeros(count), np.arange(count) * 2.0 + 1, np.ones(count)], 1)
    boxes = np.ascontiguousarray(boxes, np.float32)
    scores = np.linspace(0.1, 0.9, count, dtype=np.float32)
    kept = np.full(max_boxes + 1, -7, np.int64)  # one more than the capacity: must stay untouched
    library = kernel._kernels()
    scratch = np.zeros(library.scratch_bytes(count, count), np.uint8)
    found = library.nms(boxes.ctypes.data, scores.ctypes.data, None, count, 0.5, max_boxes, count, kept.ctypes.data,
                        scratch.ctypes.data, scratch.size)
    assert found == max_boxes and kept.tolist() == [49, 48, 47, 46, 45, -7]
    too_small = library.nms(boxes.ctypes.data, scores.ctypes.data, None, count, 0.5, max_boxes, count,
                            kept.ctypes.data, scratch.ctypes.data, scratch.size - 8)
    assert too_small < 0
