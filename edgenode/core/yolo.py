"""Ultralytics YOLO decoders: raw heads (v5, v8, 11; combined or split, raw DFL) and end-to-end (26).

Raw heads are ``(4 + classes [+ mask coefficients], N)``: box centre/size then per-class scores
(YOLOv5 adds an objectness row after the box, and scores are ``objectness x class``). The decode
takes the best class score per box with one vectorised max, keeps boxes reaching the threshold
(compared in the output's quantised domain), caps the candidates, and only then dequantises,
finds classes, converts boxes and runs NMS. End-to-end outputs already are final boxes
``x1, y1, x2, y2, score, class [, coefficients]``: they are only thresholded.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from edgenode.core.decoding import (
    XYWH_TO_XYXY,
    DecodeParams,
    class_rows,
    empty,
    make_detections,
    normalise_boxes,
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
from edgenode.core.nms import descending, nms_sorted, top_candidates


class YoloDecoder:
    """YOLO v5/v8/11 raw head: combined ``detection`` or split ``boxes`` + ``scores`` (+ masks)."""

    def __init__(self, layout: Layout, params: DecodeParams) -> None:
        self.layout, self.params = layout, params
        split = layout.has("boxes")
        self._boxes = layout.get("boxes") if split else layout.get("detection")
        self._scores = layout.get("scores") if split else self._boxes
        objectness = 0 if split or layout.version != "yolov5" else 1
        self._objectness_row = 4 if objectness else None
        first = 0 if split else 4 + objectness
        wanted = class_rows(layout.num_classes, params.classes)
        self._class_ids = wanted
        self._rows: slice | NDArray[np.intp] = (slice(first, first + layout.num_classes) if wanted is None
                                                else wanted + first)
        self._threshold = raw_threshold(self._scores, params.threshold)
        self._objectness_threshold = raw_threshold(self._boxes, params.threshold) if objectness else None
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

    def decode(self, outputs: Sequence[np.ndarray]) -> Detections:
        params = self.params
        segmenting = self._protos is not None
        if self._threshold is None or (self._class_ids is not None and not self._class_ids.size):
            return empty(segmenting)
        scores_view = self._scores.view(outputs)
        block = scores_view[self._rows]
        boxes_view = scores_view if self._boxes is self._scores else self._boxes.view(outputs)
        local: NDArray[np.intp] | None = None
        scores: NDArray[np.float32] | None = None
        if self._objectness_row is not None:
            found = self._objectness_candidates(outputs, block)
            if found is None:
                return empty(segmenting)
            candidates, raw_scores, scores, local = found
        else:
            rows = block.shape[0]
            best = block[0] if rows == 1 else np.maximum(block[0], block[1]) if rows == 2 else block.max(axis=0)
            candidates = (best >= self._threshold).nonzero()[0]
            if not candidates.size:
                return empty(segmenting)
            raw_scores = best.take(candidates)
            if candidates.size > params.candidate_cap:
                candidates = top_candidates(candidates, raw_scores, params.candidate_cap)
                raw_scores = best.take(candidates)
            if params.class_aware:
                local = _best_class(block, candidates)
        # Candidates in NMS order from here on (descending score, ties in anchor order): the
        # greedy pass then reads them in place, and its positions index every candidate array.
        order = descending(raw_scores)
        candidates, raw_scores = candidates.take(order), raw_scores.take(order)
        if scores is not None:
            scores = scores.take(order)
        if local is not None:
            local = local.take(order)
        nms_classes = None
        if params.class_aware and local is not None:
            nms_classes = local if self._class_ids is None else self._class_ids[local]
        if self._dfl is None:
            # Corner rows, then signed rows x1, y1, -x2, -y2 for the NMS, in one product.
            corners = _XYWH_TO_CORNERS_AND_SIGNED.dot(self._boxes.dequantize(boxes_view[:4].take(candidates, axis=1)))
            keep = nms_sorted(corners[4:], params.iou, params.max_boxes, nms_classes)
            boxes = corners[:4].T[keep]
        else:
            boxes = _dfl_boxes(self._boxes.dequantize(boxes_view[:, candidates]), self._dfl, candidates)
            keep = nms_sorted(_signed(boxes), params.iou, params.max_boxes, nms_classes)
            boxes = boxes[keep]
        boxes = normalise_boxes(boxes, self.layout)
        # Classes and real scores are only needed for the kept boxes (unless already known).
        kept_local = _best_class(block, candidates.take(keep)) if local is None else local.take(keep)
        kept_classes = kept_local if self._class_ids is None else self._class_ids.take(kept_local)
        kept_scores = self._scores.dequantize(raw_scores.take(keep)) if scores is None else scores.take(keep)
        masks = None
        if self._protos is not None and self._coefficients is not None:
            coefficients = self._coefficients.view(outputs)[self._coefficient_rows][:, candidates[keep]]
            real = self._coefficients.dequantize(coefficients).T
            masks = instance_masks(boxes, real, self._protos.view(outputs), self._protos.scale,
                                   self._protos.zero_point)
        return make_detections(boxes, kept_scores, kept_classes, masks)

    def _objectness_candidates(self, outputs: Sequence[np.ndarray], block: np.ndarray
                               ) -> tuple[NDArray[np.intp], np.ndarray, NDArray[np.float32], NDArray[np.intp]] | None:
        """YOLOv5: score = objectness x class; objectness alone must reach the threshold first."""
        objectness = self._boxes.view(outputs)[self._objectness_row]
        if self._objectness_threshold is None:
            return None
        candidates = np.flatnonzero(objectness >= self._objectness_threshold)
        if not candidates.size:
            return None
        real = self._scores.dequantize(block[:, candidates]) * self._boxes.dequantize(objectness[candidates])
        best = real.max(axis=0)
        passing = best >= np.float32(self.params.threshold)
        candidates, real, best = candidates[passing], real[:, passing], best[passing]
        if not candidates.size:
            return None
        chosen = top_candidates(np.arange(candidates.size), best, self.params.candidate_cap)
        candidates, real, best = candidates[chosen], real[:, chosen], best[chosen]
        return candidates, best, best, real.argmax(axis=0)



# (4, K) x, y, w, h -> rows x1, y1, x2, y2, then x1, y1, -x2, -y2 (each one rounding, as xywh_to_xyxy).
_XYWH_TO_CORNERS_AND_SIGNED = np.vstack((XYWH_TO_XYXY, XYWH_TO_XYXY * np.array([[1], [1], [-1], [-1]], np.float32)))


def _signed(boxes: NDArray[np.float32]) -> NDArray[np.float32]:
    """(K, 4) x1, y1, x2, y2 -> (4, K) float32 signed rows x1, y1, -x2, -y2."""
    signed: NDArray[np.float32] = boxes.T.astype(np.float32)
    np.negative(signed[2:], out=signed[2:])
    return signed


def _best_class(block: np.ndarray, candidates: NDArray[np.intp]) -> NDArray[np.intp]:
    """Row of the best class score of each candidate column of ``block`` (the first on ties)."""
    if block.shape[0] == 1:
        return np.zeros(candidates.size, np.intp)
    best: NDArray[np.intp] = block.take(candidates, axis=1).argmax(axis=0)
    return best


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
