"""ctypes side of ``decode.c``: a decoder's plan with its buffers, and greedy NMS.

A :class:`DecodePlan` is built once per decoder (the plan's scratch and outputs are allocated then, and
their addresses written into the C struct once); per frame it costs one ctypes call plus the copies of
the kept rows. The C struct :class:`Plan` mirrors ``edgenode_decode_plan`` field for field.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edgenode.kernels import library

TYPE_F32, TYPE_I8, TYPE_U8 = 0, 1, 2
BOXES_XYWH, BOXES_XYXY, BOXES_GIVEN = 0, 1, 2
NORMALISE_NEVER, NORMALISE_ALWAYS, NORMALISE_PIXELS = 0, 1, 2
NATIVE = {np.dtype(np.float32): TYPE_F32, np.dtype(np.int8): TYPE_I8, np.dtype(np.uint8): TYPE_U8}
"""Element types the kernels read; outputs of other types are converted to float32 first."""

class Values(ctypes.Structure):
    """``edgenode_values``: one output's element type and dequantisation."""

    _fields_ = [("type", ctypes.c_int64), ("table", ctypes.c_void_p), ("scale", ctypes.c_double),
                ("zero", ctypes.c_double)]


class Plan(ctypes.Structure):
    """``edgenode_decode_plan`` (decode.c): keep the two in step."""

    _fields_ = [
        ("score", Values), ("rows", ctypes.c_int64), ("anchors", ctypes.c_int64), ("anchor_stride", ctypes.c_int64),
        ("row_offsets", ctypes.c_void_p), ("class_ids", ctypes.c_void_p), ("threshold", ctypes.c_double),
        ("objectness_offset", ctypes.c_int64), ("objectness_threshold", ctypes.c_double),
        ("real_threshold", ctypes.c_double),
        ("box", Values), ("box_format", ctypes.c_int64), ("box_anchor_stride", ctypes.c_int64),
        ("box_offsets", ctypes.c_int64 * 4),
        ("iou", ctypes.c_double), ("class_aware", ctypes.c_int64), ("max_boxes", ctypes.c_int64),
        ("cap", ctypes.c_int64), ("normalise", ctypes.c_int64), ("width", ctypes.c_double),
        ("height", ctypes.c_double),
        ("scratch", ctypes.c_void_p), ("scratch_bytes", ctypes.c_int64),
        ("out_boxes", ctypes.c_void_p), ("out_scores", ctypes.c_void_p), ("out_classes", ctypes.c_void_p),
        ("out_anchors", ctypes.c_void_p), ("candidates", ctypes.c_void_p),
    ]


@dataclass(frozen=True)
class _Kernels:
    """decode.c's functions, their argument and result types declared."""

    scratch_bytes: Any
    decode: Any
    candidates: Any
    given: Any
    nms: Any


@functools.cache
def _kernels() -> _Kernels:
    lib = library()

    def declare(name: str, *argtypes: Any) -> Any:
        function = getattr(lib, name)
        function.argtypes, function.restype = list(argtypes), ctypes.c_int64
        return function

    pointer, integer, real = ctypes.c_void_p, ctypes.c_int64, ctypes.c_double
    plan_bytes = declare("edgenode_decode_plan_bytes")()
    if plan_bytes != ctypes.sizeof(Plan):
        raise RuntimeError(f"decode.c's plan is {plan_bytes} bytes, edgenode.kernels.decode.Plan "
                           f"{ctypes.sizeof(Plan)}: keep the two in step")
    return _Kernels(scratch_bytes=declare("edgenode_decode_scratch_bytes", integer, integer),
                    decode=declare("edgenode_decode", pointer, pointer, pointer),
                    candidates=declare("edgenode_decode_candidates", pointer, pointer),
                    given=declare("edgenode_decode_given", pointer, pointer, integer),
                    nms=declare("edgenode_nms", pointer, pointer, pointer, integer, real, integer, integer, pointer,
                                pointer, integer))


_char_at: Callable[[Any], ctypes.c_char] = ctypes.c_char.from_buffer  # any buffer; numpy's stubs say none


