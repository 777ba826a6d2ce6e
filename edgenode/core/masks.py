"""Segmentation masks: YOLO instance masks (coefficients x prototypes) and ModelPack semantic maps.

Instance masks follow EdgeFirst 2.8's ``Model.masks``: for each box, the box's region of the
prototype grid (x from ``floor(x1 * W)`` to ``ceil(x2 * W)``, likewise y, clamped to the grid)
holds ``round(sigmoid(coefficients . prototypes) * 255)``. Quantised prototypes are only
dequantised through the dot product (``scale * (q . c - zero_point * sum(c))``), per box region.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def proto_region(box: NDArray[np.float32], height: int, width: int) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)`` of a normalised x1, y1, x2, y2 box on a ``height`` x ``width`` grid."""
    x0 = min(max(int(np.floor(box[0] * width)), 0), width)
    y0 = min(max(int(np.floor(box[1] * height)), 0), height)
    x1 = min(max(int(np.ceil(box[2] * width)), x0), width)
    y1 = min(max(int(np.ceil(box[3] * height)), y0), height)
    return y0, y1, x0, x1


def instance_masks(boxes: NDArray[np.float32], coefficients: NDArray[np.float32], protos: np.ndarray,
                   scale: float = 0.0, zero_point: int = 0) -> tuple[NDArray[np.uint8], ...]:
    """One uint8 mask per box over its prototype region.

    ``boxes`` ``(K, 4)`` normalised; ``coefficients`` ``(K, P)`` real values; ``protos``
    ``(H, W, P)`` raw output values, quantised with ``scale``/``zero_point`` when ``scale`` != 0.
    """
    height, width = protos.shape[0], protos.shape[1]
    masks: list[NDArray[np.uint8]] = []
    for box, coef in zip(boxes, coefficients.astype(np.float32, copy=False), strict=True):
        y0, y1, x0, x1 = proto_region(box, height, width)
        region = protos[y0:y1, x0:x1]
        logits = region.astype(np.float32) @ coef
        if scale:
            logits = (logits - np.float32(zero_point) * coef.sum(dtype=np.float32)) * np.float32(scale)
        masks.append(sigmoid_255(logits))
    return tuple(masks)


def sigmoid_255(logits: NDArray[np.float32]) -> NDArray[np.uint8]:
    """``round(sigmoid(x) * 255)`` as uint8 (halves round up, as Rust's ``f32::round`` for positives)."""
    with np.errstate(over="ignore"):
        values = np.float32(255.0) / (np.float32(1.0) + np.exp(-logits, dtype=np.float32))
    rounded: NDArray[np.uint8] = np.floor(values + np.float32(0.5)).astype(np.uint8)
    return rounded


def semantic_mask(scores: np.ndarray) -> NDArray[np.uint8]:
    """A ``(H, W, C)`` class-score map as uint8, as the EdgeFirst node publishes it.

    int8 ``x + 128``; uint8 as is; int16 ``(x + 32768) >> 8``; float min-max scaled to 0..255
    (all zero when flat). Always a new contiguous array: the runtime's buffer is reused.
    """
    kind = scores.dtype
    result: NDArray[np.uint8]
    if kind == np.int8:
        result = np.ascontiguousarray(scores).view(np.uint8) ^ np.uint8(0x80)
    elif kind == np.uint8:
        result = np.array(scores, np.uint8, order="C", copy=True)
    elif kind == np.int16:
        result = ((scores.astype(np.int32) + 32768) >> 8).astype(np.uint8)
    elif kind == np.uint16:
        result = (scores >> 8).astype(np.uint8)
    else:
        real = scores.astype(np.float32)
        low, high = float(real.min()), float(real.max())
        if high <= low:
            return np.zeros(real.shape, np.uint8)
        scaled = (real - np.float32(low)) * np.float32(255.0 / (high - low))
        result = np.floor(scaled + np.float32(0.5)).astype(np.uint8)
    return result
