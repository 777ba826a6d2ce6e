"""Ultralytics YOLO decoders: raw heads (v5, v8, 11; combined or split, raw DFL) and end-to-end (26).

Raw heads are ``(4 + classes [+ mask coefficients], N)``: box centre/size then per-class scores
(YOLOv5 adds an objectness row after the box, and scores are ``objectness x class``). One native call
per frame (edgenode/kernels/decode.c) takes the best class score of every box, keeps the boxes reaching
the threshold (compared in the output's quantised domain), caps the candidates, orders them for NMS,
dequantises and converts only their boxes, runs the greedy NMS and writes the kept boxes, scores and
classes; raw DFL boxes (a softmax per side) and instance masks are computed in numpy for the
candidates and kept boxes only. End-to-end outputs already are final boxes
``x1, y1, x2, y2, score, class [, coefficients]``: they are only thresholded.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from edgenode.core.decoding import (
    DecodeParams,
    class_rows,
    empty,
    make_detections,
    normalise_boxes,
    normalise_mode,
    plan_input,
    raw_bound,
    raw_threshold,
)
from edgenode.core.detections import Detections
from edgenode.core.masks import instance_masks
from edgenode.core.model_config import ModelError
from edgenode.core.model_layout import (
    YOLO_E2E_SEGDET,
    YOLO_SEGDET,
    YOLO_SPLIT_E2E_DET,
    YOLO_SPLIT_E2E_SEGDET,
    YOLO_SPLIT_SEGDET,
    Binding,
    Layout,
    dfl_strides,
)
from edgenode.kernels.decode import BOXES_GIVEN, BOXES_XYWH, DecodePlan, address


class YoloDecoder:
    """YOLO v5/v8/11 raw head: combined ``detection`` or split ``boxes`` + ``scores`` (+ masks)."""

    def __init__(self, layout: Layout, params: DecodeParams) -> None:
        self.layout, self.params = layout, params
        split = layout.has("boxes")
        self._boxes = layout.get("boxes") if split else layout.get("detection")
        self._scores = layout.get("scores") if split else self._boxes
        objectness = 0 if split or layout.version != "yolov5" else 1
        first = 0 if split else 4 + objectness
        wanted = class_rows(layout.num_classes, params.classes)
        self._coefficients: Binding | None = None
        self._coefficient_rows = slice(0)
        self._protos = layout.get("protos") if layout.kind in (YOLO_SEGDET, YOLO_SPLIT_SEGDET) else None
        if self._protos is not None:
            if layout.has("mask_coefficients"):
                self._coefficients = layout.get("mask_coefficients")
                self._coefficient_rows = slice(None)
            else:
                self._coefficients = self._boxes
                start = first + layout.num_classes
                self._coefficient_rows = slice(start, start + self._protos.size("num_protos"))
        self._dfl: tuple[NDArray[np.float32], ...] | None = None
        coordinates = self._boxes.shape[0]
        if split and coordinates != 4:
            self._dfl = _dfl_grid(layout, coordinates // 4, self._boxes.size("num_boxes"))
        self._scores_in = plan_input(self._scores)
        self._boxes_in = self._scores_in if self._boxes is self._scores else plan_input(self._boxes)
        self._plan = self._make_plan(layout, params, wanted, first, objectness)

    def _make_plan(self, layout: Layout, params: DecodeParams, wanted: NDArray[np.intp] | None, first: int,
                   objectness: int) -> DecodePlan | None:
        """The native plan, or None when nothing can ever be found (no score reaches the threshold, or no
        wanted class is a class of the model)."""
        threshold = raw_bound(self._scores, params.threshold)
        objectness_threshold = raw_bound(self._boxes, params.threshold) if objectness else 0.0
        if threshold is None or objectness_threshold is None or (wanted is not None and not wanted.size):
            return None
        classes = np.arange(layout.num_classes) if wanted is None else wanted
        (row_stride, anchor_stride), (box_stride, box_anchor_stride) = self._scores_in.strides, self._boxes_in.strides
        normalise, size = normalise_mode(layout)
        return DecodePlan(
            score=self._scores_in.source, row_offsets=(classes + first) * row_stride, class_ids=classes,
            anchors=self._scores.shape[1], anchor_stride=anchor_stride, threshold=threshold,
            box=self._boxes_in.source, box_format=BOXES_XYWH if self._dfl is None else BOXES_GIVEN,
            box_offsets=(0, box_stride, 2 * box_stride, 3 * box_stride), box_anchor_stride=box_anchor_stride,
            iou=params.iou, class_aware=params.class_aware, max_boxes=params.max_boxes, cap=params.candidate_cap,
            normalise=normalise, size=size, score_elements=self._scores_in.elements,
            box_elements=self._boxes_in.elements, objectness_offset=4 * box_stride if objectness else -1,
            objectness_threshold=objectness_threshold, real_threshold=float(np.float32(params.threshold)))

    def decode(self, outputs: Sequence[np.ndarray]) -> Detections:
        plan = self._plan
        if plan is None:
            return empty(self._protos is not None)
        scores = self._scores_in.array(outputs)  # the arrays the plan reads, alive across its calls
        if self._dfl is None:
            at = address(scores)
            if self._boxes_in is self._scores_in:
                count = plan.decode(at, at)
            else:
                boxes = self._boxes_in.array(outputs)
                count = plan.decode(at, address(boxes))
        else:
            candidates = plan.candidates[:plan.candidate_anchors(address(scores))]
            corners = _dfl_boxes(self._boxes.dequantize(self._boxes.view(outputs)[:, candidates]), self._dfl,
                                 candidates)
            count = plan.decode_given(corners)
        if not count:
            return empty(self._protos is not None)
        boxes_found = plan.boxes[:count].copy()  # copies: the plan's buffers are the next frame's
        masks = None
        if self._protos is not None and self._coefficients is not None:
            coefficients = self._coefficients.view(outputs)[self._coefficient_rows][:, plan.anchors[:count]]
            real = self._coefficients.dequantize(coefficients).T
            masks = instance_masks(boxes_found, real, self._protos.view(outputs), self._protos.scale,
                                   self._protos.zero_point)
        return Detections(boxes_found, plan.scores[:count].copy(), plan.classes[:count].copy(), masks)


def _dfl_grid(layout: Layout, reg_max: int, boxes: int) -> tuple[NDArray[np.float32], ...]:
    """Anchor centres and strides (in input pixels, normalising factors) for raw DFL boxes."""
    if layout.input_size is None:
        raise ModelError("raw DFL boxes need the model input size to place their anchors")
    width, height = layout.input_size
    strides = dfl_strides(layout.input_size, boxes)
    xs, ys, ss = [], [], []
    for stride in strides:
        grid_w, grid_h = -(-width // stride), -(-height // stride)
        gy, gx = np.mgrid[0:grid_h, 0:grid_w]
        xs.append(gx.ravel() + 0.5)
        ys.append(gy.ravel() + 0.5)
        ss.append(np.full(grid_w * grid_h, stride))
    bins = np.arange(reg_max, dtype=np.float32)
    return (np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.float32),
            np.concatenate(ss).astype(np.float32), bins,
            np.array([width, height, width, height], np.float32))


def _dfl_boxes(logits: NDArray[np.float32], grid: tuple[NDArray[np.float32], ...],
               candidates: NDArray[np.intp]) -> NDArray[np.float32]:
    """Distribution-focal-loss boxes: softmax-expected distances from anchor centres, normalised."""
    anchor_x, anchor_y, strides, bins, size = grid
    distribution = logits.reshape(4, bins.size, -1)
    weights = np.exp(distribution - distribution.max(axis=1, keepdims=True))
    distance = (weights * bins[None, :, None]).sum(axis=1) / weights.sum(axis=1)  # left, top, right, bottom
    ax, ay, stride = anchor_x[candidates], anchor_y[candidates], strides[candidates]
    boxes = np.stack([(ax - distance[0]) * stride, (ay - distance[1]) * stride,
                      (ax + distance[2]) * stride, (ay + distance[3]) * stride], axis=1)
    normalised: NDArray[np.float32] = (boxes / size).astype(np.float32)
    return normalised


class EndToEndDecoder:
    """End-to-end YOLO (YOLO26, NMS-included exports): final boxes, thresholded, no NMS."""

    def __init__(self, layout: Layout, params: DecodeParams) -> None:
        self.layout, self.params = layout, params
        self._split = layout.kind in (YOLO_SPLIT_E2E_DET, YOLO_SPLIT_E2E_SEGDET)
        if self._split:
            self._boxes, self._scores = layout.get("boxes"), layout.get("scores")
            self._classes = layout.get("classes")
        else:
            self._boxes = self._scores = self._classes = layout.get("detection")
        self._threshold = raw_threshold(self._scores, params.threshold)
        self._wanted = None if params.classes is None else np.array(sorted(set(params.classes)), np.int64)
        segmenting = layout.kind in (YOLO_E2E_SEGDET, YOLO_SPLIT_E2E_SEGDET)
        self._protos = layout.get("protos") if segmenting else None
        self._coefficients = (layout.get("mask_coefficients") if layout.has("mask_coefficients")
                              else self._boxes) if segmenting else None
        self._coefficient_columns = slice(None) if layout.has("mask_coefficients") else slice(6, None)

    def decode(self, outputs: Sequence[np.ndarray]) -> Detections:
        segmenting = self._protos is not None
        if self._threshold is None:
            return empty(segmenting)
        if self._split:
            raw_scores = self._scores.view(outputs)
            raw_classes = self._classes.view(outputs)
        else:
            rows = self._boxes.view(outputs)
            raw_scores, raw_classes = rows[:, 4], rows[:, 5]
        candidates = np.flatnonzero(raw_scores >= self._threshold)
        classes = np.rint(self._classes.dequantize(raw_classes[candidates])).astype(np.int64)
        if self._wanted is not None:
            wanted = np.isin(classes, self._wanted)
            candidates, classes = candidates[wanted], classes[wanted]
        if not candidates.size:
            return empty(segmenting)
        order = np.argsort(-self._scores.dequantize(raw_scores[candidates]), kind="stable")[: self.params.max_boxes]
        candidates, classes = candidates[order], classes[order]
        scores = self._scores.dequantize(raw_scores[candidates])
        boxes = normalise_boxes(self._boxes.dequantize(self._boxes.view(outputs)[candidates, :4]), self.layout)
        masks = None
        if self._protos is not None and self._coefficients is not None:
            coefficients = self._coefficients.view(outputs)[candidates][:, self._coefficient_columns]
            masks = instance_masks(boxes, self._coefficients.dequantize(coefficients), self._protos.view(outputs),
                                   self._protos.scale, self._protos.zero_point)
        return make_detections(boxes, scores, classes, masks)
