"""Guess the decoder config from output shapes when the model carries none (EdgeFirst's fallback).

Follows the EdgeFirst Model Node's ``guess_model_config`` and fixes its blind spots: a
transposed ``[1, 8400, 84]`` is a raw YOLO head (its box count is the anchor count of the input),
not an end-to-end one; ``[1, N, 6]`` with ``N`` not an anchor count is end-to-end (YOLO26 or an
NMS-included export); ``N`` equal to three times the anchor count is YOLOv5 (three anchors per
cell, with an objectness row); split end-to-end, two-way segmentation and raw-DFL box outputs are
recognised too. Never ModelPack split detection: anchors only come from a config.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from edgenode.core.model_config import ModelConfig, OutputConfig
from edgenode.core.tensors import TensorSpec

MIN_NUM_BOXES = 256  # below this, a 3-D output is not taken for a raw YOLO head (as EdgeFirst)
STRIDES = (8, 16, 32)
SOURCE = "shapes (no edgefirst.yaml)"

Guess = Callable[[Sequence[TensorSpec], "tuple[int, int] | None", "bool | None"], "list[OutputConfig] | None"]


def anchor_cells(input_size: tuple[int, int] | None, strides: Sequence[int] = STRIDES) -> int:
    """Grid cells of a YOLO head over an input of ``(width, height)`` (8400 for 640x640); 0 if unknown."""
    if input_size is None:
        return 0
    width, height = input_size
    return sum(-(-width // s) * -(-height // s) for s in strides)


def guess_config(outputs: Sequence[TensorSpec], input_size: tuple[int, int] | None, *, ssd: bool = False,
                 end_to_end: bool | None = None) -> ModelConfig | None:
    """The config the output shapes imply, or ``None`` when they fit no known layout.

    ``ssd`` says the outputs are decoded boxes and scores (ModelPack/SSD style) whatever their
    size; ``end_to_end`` is a hint from the model's own metadata (Ultralytics ``end2end``).
    """
    specs = [spec for spec in outputs if spec.shape]
    if ssd:
        found = _modelpack_det(specs, input_size, end_to_end, min_boxes=1)
        return None if found is None else ModelConfig(tuple(found), source=SOURCE)
    for guess in _GUESSES.get(len(specs), ()):
        found = guess(specs, input_size, end_to_end)
        if found is not None:
            return ModelConfig(tuple(found), None, yolo_version(found, input_size, end_to_end), SOURCE)
    return None


def yolo_version(outputs: Sequence[OutputConfig], input_size: tuple[int, int] | None,
                 end_to_end: bool | None) -> str | None:
    """``yolo26`` for an end-to-end head, ``yolov5`` for three anchors per cell, else unknown (``None``)."""
    head = next((o for o in outputs if o.type == "detection" and o.decoder == "ultralytics" and o.dims), None)
    if head is None:
        if any(o.type == "classes" for o in outputs):
            return "yolo26"
        return None
    protos = next((o for o in outputs if o.type == "protos" and o.dims), None)
    extra = protos.shape[protos.dims.index("num_protos")] if protos is not None else 0
    if any(o.type == "mask_coefficients" for o in outputs):
        extra = 0
    boxes, features = head.shape[head.dims.index("num_boxes")], head.shape[head.dims.index("num_features")]
    if is_end_to_end(head.dims, boxes, features, extra_features=extra, input_size=input_size, hint=end_to_end):
        return "yolo26"
    cells = anchor_cells(input_size)
    return "yolov5" if cells and boxes == 3 * cells else None


def is_end_to_end(dims: Sequence[str], boxes: int, features: int, *, extra_features: int = 0,
                  input_size: tuple[int, int] | None = None, hint: bool | None = None) -> bool:
    """Whether a YOLO detection output holds final (post-NMS) boxes rather than a raw head.

    The model's own ``end2end`` metadata decides when present. Otherwise an output is end-to-end
    when it is box-major with exactly ``x1, y1, x2, y2, score, class`` (+ mask coefficients)
    features and its box count is not the anchor count of the input: a transposed raw head
    ``[1, 8400, 84]`` stays a raw head.
    """
    if hint is not None:
        return hint
    box_major = list(dims).index("num_boxes") < list(dims).index("num_features")
    cells = anchor_cells(input_size)
    raw_count = boxes in (cells, 3 * cells) if cells else boxes >= MIN_NUM_BOXES
    return box_major and features == 6 + extra_features and not raw_count


def _out(kind: str, spec: TensorSpec, dims: Sequence[str], decoder: str = "ultralytics") -> OutputConfig:
    return OutputConfig(kind, decoder, spec.shape, tuple(dims), name=spec.name)


def _by_rank(specs: Sequence[TensorSpec], rank: int) -> list[TensorSpec]:
    return [s for s in specs if len(s.shape) == rank and s.shape[0] == 1]


def _yolo_head(spec: TensorSpec, input_size: tuple[int, int] | None, end_to_end: bool | None,
               extra_features: int = 0) -> OutputConfig | None:
    """A single YOLO output ``[1, F, N]`` or ``[1, N, F]``: a raw head or end-to-end boxes."""
    if len(spec.shape) != 3 or spec.shape[0] != 1:
        return None
    _, a, b = spec.shape
    dims = ("batch", "num_boxes", "num_features") if a > b else ("batch", "num_features", "num_boxes")
    boxes, features = max(a, b), min(a, b)
    if is_end_to_end(dims, boxes, features, extra_features=extra_features, input_size=input_size, hint=end_to_end):
        ok = features >= 6 + extra_features
    else:
        cells = anchor_cells(input_size)
        ok = features >= 5 + extra_features and (boxes >= MIN_NUM_BOXES or boxes in (cells, 3 * cells))
    return _out("detection", spec, dims) if ok else None


def _spatial(spec: TensorSpec) -> tuple[str, ...] | None:
    """Dims of a 4-D ``[1,H,W,C]`` or ``[1,C,H,W]`` map: the channel axis is the smallest."""
    if len(spec.shape) != 4 or spec.shape[0] != 1:
        return None
    _, a, b, c = spec.shape
    if c <= min(a, b):
        return ("batch", "height", "width", "channels")
    if a < min(b, c):
        return ("batch", "channels", "height", "width")
    return None


def _named(dims: tuple[str, ...], channel: str) -> tuple[str, ...]:
    return tuple(channel if d == "channels" else d for d in dims)


# ---- one output ---------------------------------------------------------------------------------

def _one_yolo(specs: Sequence[TensorSpec], size: tuple[int, int] | None,
              e2e: bool | None) -> list[OutputConfig] | None:
    head = _yolo_head(specs[0], size, e2e)
    return None if head is None else [head]


def _one_segmentation(specs: Sequence[TensorSpec], size: tuple[int, int] | None,
                      e2e: bool | None) -> list[OutputConfig] | None:
    dims = _spatial(specs[0])
    if dims is None:
        return None
    return [_out("segmentation", specs[0], _named(dims, "num_classes"), "modelpack")]


# ---- detection pairs ----------------------------------------------------------------------------

def _modelpack_boxes(spec: TensorSpec, min_boxes: int) -> tuple[tuple[str, ...], int] | None:
    """ModelPack/SSD boxes ``[1, NB, 1, 4]`` (any order of the 1 and 4 after NB)."""
    if len(spec.shape) != 4 or spec.shape[0] != 1:
        return None
    dims, boxes = ["batch"], 0
    for size in spec.shape[1:]:
        if size == 4 and "box_coords" not in dims:
            dims.append("box_coords")
        elif size == 1 and "padding" not in dims:
            dims.append("padding")
        elif size >= min_boxes and not boxes:
            dims.append("num_boxes")
            boxes = size
        else:
            return None
    return (tuple(dims), boxes) if boxes else None


def _scores_dims(spec: TensorSpec, boxes: int, other: str = "num_classes") -> tuple[str, ...] | None:
    if len(spec.shape) != 3 or spec.shape[0] != 1 or boxes not in spec.shape[1:]:
        return None
    first_is_boxes = spec.shape[1] == boxes
    return ("batch", "num_boxes", other) if first_is_boxes else ("batch", other, "num_boxes")


def _modelpack_det(specs: Sequence[TensorSpec], size: tuple[int, int] | None, e2e: bool | None,
                   min_boxes: int = MIN_NUM_BOXES + 1) -> list[OutputConfig] | None:
    if len(specs) != 2:
        return None
    for boxes_spec, scores_spec in (specs, specs[::-1]):
        found = _modelpack_boxes(boxes_spec, min_boxes)
        if found is None:
            continue
        dims, count = found
        scores = _scores_dims(scores_spec, count)
        if scores is not None and len(scores_spec.shape) == 3:
            return [_out("boxes", boxes_spec, dims, "modelpack"), _out("scores", scores_spec, scores, "modelpack")]
    return None


def _split_boxes(spec: TensorSpec) -> tuple[tuple[str, ...], int] | None:
    """YOLO split boxes ``[1, 4, N]``/``[1, N, 4]``, or raw DFL ``[1, 4*reg_max, N]``."""
    if len(spec.shape) != 3 or spec.shape[0] != 1:
        return None
    _, a, b = spec.shape
    if a == 4 or (a % 4 == 0 and a < b and b >= MIN_NUM_BOXES):
        return ("batch", "box_coords", "num_boxes"), b
    if b == 4 or (b % 4 == 0 and b < a and a >= MIN_NUM_BOXES):
        return ("batch", "num_boxes", "box_coords"), a
    return None


def _yolo_split(specs: Sequence[TensorSpec], size: tuple[int, int] | None,
                e2e: bool | None) -> list[OutputConfig] | None:
    three = _by_rank(specs, 3)
    if len(three) != 2:
        return None
    ordered = sorted(three, key=lambda s: (4 not in s.shape[1:], min(s.shape[1:])))
    for boxes_spec, scores_spec in (ordered, ordered[::-1]):
        found = _split_boxes(boxes_spec)
        if found is None:
            continue
        dims, count = found
        scores = _scores_dims(scores_spec, count)
        if scores is not None and count >= MIN_NUM_BOXES:
            return [_out("boxes", boxes_spec, dims), _out("scores", scores_spec, scores)]
    return None


def _protos_dims(spec: TensorSpec) -> tuple[str, ...] | None:
    dims = _spatial(spec)
    return None if dims is None else _named(dims, "num_protos")


def _yolo_segdet(specs: Sequence[TensorSpec], size: tuple[int, int] | None,
                 e2e: bool | None) -> list[OutputConfig] | None:
    four, three = _by_rank(specs, 4), _by_rank(specs, 3)
    if len(four) != 1 or len(three) != 1:
        return None
    protos = _protos_dims(four[0])
    if protos is None:
        return None
    num_protos = four[0].shape[protos.index("num_protos")]
    head = _yolo_head(three[0], size, e2e, extra_features=num_protos)
    if head is None:
        return None
    return [_out("protos", four[0], protos), head]


def _modelpack_seg_with_mask(specs: Sequence[TensorSpec], size: tuple[int, int] | None,
                             e2e: bool | None) -> list[OutputConfig] | None:
    four, three = _by_rank(specs, 4), _by_rank(specs, 3)
    if len(four) != 1 or len(three) != 1:
        return None
    dims = _spatial(four[0])
    mask = three[0].shape
    if dims is None:
        return None
    height, width = four[0].shape[dims.index("height")], four[0].shape[dims.index("width")]
    if (mask[1], mask[2]) != (height, width):
        return None
    return [_out("segmentation", four[0], _named(dims, "num_classes"), "modelpack"),
            _out("mask", three[0], ("batch", "height", "width"), "modelpack")]


# ---- three or more outputs ----------------------------------------------------------------------

def _modelpack_segdet(specs: Sequence[TensorSpec], size: tuple[int, int] | None,
                      e2e: bool | None) -> list[OutputConfig] | None:
    """Boxes ``[1,NB,1,4]``, scores ``[1,NB,NC]`` and segmentation ``[1,H,W,C]`` (+ a ``[1,H,W]`` mask)."""
    for boxes_spec in _by_rank(specs, 4):
        found = _modelpack_boxes(boxes_spec, MIN_NUM_BOXES + 1)
        if found is None:
            continue
        dims, count = found
        rest = [s for s in specs if s is not boxes_spec]
        scores = [s for s in rest if _scores_dims(s, count) is not None]
        segs = [s for s in rest if _spatial(s) is not None]
        masks = [s for s in rest if len(s.shape) == 3 and s not in scores]
        if len(scores) != 1 or len(segs) != 1 or len(masks) != len(specs) - 3:
            continue
        seg_dims = _named(_spatial(segs[0]) or (), "num_classes")
        result = [_out("boxes", boxes_spec, dims, "modelpack"),
                  _out("scores", scores[0], _scores_dims(scores[0], count) or (), "modelpack"),
                  _out("segmentation", segs[0], seg_dims, "modelpack")]
        if masks:
            result.append(_out("mask", masks[0], ("batch", "height", "width"), "modelpack"))
        return result
    return None


def _yolo_split_e2e(specs: Sequence[TensorSpec], size: tuple[int, int] | None,
                    e2e: bool | None) -> list[OutputConfig] | None:
    """Split end-to-end: boxes ``[1,N,4]``, scores ``[1,N,1]``, classes ``[1,N,1]`` (+ coefficients, protos)."""
    three = _by_rank(specs, 3)
    four = _by_rank(specs, 4)
    boxes = [s for s in three if s.shape[2] == 4]
    singles = [s for s in three if s.shape[2] == 1]
    if len(boxes) != 1 or len(singles) != 2 or e2e is False:
        return None
    count = boxes[0].shape[1]
    if any(s.shape[1] != count for s in singles):
        return None
    scores, classes = _score_and_class(singles)
    result = [_out("boxes", boxes[0], ("batch", "num_boxes", "box_coords")),
              _out("scores", scores, ("batch", "num_boxes", "num_classes")),
              _out("classes", classes, ("batch", "num_boxes", "num_classes"))]
    rest = [s for s in three if s not in boxes and s not in singles]
    if not rest and not four:
        return result
    if len(rest) == 1 and len(four) == 1 and rest[0].shape[1] == count:
        protos = _protos_dims(four[0])
        if protos is not None:
            return [*result, _out("mask_coefficients", rest[0], ("batch", "num_boxes", "num_protos")),
                    _out("protos", four[0], protos)]
    return None


def _score_and_class(singles: Sequence[TensorSpec]) -> tuple[TensorSpec, TensorSpec]:
    """Tell scores from classes by name, then by element type (classes are often integers)."""
    first, second = singles
    for word in ("class", "label", "cls"):
        if word in first.name.lower() and word not in second.name.lower():
            return second, first
        if word in second.name.lower() and word not in first.name.lower():
            return first, second
    if first.dtype.kind in "iu" and not first.quantized and second.dtype.kind == "f":
        return second, first
    return first, second


def _yolo_segdet_two_way(specs: Sequence[TensorSpec], size: tuple[int, int] | None,
                         e2e: bool | None) -> list[OutputConfig] | None:
    """Detection ``[1, 4+NC, N]`` with separate coefficients ``[1, NP, N]`` and protos."""
    four, three = _by_rank(specs, 4), _by_rank(specs, 3)
    if len(four) != 1 or len(three) != 2:
        return None
    protos = _protos_dims(four[0])
    if protos is None:
        return None
    num_protos = four[0].shape[protos.index("num_protos")]
    for coef_spec, det_spec in (three, three[::-1]):
        if num_protos not in coef_spec.shape[1:]:
            continue
        head = _yolo_head(det_spec, size, False)
        if head is None:
            continue
        count = det_spec.shape[head.dims.index("num_boxes")]
        coef = _scores_dims(coef_spec, count, "num_protos")
        if coef is not None:
            return [head, _out("mask_coefficients", coef_spec, coef), _out("protos", four[0], protos)]
    return None


def _yolo_split_segdet(specs: Sequence[TensorSpec], size: tuple[int, int] | None,
                       e2e: bool | None) -> list[OutputConfig] | None:
    four, three = _by_rank(specs, 4), _by_rank(specs, 3)
    if len(four) != 1 or len(three) != 3:
        return None
    protos = _protos_dims(four[0])
    if protos is None:
        return None
    num_protos = four[0].shape[protos.index("num_protos")]
    for boxes_spec in three:
        found = _split_boxes(boxes_spec)
        if found is None:
            continue
        dims, count = found
        rest = [s for s in three if s is not boxes_spec]
        coefs = [s for s in rest if num_protos in s.shape[1:] and count in s.shape[1:]]
        if not coefs:
            continue
        coef_spec = coefs[-1] if len(coefs) > 1 and rest[0] in coefs and rest[1] in coefs else coefs[0]
        scores_spec = next(s for s in rest if s is not coef_spec)
        coef = _scores_dims(coef_spec, count, "num_protos")
        scores = _scores_dims(scores_spec, count)
        if coef is not None and scores is not None:
            return [_out("boxes", boxes_spec, dims), _out("scores", scores_spec, scores),
                    _out("mask_coefficients", coef_spec, coef), _out("protos", four[0], protos)]
    return None


_GUESSES: dict[int, tuple[Guess, ...]] = {
    1: (_one_yolo, _one_segmentation),
    2: (_modelpack_det, _yolo_split, _yolo_segdet, _modelpack_seg_with_mask),
    3: (_modelpack_segdet, _yolo_split_e2e, _yolo_segdet_two_way),
    4: (_yolo_split_segdet, _modelpack_segdet),
    5: (_yolo_split_e2e,),
}
