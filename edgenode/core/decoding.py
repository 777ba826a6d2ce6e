"""What every decoder shares: its settings, its interface, the score/box arithmetic, and how a native
decode plan (edgenode/kernels/decode.c) reads a model output.

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
from edgenode.kernels.decode import NATIVE, NORMALISE_ALWAYS, NORMALISE_NEVER, NORMALISE_PIXELS, TYPE_F32, Source

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


@dataclass(frozen=True)
class PlanInput:
    """One model output as a native decode plan reads it: ``strides`` are the element strides of the
    binding's canonical view (whose first element is the output's first), ``dtype`` the type the plan
    reads (the output's own for float32, int8 and uint8; float32 for others, converted per frame)."""

    index: int
    shape: tuple[int, ...]
    dtype: np.dtype
    source: Source
    strides: tuple[int, ...]

    @property
    def elements(self) -> int:
        return math.prod(self.shape)

    def array(self, outputs: Sequence[np.ndarray]) -> np.ndarray:
        """This frame's output, checked against the plan (and converted to the plan's type when it differs):
        the plan reads exactly the array returned, so the caller keeps it alive across the call."""
        array = outputs[self.index]
        if array.shape != self.shape:
            raise ValueError(f"model output {self.index} has shape {list(array.shape)}; the decoder was built for "
                             f"{list(self.shape)}")
        if array.dtype != self.dtype or not array.flags.c_contiguous:
            array = np.ascontiguousarray(array, self.dtype)
        return array


def plan_input(binding: Binding) -> PlanInput:
    """How a native plan reads ``binding``'s output (element type, dequantisation, view strides)."""
    dtype = np.dtype(binding.spec.dtype)
    kind = NATIVE.get(dtype)
    if kind is None or kind == TYPE_F32:  # float32, or another type read as float32 (exact up to 16-bit types)
        scale = float(np.float32(binding.scale)) if binding.quantized else 0.0
        source = Source(TYPE_F32, None, scale, float(np.float32(binding.zero_point)))
        dtype = np.dtype(np.float32)
    else:  # 8-bit: the real value of every code, as dequantize gives it
        table = np.ascontiguousarray(binding.dequantize(np.arange(256, dtype=np.uint8).view(dtype)), np.float32)
        source = Source(kind, table)
    shape = tuple(binding.spec.shape)
    probe = np.zeros(shape, dtype)
    view = binding.view([probe] * (binding.index + 1))
    if view.ctypes.data != probe.ctypes.data or any(stride < 0 for stride in view.strides):
        raise ValueError(f"output {binding.index}: its canonical view does not start at its first element")
    return PlanInput(binding.index, shape, dtype, source, tuple(stride // dtype.itemsize for stride in view.strides))


def raw_bound(binding: Binding, threshold: float) -> float | None:
    """:func:`raw_threshold` as a native plan compares it: the smallest code reaching it for 8-bit outputs,
    else the threshold as float32; ``None`` when no value of the output can reach it."""
    raw = raw_threshold(binding, threshold)
    if raw is None:
        return None
    dtype = np.dtype(binding.spec.dtype)
    if dtype in (np.dtype(np.int8), np.dtype(np.uint8)):
        info = np.iinfo(dtype)
        codes = np.arange(info.min, info.max + 1).astype(dtype)
        passing = np.flatnonzero(codes >= raw)  # numpy's own comparison of the output's type with the threshold
        return float(codes[passing[0]]) if passing.size else None
    return float(np.float32(raw))


def normalise_mode(layout: Layout) -> tuple[int, tuple[int, int]]:
    """:func:`normalise_boxes` as a native plan's mode and input size."""
    if layout.input_size is None or layout.normalized is True:
        return NORMALISE_NEVER, (0, 0)
    return (NORMALISE_ALWAYS if layout.normalized is False else NORMALISE_PIXELS), layout.input_size


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
