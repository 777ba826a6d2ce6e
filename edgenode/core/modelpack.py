"""ModelPack decoders: decoded boxes + scores (also SSD-style exports), anchor-grid split heads
(also raw YOLOv5 heads), semantic segmentation, and segmentation with detection.

Anchor-grid heads are ``(H, W, anchors x (5 + classes))`` logits; after a sigmoid,
``x = (2p + gx - 0.5) / W`` (y likewise), ``w = 4p^2 * anchor_w`` (h likewise), and the score is
``objectness x class`` (ModelPack: objectness alone for one class). Objectness must reach the
threshold on its own, so only cells passing that test (compared as a logit in the output's
quantised domain) are decoded.
"""

from __future__ import annotations

import math
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
    xywh_to_xyxy,
)
from edgenode.core.detections import Detections
from edgenode.core.masks import semantic_mask
from edgenode.core.model_layout import MODELPACK_SEG, Binding, Layout
from edgenode.core.nms import nms
from edgenode.kernels.decode import BOXES_XYXY, DecodePlan, address


class ModelPackDecoder:
    """Decoded ``boxes`` ``[1,N,1,4]`` (x1, y1, x2, y2) + ``scores`` ``[1,N,C]``, and/or a semantic map.

    The detection part is one native call per frame (edgenode/kernels/decode.c), as for YOLO heads."""

    def __init__(self, layout: Layout, params: DecodeParams) -> None:
        self.layout, self.params = layout, params
        self._segmentation = layout.get("segmentation") if layout.has("segmentation") else None
        self._plan: DecodePlan | None = None
        if layout.kind == MODELPACK_SEG:
            return
        boxes, scores = layout.get("boxes"), layout.get("scores")
        self._boxes_in, self._scores_in = plan_input(boxes), plan_input(scores)
        wanted = class_rows(layout.num_classes, params.classes)
        classes = np.arange(layout.num_classes) if wanted is None else wanted
        threshold = raw_bound(scores, params.threshold)
        if threshold is None or not classes.size:
            return
        (anchor_stride, class_stride), (box_anchor_stride, box_stride) = self._scores_in.strides, self._boxes_in.strides
        normalise, size = normalise_mode(layout)
        self._plan = DecodePlan(
            score=self._scores_in.source, row_offsets=classes * class_stride, class_ids=classes,
            anchors=scores.shape[0], anchor_stride=anchor_stride, threshold=threshold, box=self._boxes_in.source,
            box_format=BOXES_XYXY, box_offsets=(0, box_stride, 2 * box_stride, 3 * box_stride),
            box_anchor_stride=box_anchor_stride, iou=params.iou, class_aware=params.class_aware,
            max_boxes=params.max_boxes, cap=params.candidate_cap, normalise=normalise, size=size,
            score_elements=self._scores_in.elements, box_elements=self._boxes_in.elements)

    def decode(self, outputs: Sequence[np.ndarray]) -> Detections:
        semantic = None if self._segmentation is None else semantic_mask(self._segmentation.view(outputs))
        plan = self._plan
        if plan is None:
            return empty(semantic=semantic)
        scores, boxes = self._scores_in.array(outputs), self._boxes_in.array(outputs)  # alive across the call
        count = plan.decode(address(scores), address(boxes))
        if not count:
            return empty(semantic=semantic)
        return Detections(plan.boxes[:count].copy(), plan.scores[:count].copy(), plan.classes[:count].copy(), None,
                          semantic)


class AnchorGridDecoder:
    """Split detection heads with anchors (ModelPack, raw YOLOv5), optionally with a semantic map."""

    def __init__(self, layout: Layout, params: DecodeParams) -> None:
        self.layout, self.params = layout, params
        self._levels = layout.all("detection")
        self._segmentation = layout.get("segmentation") if layout.has("segmentation") else None
        self._class_ids = class_rows(layout.num_classes, params.classes)
        self._objectness_only = layout.version == "modelpack" and layout.num_classes == 1
        threshold = params.threshold
        logit = -math.inf if threshold <= 0 else math.inf if threshold >= 1 else math.log(threshold / (1 - threshold))
        self._objectness_thresholds = [_logit_threshold(level, logit) for level in self._levels]

    def decode(self, outputs: Sequence[np.ndarray]) -> Detections:
        semantic = None if self._segmentation is None else semantic_mask(self._segmentation.view(outputs))
        if self._class_ids is not None and not self._class_ids.size:
            return empty(semantic=semantic)
        found = []
        for level, threshold in zip(self._levels, self._objectness_thresholds, strict=True):
            level_found = self._level_candidates(level, threshold, outputs)
            if level_found is not None:
                found.append(level_found)
        if not found:
            return empty(semantic=semantic)
        boxes = np.concatenate([f[0] for f in found])
        scores = np.concatenate([f[1] for f in found])
        classes = np.concatenate([f[2] for f in found])
        keep = nms(boxes, scores, self.params.iou, self.params.max_boxes,
                   classes if self.params.class_aware else None, cap=self.params.candidate_cap)
        return make_detections(normalise_boxes(boxes[keep], self.layout), scores[keep], classes[keep], None,
                               semantic)

    def _level_candidates(self, level: Binding, objectness_threshold: np.generic | None,
                          outputs: Sequence[np.ndarray]
                          ) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.intp]] | None:
        if objectness_threshold is None:
            return None
        grid_h, grid_w, channels = level.shape
        anchors = np.asarray(level.anchors, np.float32)
        per_anchor = channels // len(anchors)
        cells = level.view(outputs).reshape(grid_h * grid_w * len(anchors), per_anchor)
        candidates = np.flatnonzero(cells[:, 4] >= objectness_threshold)
        if not candidates.size:
            return None
        values = _sigmoid(level.dequantize(cells[candidates]))
        objectness = values[:, 4:5]
        class_scores = objectness if self._objectness_only else values[:, 5:] * objectness
        if self._class_ids is not None:
            class_scores = class_scores[:, self._class_ids] if not self._objectness_only else class_scores
        best = class_scores.max(axis=1)
        passing = best >= np.float32(self.params.threshold)
        if not passing.any():
            return None
        candidates, values, class_scores, best = (candidates[passing], values[passing], class_scores[passing],
                                                  best[passing])
        local = class_scores.argmax(axis=1)
        classes = local if self._class_ids is None or self._objectness_only else self._class_ids[local]
        cell, anchor = np.divmod(candidates, len(anchors))
        grid_y, grid_x = np.divmod(cell, grid_w)
        xywh = np.stack([(values[:, 0] * 2 + grid_x - np.float32(0.5)) / np.float32(grid_w),
                         (values[:, 1] * 2 + grid_y - np.float32(0.5)) / np.float32(grid_h),
                         values[:, 2] * values[:, 2] * 4 * anchors[anchor, 0],
                         values[:, 3] * values[:, 3] * 4 * anchors[anchor, 1]]).astype(np.float32)
        return xywh_to_xyxy(xywh), best.astype(np.float32), classes


def _logit_threshold(level: Binding, logit: float) -> np.generic | None:
    """The objectness logit bound in the level's raw domain (a real-valued logit for float outputs)."""
    if logit == math.inf:
        return None
    if logit == -math.inf:
        lowest: np.generic = np.dtype(level.spec.dtype).type(np.iinfo(level.spec.dtype).min if level.quantized
                                                              else -np.inf)
        return lowest
    return raw_threshold(level, logit)


def _sigmoid(values: NDArray[np.float32]) -> NDArray[np.float32]:
    with np.errstate(over="ignore"):
        result: NDArray[np.float32] = np.float32(1.0) / (np.float32(1.0) + np.exp(-values))
    return result
