"""Non-maximum suppression: exact greedy NMS, vectorised, with bounded work.

Greedy NMS visits boxes by descending score (ties keep their input order) and drops every later
box whose overlap with a kept one is above the threshold: ``intersection > iou * union``, in
float32, as EdgeFirst HAL does, so results match it box for box. Class-aware NMS only drops boxes
of the kept box's class. An ``iou`` of 1 or more suppresses nothing.

Work is bounded: callers pre-filter by score and cap the candidates (:func:`top_candidates`);
small candidate sets use one overlap matrix, larger ones suppress row by row, and both stop once
``max_boxes`` boxes are kept.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

MATRIX_LIMIT = 96  # up to this many candidates, one K x K overlap matrix is cheaper than row by row


def top_candidates(indices: NDArray[np.intp], scores: np.ndarray, cap: int) -> NDArray[np.intp]:
    """The ``cap`` highest-scoring of ``indices`` (``scores`` aligned with them), in input order."""
    if indices.size <= cap:
        return indices
    chosen = np.argpartition(scores, indices.size - cap)[indices.size - cap:]
    chosen.sort()
    return indices[chosen]


def nms(boxes: NDArray[np.float32], scores: np.ndarray, iou: float, max_boxes: int,
        classes: np.ndarray | None = None) -> NDArray[np.intp]:
    """Indices of the boxes greedy NMS keeps, best first, at most ``max_boxes``.

    ``boxes`` are ``(K, 4)`` x1, y1, x2, y2; ``scores`` may be raw quantised values (only their
    order matters); ``classes`` makes it class-aware.
    """
    order: NDArray[np.intp] = np.argsort(-scores.astype(np.float32), kind="stable")
    if iou >= 1.0 or order.size <= 1:
        return order[:max_boxes]
    ordered = np.ascontiguousarray(boxes[order], dtype=np.float32)
    labels = None if classes is None else classes[order]
    if order.size <= MATRIX_LIMIT:
        kept = _greedy_matrix(ordered, np.float32(iou), max_boxes, labels)
    else:
        kept = _greedy_rows(ordered, np.float32(iou), max_boxes, labels)
    return order[kept]


def _greedy_matrix(boxes: NDArray[np.float32], iou: np.float32, max_boxes: int,
                   labels: np.ndarray | None) -> NDArray[np.intp]:
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    width = np.minimum(x2[:, None], x2[None, :]) - np.maximum(x1[:, None], x1[None, :])
    height = np.minimum(y2[:, None], y2[None, :]) - np.maximum(y1[:, None], y1[None, :])
    inter = np.maximum(width, 0) * np.maximum(height, 0)
    overlap = inter > iou * (areas[:, None] + areas[None, :] - inter)
    if labels is not None:
        overlap &= labels[:, None] == labels[None, :]
    overlap = np.triu(overlap, 1)
    count = len(boxes)
    suppressed = np.zeros(count, np.bool_)
    kept: list[int] = []
    current = 0
    while len(kept) < max_boxes:
        kept.append(current)
        suppressed |= overlap[current]
        following = np.flatnonzero(~suppressed[current + 1:])
        if not following.size:
            break
        current += 1 + int(following[0])
    return np.asarray(kept, np.intp)


def _greedy_rows(boxes: NDArray[np.float32], iou: np.float32, max_boxes: int,
                 labels: np.ndarray | None) -> NDArray[np.intp]:
    x1, y1, x2, y2 = (np.ascontiguousarray(column) for column in boxes.T)
    areas = (x2 - x1) * (y2 - y1)
    remaining = np.arange(len(boxes))
    kept: list[int] = []
    while remaining.size and len(kept) < max_boxes:
        best, rest = remaining[0], remaining[1:]
        kept.append(int(best))
        width = np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest])
        height = np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest])
        inter = np.maximum(width, 0) * np.maximum(height, 0)
        suppress = inter > iou * (areas[best] + areas[rest] - inter)
        if labels is not None:
            suppress &= labels[rest] == labels[best]
        remaining = rest[~suppress]
    return np.asarray(kept, np.intp)