def address(array: np.ndarray) -> int:
    """The address of ``array``'s first element (C-contiguous, non-empty): a third of ``array.ctypes.data``'s
    cost for writable arrays (every decoder input the node makes), which also serves read-only ones."""
    try:
        return ctypes.addressof(_char_at(array))
    except (TypeError, ValueError, BufferError):  # read-only or empty
        return int(array.ctypes.data)


@dataclass(frozen=True)
class Source:
    """How a plan reads one output: its element type, dequantisation (``table`` for 8-bit types: the
    real value of each code indexed by its unsigned bits; else ``(v - zero) * scale`` when ``scale``)."""

    type: int
    table: NDArray[np.float32] | None = None
    scale: float = 0.0
    zero: float = 0.0


class DecodePlan:
    """One decoder's native plan: its constants, scratch and output buffers (not thread-safe: one per decoder).

    ``row_offsets`` (element offset of each scored class row) with ``class_ids`` (its class) and
    ``anchor_stride`` place the scores; ``box_offsets`` (x, y, w, h or x1, y1, x2, y2) with
    ``box_anchor_stride`` the boxes. ``threshold`` is in the scores' raw domain (an integer code for
    8-bit types). ``score_elements`` and ``box_elements`` are the sizes of the arrays every call will
    be given: the plan is refused unless each element it can read lies within them.
    """

    def __init__(self, *, score: Source, row_offsets: NDArray[np.int64], class_ids: NDArray[np.int64],
                 anchors: int, anchor_stride: int, threshold: float, box: Source, box_format: int,
                 box_offsets: tuple[int, int, int, int], box_anchor_stride: int, iou: float, class_aware: bool,
                 max_boxes: int, cap: int, normalise: int, score_elements: int, box_elements: int,
                 size: tuple[int, int] = (0, 0), objectness_offset: int = -1, objectness_threshold: float = 0.0,
                 real_threshold: float = 0.0) -> None:
        kernels = _kernels()
        self._decode, self._candidates, self._given = kernels.decode, kernels.candidates, kernels.given
        if not 0 < anchors < 2**31 or len(row_offsets) < 1 or len(class_ids) != len(row_offsets):
            raise ValueError(f"decode plan: {anchors} anchors, {len(row_offsets)} rows, {len(class_ids)} class ids")
        if max_boxes < 1 or cap < 1:
            raise ValueError(f"decode plan: max_boxes {max_boxes} and cap {cap} must be at least 1")
        _within("scores", [int(offset) for offset in row_offsets], anchors, anchor_stride, score_elements)
        if box_format != BOXES_GIVEN:
            reads = [*box_offsets, *([objectness_offset] if objectness_offset >= 0 else [])]
            _within("boxes", reads, anchors, box_anchor_stride, box_elements)
        # Everything the C struct points at is kept here, alive as long as the plan.
        self._row_offsets = np.ascontiguousarray(row_offsets, np.int64)
        self._class_ids = np.ascontiguousarray(class_ids, np.int64)
        self._tables = [source.table for source in (score, box) if source.table is not None]
        self._scratch = np.zeros(kernels.scratch_bytes(anchors, cap), np.uint8)
        self.boxes = np.zeros((max_boxes, 4), np.float32)
        self.scores = np.zeros(max_boxes, np.float32)
        self.classes = np.zeros(max_boxes, np.int32)
        self.anchors = np.zeros(max_boxes, np.int64)
        self.candidates = np.zeros(cap, np.int64)
        self.cap = cap
        plan = self._plan = Plan()
        plan.score, plan.box = _values(score), _values(box)
        plan.rows, plan.anchors, plan.anchor_stride = len(self._row_offsets), anchors, anchor_stride
        plan.row_offsets, plan.class_ids = self._row_offsets.ctypes.data, self._class_ids.ctypes.data
        plan.threshold = threshold
        plan.objectness_offset, plan.objectness_threshold = objectness_offset, objectness_threshold
        plan.real_threshold = real_threshold
        plan.box_format, plan.box_anchor_stride = box_format, box_anchor_stride
        plan.box_offsets[:] = box_offsets
        plan.iou, plan.class_aware, plan.max_boxes, plan.cap = iou, int(class_aware), max_boxes, cap
        plan.normalise, (plan.width, plan.height) = normalise, size
        plan.scratch, plan.scratch_bytes = self._scratch.ctypes.data, self._scratch.size
        plan.out_boxes, plan.out_scores = self.boxes.ctypes.data, self.scores.ctypes.data
        plan.out_classes, plan.out_anchors = self.classes.ctypes.data, self.anchors.ctypes.data
        plan.candidates = self.candidates.ctypes.data
        self.address = ctypes.addressof(plan)

    def decode(self, scores: int, boxes: int) -> int:
        """Decode one frame whose scores and boxes start at these addresses (checked by the caller to be
        outputs of the planned shapes and types); the number of kept rows in :attr:`boxes` etc., best first."""
        count: int = self._decode(self.address, scores, boxes)
        return count if count >= 0 else _checked(count)

    def candidate_anchors(self, scores: int) -> int:
        """``BOXES_GIVEN`` plans: the candidates' anchors in NMS order into :attr:`candidates`; their number."""
        return _checked(self._candidates(self.address, scores))

    def decode_given(self, corners: NDArray[np.float32]) -> int:
        """Then the NMS over ``corners`` (``(n, 4)`` float32 x1, y1, x2, y2 of those candidates, C-contiguous) and
        the kept rows, as :meth:`decode`."""
        if corners.dtype != np.float32 or corners.ndim != 2 or corners.shape[1] != 4 or corners.shape[0] > self.cap \
                or not corners.flags.c_contiguous:
            raise ValueError(f"decode plan: corners {corners.shape} {corners.dtype} for at most {self.cap} candidates")
        return _checked(self._given(self.address, corners.ctypes.data if corners.size else 0, corners.shape[0]))


