"""What every decoder shares: its settings, its interface and the score/box arithmetic.

Scores are thresholded in the output's own number domain (a quantised threshold for int8/uint8
outputs), so a frame's tensor is never dequantised as a whole: only candidates are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from edgenode.core.detections import Detections
from edgenode.core.model_layout import Binding, Layout

CANDIDATE_CAP = 300  # most candidates entering NMS (EdgeFirst HAL's pre_nms_top_k)
PIXEL_COORDINATE = 2.0  # a box coordinate above this is in input pixels, not normalised (HAL's check)


@dataclass(frozen=True)
class DecodeParams:
    """Resolved decoding settings.

    ``classes`` keeps only those class indices (``None``: all); it applies before NMS, so a
    filtered-out class never suppresses a wanted one. ``candidate_cap`` bounds the boxes entering
    NMS, highest scores first.
    """

    threshold: float = 0.45
    iou: float = 0.45
    max_boxes: int = 100
    class_aware: bool = False
    classes: tuple[int, ...] | None = None
    candidate_cap: int = CANDIDATE_CAP


class Decoder(Protocol):
    """Turns one frame's model outputs (runtime order, batch axis included) into detections.

    Decoders keep no reference to the outputs they were given, so the runtime may reuse its
    buffers as soon as ``decode`` returns. They are not thread-safe; use one per thread.
    """

    layout: Layout
    params: DecodeParams

    def decode(self, outputs: Sequence[np.ndarray]) -> Detections: ...


def raw_threshold(binding: Binding, threshold: float) -> np.generic | None:
    """``threshold`` in the output's raw domain: ``raw >= result`` iff the real score ``>= threshold``.

    A scalar of the output's own type, so the comparison runs in that type. For quantised outputs
    it is the smallest integer whose value reaches the threshold (HAL's ``ceil``), clamped to the
    type's range; ``None`` when no value of the type can reach it.
    """
    kind = np.dtype(binding.spec.dtype)
    if not binding.quantized or kind.kind == "f":
        real = threshold if not binding.quantized else threshold / binding.scale + binding.zero_point
        value: np.generic = np.float32(real) if kind.kind != "f" else kind.type(real)
        return value
    info = np.iinfo(kind)
    raw = math.ceil(threshold / binding.scale + binding.zero_point) if binding.scale > 0 else info.min
    if raw > info.max:
        return None
    bound: np.generic = kind.type(max(raw, info.min))
    return bound


XYWH_TO_XYXY = np.array([[1, 0, -0.5, 0], [0, 1, 0, -0.5], [1, 0, 0.5, 0], [0, 1, 0, 0.5]], np.float32)


def xywh_to_xyxy(xywh: NDArray[np.float32]) -> NDArray[np.float32]:
    """``(4, K)`` centre x, y, width, height to ``(K, 4)`` x1, y1, x2, y2 (one matrix product)."""
    xyxy: NDArray[np.float32] = XYWH_TO_XYXY.dot(xywh).T  # ndarray.dot: the same BLAS product as @, called faster
    return xyxy


def normalise_boxes(boxes: NDArray[np.float32], layout: Layout) -> NDArray[np.float32]:
    """Boxes normalised to the input: pixel boxes (config ``normalized: false``, or unknown and
    with a coordinate above :data:`PIXEL_COORDINATE`) are divided by the input size (width, height)."""
    if layout.input_size is None or not boxes.size or layout.normalized is True:
        return boxes
    if layout.normalized is None and float(np.maximum.reduce(boxes, axis=None)) <= PIXEL_COORDINATE:
        return boxes
    width, height = layout.input_size
    scaled: NDArray[np.float32] = (boxes / np.array([width, height, width, height], np.float32)).astype(np.float32)
    return scaled


def class_rows(num_classes: int, wanted: tuple[int, ...] | None) -> NDArray[np.intp] | None:
    """Class indices to score (``None``: all ``num_classes``)."""
    if wanted is None:
        return None
    return np.array(sorted(c for c in set(wanted) if 0 <= c < num_classes), np.intp)


def make_detections(boxes: NDArray[np.float32], scores: NDArray[np.float32], classes: np.ndarray,
                    masks: tuple[NDArray[np.uint8], ...] | None = None,
                    semantic: NDArray[np.uint8] | None = None) -> Detections:
    """:class:`Detections` with the contract's dtypes."""
    return Detections(np.ascontiguousarray(boxes, np.float32), np.ascontiguousarray(scores, np.float32),
                      np.ascontiguousarray(classes, np.int32), masks, semantic)


def empty(instance_masks: bool = False, semantic: NDArray[np.uint8] | None = None) -> Detections:
    """No boxes (with an empty mask tuple for instance segmentation models)."""
    return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32),
                      () if instance_masks else None, semantic)
