"""Non-maximum suppression: exact greedy NMS, native (edgenode/kernels/decode.c), with bounded work.

Greedy NMS visits boxes by descending score (ties keep their input order) and drops every later
box whose overlap with a kept one is above the threshold: ``intersection > iou * union``, in
float32, as EdgeFirst HAL does, so results match it box for box. Class-aware NMS only drops boxes
of the kept box's class. An ``iou`` of 1 or more suppresses nothing.

Work is bounded: callers pre-filter by score, and ``cap`` keeps only the first boxes of that order
(the candidates entering NMS, HAL's ``pre_nms_top_k``). The YOLO and ModelPack decoders run the same
NMS inside their one native call per frame; this is the entry for boxes computed in numpy.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from edgenode.kernels import decode as kernels


def nms(boxes: NDArray[np.float32], scores: np.ndarray, iou: float, max_boxes: int,
        classes: np.ndarray | None = None, *, cap: int | None = None) -> NDArray[np.intp]:
    """Indices of the boxes greedy NMS keeps, best first, at most ``max_boxes``.

    ``boxes`` are ``(K, 4)`` x1, y1, x2, y2; ``scores`` may be raw quantised values (only their order
    matters; they are compared as float32, NaN last); ``classes`` makes it class-aware; ``cap`` keeps
    only the ``cap`` best boxes (ties: the first).
    """
    real = np.asarray(scores).astype(np.float32, copy=False)
    labels = None if classes is None else np.unique(np.asarray(classes), return_inverse=True)[1].astype(np.int32)
    return kernels.nms(np.asarray(boxes, np.float32), real, iou, max_boxes, labels, cap=cap)
