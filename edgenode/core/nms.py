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
    order = descending(scores)
    if iou >= 1.0 or order.size <= 1:
        return order[:max_boxes]
    signed = boxes.T.take(order, axis=1).astype(np.float32, copy=False)
    np.negative(signed[2:], out=signed[2:])
    return order[_greedy(signed, iou, max_boxes, None if classes is None else classes[order])]


def nms_signed(signed: NDArray[np.float32], scores: np.ndarray, iou: float, max_boxes: int,
               classes: np.ndarray | None = None) -> NDArray[np.intp]:
    """:func:`nms` of boxes given as ``(4, K)`` float32 signed rows x1, y1, -x2, -y2."""
    order = descending(scores)
    if iou >= 1.0 or order.size <= 1:
        return order[:max_boxes]
    return order[_greedy(signed.take(order, axis=1), iou, max_boxes, None if classes is None else classes[order])]


def nms_sorted(signed: NDArray[np.float32], iou: float, max_boxes: int,
               classes: np.ndarray | None = None) -> NDArray[np.intp]:
    """:func:`nms_signed` of candidates already in :func:`descending` score order: kept positions, best first."""
    count = signed.shape[1]
    if iou >= 1.0 or count <= 1:
        return np.arange(min(count, max_boxes), dtype=np.intp)
    return np.array(_greedy(signed, iou, max_boxes, classes), np.intp)



def _greedy(signed: NDArray[np.float32], iou: float, max_boxes: int, labels: np.ndarray | None) -> list[int]:
    """Positions kept by greedy NMS over candidates already in score order, as signed rows.

    With the signs both ends of an overlap are one maximum: ``max(x1) + max(-x2)`` is
    ``-(min(x2) - max(x1))`` exactly, and the sides are ``-(x2 - x1)`` exactly.
    """
    count = signed.shape[1]
    sides = signed[:2] + signed[2:]  # minus the widths and heights
    areas = sides[0] * sides[1]
    threshold = np.float32(iou)
    if count <= BLOCK:
        # One block: visit only the candidates still alive, lowest first. The rows' bytes (0 or 1
        # each) are read as Python ints, whose byte j stands for candidate j.
        raw = _overlaps(signed, areas, threshold, labels, rows=slice(None), first=0).tobytes()
        kept: list[int] = []
        alive = (1 << 8 * count) // 255  # byte j = 1 for every candidate
        while alive:
            lowest = alive & -alive
            candidate = lowest.bit_length() >> 3
            kept.append(candidate)
            if len(kept) == max_boxes:
                break
            alive &= ~(int.from_bytes(raw[candidate * count:(candidate + 1) * count], "little") | lowest)
        return kept
    suppressed = 0  # bit j set: candidate j is suppressed
    kept = []
    start = 0
    while start < count and len(kept) < max_boxes:
        # The next BLOCK candidates still alive, against the candidates from the first of them on.
        flags = np.unpackbits(np.frombuffer(suppressed.to_bytes(count // 8 + 1, "little"), np.uint8),
                              count=count, bitorder="little")
        rows = (flags[start:] == 0).nonzero()[0][:BLOCK]
        if not rows.size:
            break
        rows += start
        block = rows.tolist()
        first = block[0]
        over = _overlaps(signed, areas, threshold, labels, rows=rows, first=first)
        packed = np.packbits(over, axis=1, bitorder="little")
        row_bytes = packed.shape[1]
        raw = packed.tobytes()
        for position, candidate in enumerate(block):
            if (suppressed >> candidate) & 1:
                continue
            kept.append(candidate)
            suppressed |= int.from_bytes(raw[position * row_bytes:(position + 1) * row_bytes], "little") << first
            if len(kept) == max_boxes:
                break
        start = block[-1] + 1
    return kept


def _overlaps(signed: NDArray[np.float32], areas: NDArray[np.float32], threshold: np.float32,
              labels: np.ndarray | None, *, rows: slice | NDArray[np.intp], first: int) -> NDArray[np.bool_]:
    """Whether candidate ``rows`` suppress candidates ``first`` on: ``intersection > iou * union``."""
    columns = signed[:, first:]
    bounds = np.maximum(signed[:, rows, None], columns[:, None, :])
    overlap = bounds[:2] + bounds[2:]  # minus the overlap widths and heights
    np.minimum(overlap, _ZERO, out=overlap)
    inter = overlap[0] * overlap[1]
    union = areas[rows, None] + areas[first:]
    union -= inter
    union *= threshold
    over: NDArray[np.bool_] = inter > union
    if labels is not None:
        over &= np.equal.outer(labels[rows], labels[first:])
    return over


_ZERO = np.zeros((), np.float32)


def descending(scores: np.ndarray) -> NDArray[np.intp]:
    """Indices by descending score, ties in input order (scores compared as float32)."""
    if scores.dtype in _SMALL_INTEGERS:
        # ~x = -x - 1 reverses the order of any integer type without overflow; these types are
        # exact in float32, so the order is the float32 one.
        order: NDArray[np.intp] = (~scores).argsort(kind="stable")
        return order
    real = scores if scores.dtype == np.float32 else scores.astype(np.float32)
    order = (-real).argsort(kind="stable")
    return order


_SMALL_INTEGERS = tuple(np.dtype(kind) for kind in (np.int8, np.uint8, np.int16, np.uint16))