def _within(name: str, offsets: list[int], anchors: int, stride: int, elements: int) -> None:
    """Refuse a plan reading ``offset + anchor * stride`` outside ``elements`` elements."""
    if stride < 0 or min(offsets) < 0 or max(offsets) + (anchors - 1) * stride >= elements:
        raise ValueError(f"decode plan: its {name} reach past the {elements} elements of their output")


def _values(source: Source) -> Values:
    table = source.table
    if source.type not in (TYPE_F32, TYPE_I8, TYPE_U8):
        raise ValueError(f"decode plan: element type {source.type} is none the kernel reads")
    if source.type != TYPE_F32 and (table is None or table.shape != (256,) or table.dtype != np.float32
                                    or not table.flags.c_contiguous):
        raise ValueError("decode plan: 8-bit outputs need their 256-entry float32 table")
    return Values(source.type, 0 if table is None else table.ctypes.data, source.scale, source.zero)


def _checked(result: int) -> int:
    if result < 0:
        raise RuntimeError(f"native decode refused its plan (error {result})")
    return result


def nms(boxes: NDArray[np.float32], scores: NDArray[np.float32], iou: float, max_boxes: int,
        labels: NDArray[np.int32] | None = None, *, cap: int | None = None) -> NDArray[np.intp]:
    """Indices of the boxes greedy NMS keeps, best first (see ``edgenode_nms``); ``labels`` (one int32 per box,
    equal for boxes of one class) makes it class-aware."""
    count = len(scores)
    if boxes.shape != (count, 4) or (labels is not None and labels.shape != (count,)):
        raise ValueError(f"nms: boxes {boxes.shape}, scores {scores.shape}, "
                         f"labels {None if labels is None else labels.shape}")
    cap = count if cap is None else min(cap, count)
    kept = np.zeros(max(min(cap, max_boxes), 0), np.int64)
    if not count or not kept.size:
        return kept.astype(np.intp)
    kernels = _kernels()
    boxes = np.ascontiguousarray(boxes, np.float32)
    scores = np.ascontiguousarray(scores, np.float32)
    labels = None if labels is None else np.ascontiguousarray(labels, np.int32)
    scratch = np.empty(kernels.scratch_bytes(count, cap), np.uint8)
    found = _checked(kernels.nms(boxes.ctypes.data, scores.ctypes.data, None if labels is None else labels.ctypes.data,
                                count, iou, max_boxes, cap, kept.ctypes.data, scratch.ctypes.data, scratch.size))
    return kept[:found].astype(np.intp)
