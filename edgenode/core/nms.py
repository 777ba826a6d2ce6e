"""Non-maximum suppression: exact greedy NMS, vectorised, with bounded work.

Greedy NMS visits boxes by descending score (ties keep their input order) and drops every later
box whose overlap with a kept one is above the threshold: ``intersection > iou * union``, in
float32, as EdgeFirst HAL does, so results match it box for box. Class-aware NMS only drops boxes
of the kept box's class. An ``iou`` of 1 or more suppresses nothing.

Work is bounded: callers pre-filter by score and cap the candidates (:func:`top_candidates`).
Overlaps are computed with numpy for blocks of still-alive candidates against all candidates,
so only rows of boxes that may be kept are paid for; the greedy pass itself walks those rows as
bitsets, and stops once ``max_boxes`` boxes are kept.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

BLOCK = 64  # candidates whose overlap rows are computed together


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
    order: NDArray[np.intp] = np.argsort(-(scores if scores.dtype == np.float32 else scores.astype(np.float32)),
                                         kind="stable")
    count = order.size
    if iou >= 1.0 or count <= 1:
        return order[:max_boxes]
    x1, y1, x2, y2 = boxes[order].astype(np.float32, copy=False).T
    areas = (x2 - x1) * (y2 - y1)
    labels = None if classes is None else classes[order]
    threshold = np.float32(iou)
    suppressed = 0  # bit j set: candidate j (in score order) is suppressed
    kept: list[int] = []
    start = 0
    rows: slice | NDArray[np.intp]
    while start < count and len(kept) < max_boxes:
        if count <= BLOCK:
            block, rows = list(range(count)), slice(None)
        else:
            block = [j for j in range(start, count) if not (suppressed >> j) & 1][:BLOCK]
            rows = np.asarray(block, np.intp)
        if not block:
            break
        width = np.minimum.outer(x2[rows], x2)
        width -= np.maximum.outer(x1[rows], x1)
        np.maximum(width, 0, out=width)
        height = np.minimum.outer(y2[rows], y2)
        height -= np.maximum.outer(y1[rows], y1)
        np.maximum(height, 0, out=height)
        width *= height  # intersection
        union = np.add.outer(areas[rows], areas)
        union -= width
        union *= threshold
        overlap = width > union
        if labels is not None:
            overlap &= np.equal.outer(labels[rows], labels)
        packed = np.packbits(overlap, axis=1, bitorder="little")
        row_bytes = packed.shape[1]
        raw = packed.tobytes()
        for position, candidate in enumerate(block):
            if (suppressed >> candidate) & 1:
                continue
            kept.append(candidate)
            suppressed |= int.from_bytes(raw[position * row_bytes:(position + 1) * row_bytes], "little")
            if len(kept) == max_boxes:
                break
        start = block[-1] + 1
    return order[kept]
