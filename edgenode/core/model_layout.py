"""Which decoder a model needs and which output plays which role, resolved once at load.

The decoder config (embedded, given, or guessed from shapes) names each output's role; this
module binds every configured output to a model tensor by name and shape (never by position
alone), names each tensor axis, checks the sizes agree, and picks the layout kind (EdgeFirst's
model types). Decoders then take zero-copy views of the outputs in a fixed axis order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from edgenode.core.model_config import DECODER_VERSIONS, ModelConfig, ModelError, OutputConfig
from edgenode.core.shape_guess import anchor_cells, guess_config, yolo_version
from edgenode.core.tensors import TensorSpec

FAMILIES = (*DECODER_VERSIONS, "modelpack")
# Layout kinds, as EdgeFirst HAL's model types.
YOLO_DET = "yolo_det"
YOLO_SEGDET = "yolo_segdet"
YOLO_SPLIT_DET = "yolo_split_det"
YOLO_SPLIT_SEGDET = "yolo_split_segdet"
YOLO_E2E_DET = "yolo_end_to_end_det"
YOLO_E2E_SEGDET = "yolo_end_to_end_segdet"
YOLO_SPLIT_E2E_DET = "yolo_split_end_to_end_det"
YOLO_SPLIT_E2E_SEGDET = "yolo_split_end_to_end_segdet"
ANCHOR_GRID_DET = "anchor_grid_det"  # ModelPack split detection, or a raw YOLOv5 head with anchors
ANCHOR_GRID_SEGDET = "anchor_grid_segdet"
MODELPACK_DET = "modelpack_det"
MODELPACK_SEG = "modelpack_seg"
MODELPACK_SEGDET = "modelpack_segdet"
INSTANCE_SEG_KINDS = (YOLO_SEGDET, YOLO_SPLIT_SEGDET, YOLO_E2E_SEGDET, YOLO_SPLIT_E2E_SEGDET)
SEMANTIC_SEG_KINDS = (MODELPACK_SEG, MODELPACK_SEGDET, ANCHOR_GRID_SEGDET)

_ROLE_WORDS = {"detection": ("detect", "output"), "boxes": ("box", "bbox"), "scores": ("score", "conf"),
               "classes": ("class", "label", "cls"), "protos": ("proto",), "mask_coefficients": ("coef", "mask"),
               "segmentation": ("seg",), "mask": ("mask",)}


@dataclass(frozen=True)
class Binding:
    """One model output bound to a decoder role, with its axes named.

    ``view(outputs)`` is a zero-copy view of that output with the batch (and padding) axes dropped
    and the rest in the role's canonical order; ``scale``/``zero_point`` are the quantisation in
    effect (the config's when it gives one, else the tensor's; ``scale == 0`` means float).
    """

    role: str
    index: int
    spec: TensorSpec
    dims: tuple[str, ...]
    canonical: tuple[str, ...]
    scale: float
    zero_point: int
    anchors: tuple[tuple[float, float], ...] = ()
    _kept: tuple[int, ...] = field(default=(), repr=False)
    _order: tuple[int, ...] = field(default=(), repr=False)

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0

    @property
    def shape(self) -> tuple[int, ...]:
        """Sizes in canonical order."""
        return tuple(self.spec.shape[self.dims.index(name)] for name in self.canonical)

    def size(self, name: str) -> int:
        return self.spec.shape[self.dims.index(name)]

    def view(self, outputs: Sequence[np.ndarray]) -> np.ndarray:
        array = outputs[self.index]
        shape = array.shape
        kept = self._kept_shape if shape == self.spec.shape else tuple(shape[i] for i in self._kept)
        view: np.ndarray = array.reshape(kept).transpose(self._order)
        return view

    @cached_property
    def _kept_shape(self) -> tuple[int, ...]:
        """The view's shape before the transpose, for outputs of the spec's shape."""
        return tuple(self.spec.shape[i] for i in self._kept)

    def dequantize(self, values: np.ndarray) -> np.ndarray:
        """Real values (float32) of ``values`` taken from this output (a table lookup for 8-bit types)."""
        table = self._table
        if table is not None:
            looked_up: np.ndarray = table.take(values.view(np.uint8))
            return looked_up
        real: np.ndarray = values.astype(np.float32, copy=False)
        if self.quantized:
            real = (real - np.float32(self.zero_point)) * np.float32(self.scale)
        return real

    @cached_property
    def _table(self) -> np.ndarray | None:
        """Real value of each byte, indexed by the byte's unsigned bits, for 8-bit quantised outputs."""
        if not self.quantized or np.dtype(self.spec.dtype) not in (np.dtype(np.int8), np.dtype(np.uint8)):
            return None
        codes = np.arange(256, dtype=np.uint8).view(self.spec.dtype).astype(np.float32)
        table: np.ndarray = (codes - np.float32(self.zero_point)) * np.float32(self.scale)
        return table


@dataclass(frozen=True)
class Layout:
    """The resolved decoding plan of a model: its kind, bound outputs and facts decoders need."""

    kind: str
    bindings: tuple[Binding, ...]
    num_classes: int
    version: str
    nms: str | None
    input_size: tuple[int, int] | None
    normalized: bool | None
    source: str

    def get(self, role: str) -> Binding:
        for binding in self.bindings:
            if binding.role == role:
                return binding
        raise KeyError(role)

    def all(self, role: str) -> tuple[Binding, ...]:
        return tuple(b for b in self.bindings if b.role == role)

    def has(self, role: str) -> bool:
        return any(b.role == role for b in self.bindings)

    @property
    def has_boxes(self) -> bool:
        return self.kind != MODELPACK_SEG

    @property
    def model_types(self) -> str:
        """EdgeFirst ModelInfo ``model_types``: Segmentation and/or Detection, joined by ';'."""
        seg = self.kind in INSTANCE_SEG_KINDS or self.kind in SEMANTIC_SEG_KINDS
        return ";".join([*(["Segmentation"] if seg else []), *(["Detection"] if self.has_boxes else [])])


def model_input_size(spec: TensorSpec) -> tuple[int, int] | None:
    """``(width, height)`` of an image input ``[1,H,W,C]`` or ``[1,C,H,W]`` (C of 1, 3 or 4)."""
    shape = spec.shape
    if len(shape) != 4:
        return None
    if shape[3] in (1, 3, 4):
        return shape[2], shape[1]
    if shape[1] in (1, 3, 4):
        return shape[3], shape[2]
    return None


def describe_outputs(outputs: Sequence[TensorSpec]) -> str:
    """``[1, 84, 8400] int8, ...`` for error messages."""
    return ", ".join(f"{spec.name or i} {list(spec.shape)} {np.dtype(spec.dtype).name}"
                     for i, spec in enumerate(outputs))


def _hint(outputs: Sequence[TensorSpec]) -> str:
    return (f"model outputs are {describe_outputs(outputs)}; describe them in an edgefirst.yaml inside the model "
            "or pass --edgefirst-config FILE (see README, Models and delegates), or choose the decoder with "
            "--decoder-model or --ssd-model")


def resolve_layout(config: ModelConfig | None, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec], *,
                   family: str = "", ssd: bool = False, end_to_end: bool | None = None) -> Layout:
    """The decoding plan for a model's ``outputs``.

    ``config`` is the embedded or given decoder config (``None``: guess from shapes). ``family``
    (``--decoder-model``) forces the decoder family over the config's; ``ssd`` (``--ssd-model``)
    reads two outputs as decoded boxes and scores; ``end_to_end`` is the model metadata's hint.
    Raises :class:`ModelError` listing the output shapes and the setting that would fix it.
    """
    if family and family not in FAMILIES:
        raise ModelError(f"--decoder-model must be one of {', '.join(FAMILIES)}, got {family!r}")
    size = model_input_size(inputs[0]) if inputs else None
    if config is None:
        if family == "yolo26":
            end_to_end = True
        elif family in DECODER_VERSIONS:
            end_to_end = False
        config = guess_config(outputs, size, ssd=ssd, end_to_end=end_to_end)
        if config is None:
            raise ModelError(f"cannot tell how to decode this model: {_hint(outputs)}")
    config = _apply_family(config, family)
    decoders = {o.decoder for o in config.outputs}
    if len(decoders) > 1:
        raise ModelError(f"{config.source} mixes ultralytics and modelpack outputs; use one decoder for all outputs")
    pairs = _bind(config, outputs)
    if decoders == {"modelpack"}:
        return _modelpack_layout(config, pairs, outputs, size)
    return _yolo_layout(config, pairs, outputs, size, end_to_end)


def _apply_family(config: ModelConfig, family: str) -> ModelConfig:
    if not family:
        return config
    decoder = "modelpack" if family == "modelpack" else "ultralytics"
    outputs = tuple(replace(o, decoder=decoder) for o in config.outputs)
    return replace(config, outputs=outputs, decoder_version=None if family == "modelpack" else family)


# ---- binding config outputs to tensors ---------------------------------------------------------

def _bind(config: ModelConfig, outputs: Sequence[TensorSpec]) -> list[tuple[OutputConfig, int]]:
    """Pair each configured output with a model output: by name, then shape, then role words."""
    free = list(range(len(outputs)))
    pairs: list[tuple[OutputConfig, int] | None] = [None] * len(config.outputs)
    order = sorted(range(len(config.outputs)), key=lambda i: (not config.outputs[i].name, not config.outputs[i].shape))
    for position in order:
        wanted = config.outputs[position]
        candidates = [i for i in free if not wanted.shape or outputs[i].shape == wanted.shape]
        if not wanted.shape:
            rank = _ROLE_RANKS.get((wanted.type, wanted.decoder, bool(wanted.anchors)), (3,))
            candidates = [i for i in candidates if len(outputs[i].shape) in rank]
        named = [i for i in candidates if wanted.name and outputs[i].name == wanted.name]
        worded = [i for i in candidates if any(w in outputs[i].name.lower() for w in _ROLE_WORDS[wanted.type])]
        if named:
            chosen = named[0]
        elif len(candidates) == 1 or (candidates and wanted.shape):
            chosen = (worded or candidates)[0]
        elif len(worded) == 1:
            chosen = worded[0]
        else:
            what = f"type {wanted.type}" + (f", shape {list(wanted.shape)}" if wanted.shape else "")
            problem = "matches no model output" if not candidates else "could be several outputs; add its shape"
            raise ModelError(f"{config.source} output {position} ({what}) {problem}; "
                             f"model outputs are {describe_outputs(outputs)}")
        free.remove(chosen)
        pairs[position] = (wanted, chosen)
    return [pair for pair in pairs if pair is not None]


_ROLE_RANKS = {("detection", "modelpack", True): (4,), ("detection", "ultralytics", True): (4,),
               ("boxes", "modelpack", False): (4, 3), ("protos", "ultralytics", False): (4,),
               ("segmentation", "modelpack", False): (4,), ("segmentation", "ultralytics", False): (4,),
               ("classes", "ultralytics", False): (2, 3)}


def _binding(wanted: OutputConfig, index: int, outputs: Sequence[TensorSpec], *, canonical: Sequence[str],
             source: str, boxes: int = 0) -> Binding:
    role, spec = wanted.type, outputs[index]
    dims = _dims(wanted, spec, boxes)
    if len(dims) != len(spec.shape):
        raise ModelError(f"{source}: output {spec.name!r} {list(spec.shape)} has {len(spec.shape)} axes "
                         f"but its dshape names {len(dims)}")
    missing = [name for name in canonical if name not in dims]
    if missing:
        raise ModelError(f"{source}: output {spec.name!r} {list(spec.shape)} ({role}) needs a "
                         f"{' and '.join(missing)} axis, its dims are {list(dims)}")
    kept = tuple(dims.index(name) for name in canonical)
    extra = [d for i, d in enumerate(dims) if i not in kept and spec.shape[i] != 1]
    if extra:
        raise ModelError(f"{source}: output {spec.name!r} {list(spec.shape)} ({role}) has unexpected axes "
                         f"{extra} of size > 1 (batch must be 1)")
    scale, zero_point = wanted.quantization if wanted.quantization is not None else (spec.scale, spec.zero_point)
    return Binding(role, index, spec, dims, tuple(canonical), float(scale), int(zero_point), wanted.anchors,
                   tuple(sorted(kept)), tuple(sorted(kept).index(k) for k in kept))


def _infer_dims(role: str, spec: TensorSpec, boxes: int = 0) -> tuple[str, ...]:
    """Axis names of an output the config describes without a dshape."""
    shape = spec.shape
    rest = shape[1:]
    if role == "detection" and len(shape) == 3:
        return ("batch", "num_features", "num_boxes") if shape[1] < shape[2] else ("batch", "num_boxes", "num_features")
    if role == "detection" and len(shape) == 4:
        return ("batch", "height", "width", "num_anchors_x_features")
    if role == "boxes":
        if len(shape) == 4:
            names = ["batch"]
            for size in rest:
                names.append("box_coords" if size == 4 and "box_coords" not in names else
                             "padding" if size == 1 and "padding" not in names else "num_boxes")
            return tuple(names)
        if len(shape) == 3:
            coords_first = shape[1] == 4 or (shape[2] != 4 and shape[1] < shape[2])
            return ("batch", "box_coords", "num_boxes") if coords_first else ("batch", "num_boxes", "box_coords")
    if role in ("scores", "mask_coefficients", "classes"):
        other = "num_protos" if role == "mask_coefficients" else "num_classes"
        if len(shape) == 2:
            return ("batch", "num_boxes")
        if len(shape) == 3:
            boxes_first = shape[1] == boxes if boxes else shape[1] > shape[2]
            return ("batch", "num_boxes", other) if boxes_first else ("batch", other, "num_boxes")
    if role in ("protos", "segmentation") and len(shape) == 4:
        channel = "num_protos" if role == "protos" else "num_classes"
        if shape[3] <= min(shape[1], shape[2]):
            return ("batch", "height", "width", channel)
        return ("batch", channel, "height", "width")
    if role == "mask" and len(shape) == 3:
        return ("batch", "height", "width")
    raise ModelError(f"cannot tell the axes of {role} output {spec.name!r} {list(shape)}; give it a dshape")


def _dims(wanted: OutputConfig, spec: TensorSpec, boxes: int = 0) -> tuple[str, ...]:
    return wanted.dims or _infer_dims(wanted.type, spec, boxes)


# ---- YOLO ---------------------------------------------------------------------------------------

def _yolo_layout(config: ModelConfig, pairs: list[tuple[OutputConfig, int]], outputs: Sequence[TensorSpec],
                 size: tuple[int, int] | None, end_to_end: bool | None) -> Layout:
    roles: dict[str, tuple[OutputConfig, int]] = {}
    for wanted, index in pairs:
        if wanted.type == "mask" or (wanted.type in roles and wanted.type != "detection"):
            continue
        if wanted.type == "detection" and wanted.anchors:
            return _anchor_grid_layout(config, pairs, outputs, size, "yolov5")
        roles.setdefault(wanted.type, (wanted, index))
    source = config.source
    version = config.decoder_version
    normalized = next((o.normalized for o, _ in pairs if o.normalized is not None), None)
    bindings: list[Binding] = []

    def bind(role: str, canonical: Sequence[str], boxes: int = 0) -> Binding:
        wanted, index = roles[role]
        binding = _binding(wanted, index, outputs, canonical=canonical, source=source, boxes=boxes)
        bindings.append(binding)
        return binding

    protos = bind("protos", ("height", "width", "num_protos")) if "protos" in roles else None
    num_protos = protos.size("num_protos") if protos is not None else 0

    if "detection" in roles:
        wanted, index = roles["detection"]
        coef_separate = "mask_coefficients" in roles
        if version is None:
            described = [replace(wanted, dims=_dims(wanted, outputs[index]))]
            described += [replace(o, dims=_dims(o, outputs[i])) for o, i in pairs if o.type == "protos"]
            described += [o for o, _ in pairs if o.type == "mask_coefficients"]
            version = yolo_version(described, size, end_to_end)
        e2e = version == "yolo26"
        if e2e:
            det = bind("detection", ("num_boxes", "num_features"))
            coefs = bind("mask_coefficients", ("num_boxes", "num_protos"), det.size("num_boxes")) \
                if coef_separate else None
            embedded = 0 if coefs is not None else num_protos
            if det.size("num_features") < 6 + embedded:
                raise ModelError(f"{source}: end-to-end output {list(det.spec.shape)} needs x1, y1, x2, y2, score, "
                                 f"class{' and ' + str(embedded) + ' mask coefficients' if embedded else ''}")
            kind = YOLO_E2E_SEGDET if protos is not None else YOLO_E2E_DET
            return Layout(kind, tuple(bindings), 0, "yolo26", None, size, normalized, source)
        det = bind("detection", ("num_features", "num_boxes"))
        objectness = 1 if version == "yolov5" else 0
        coefs = bind("mask_coefficients", ("num_protos", "num_boxes"), det.size("num_boxes")) \
            if coef_separate else None
        embedded = 0 if coefs is not None else num_protos
        num_classes = det.size("num_features") - 4 - objectness - embedded
        if num_classes < 1:
            parts = ["4 box values", *(["objectness"] if objectness else []),
                     *([f"{embedded} mask coefficients"] if embedded else []), "at least one class"]
            raise ModelError(f"{source}: detection output {list(det.spec.shape)} is too small for {', '.join(parts)}")
        _check_protos(protos, coefs.size("num_protos") if coefs is not None else num_protos, source)
        if coefs is not None and coefs.size("num_boxes") != det.size("num_boxes"):
            raise ModelError(f"{source}: mask coefficients {list(coefs.spec.shape)} and detection "
                             f"{list(det.spec.shape)} disagree on the number of boxes")
        kind = YOLO_SEGDET if protos is not None else YOLO_DET
        return Layout(kind, tuple(bindings), num_classes, version or "yolov8", config.nms, size, normalized, source)

    if "boxes" in roles and "scores" in roles:
        e2e = "classes" in roles or version == "yolo26"
        if e2e:
            box = bind("boxes", ("num_boxes", "box_coords"))
            n = box.size("num_boxes")
            bind("scores", ("num_boxes",), n)
            if "classes" not in roles:
                raise ModelError(f"{source}: split end-to-end outputs need a classes output; {_hint(outputs)}")
            bind("classes", ("num_boxes",), n)
            coefs = bind("mask_coefficients", ("num_boxes", "num_protos"), n) if "mask_coefficients" in roles else None
            if (coefs is None) != (protos is None):
                raise ModelError(f"{source}: segmentation needs both mask coefficients and protos outputs")
            _check_protos(protos, coefs.size("num_protos") if coefs is not None else 0, source)
            kind = YOLO_SPLIT_E2E_SEGDET if protos is not None else YOLO_SPLIT_E2E_DET
            return Layout(kind, tuple(bindings), 0, "yolo26", None, size, normalized, source)
        box = bind("boxes", ("box_coords", "num_boxes"))
        n = box.size("num_boxes")
        scores = bind("scores", ("num_classes", "num_boxes"), n)
        coefs = bind("mask_coefficients", ("num_protos", "num_boxes"), n) if "mask_coefficients" in roles else None
        for other in (scores, coefs):
            if other is not None and other.size("num_boxes") != n:
                raise ModelError(f"{source}: {other.role} {list(other.spec.shape)} and boxes {list(box.spec.shape)} "
                                 "disagree on the number of boxes")
        coords = box.size("box_coords")
        if coords != 4 and (coords % 4 or size is None or not dfl_strides(size, n)):
            raise ModelError(f"{source}: boxes output {list(box.spec.shape)} has {coords} coordinates: expected 4, "
                             "or 4 x reg_max (raw DFL) over an input whose anchor grid has that many boxes")
        if (coefs is None) != (protos is None):
            raise ModelError(f"{source}: segmentation needs both mask coefficients and protos outputs")
        _check_protos(protos, coefs.size("num_protos") if coefs is not None else 0, source)
        kind = YOLO_SPLIT_SEGDET if protos is not None else YOLO_SPLIT_DET
        return Layout(kind, tuple(bindings), scores.size("num_classes"), version or "yolov8", config.nms, size,
                      normalized, source)
    raise ModelError(f"{source} describes no detection (or boxes and scores) output; {_hint(outputs)}")


def dfl_strides(input_size: tuple[int, int], boxes: int) -> tuple[int, ...]:
    """The YOLO head strides whose anchor grid over ``input_size`` has ``boxes`` cells, or ``()``."""
    for strides in ((8, 16, 32), (8, 16, 32, 64), (16, 32, 64), (32,), (16,), (8,)):
        if anchor_cells(input_size, strides) == boxes:
            return strides
    return ()


def _check_protos(protos: Binding | None, coefficients: int, source: str) -> None:
    if protos is not None and protos.size("num_protos") != coefficients:
        raise ModelError(f"{source}: protos {list(protos.spec.shape)} have {protos.size('num_protos')} channels but "
                         f"each box has {coefficients} mask coefficients")


# ---- ModelPack and anchor grids -----------------------------------------------------------------

def _modelpack_layout(config: ModelConfig, pairs: list[tuple[OutputConfig, int]], outputs: Sequence[TensorSpec],
                      size: tuple[int, int] | None) -> Layout:
    if any(o.type == "detection" for o, _ in pairs):
        return _anchor_grid_layout(config, pairs, outputs, size, "modelpack")
    source = config.source
    bindings: list[Binding] = []
    seg = next(((o, i) for o, i in pairs if o.type == "segmentation"), None)
    boxes = next(((o, i) for o, i in pairs if o.type == "boxes"), None)
    scores = next(((o, i) for o, i in pairs if o.type == "scores"), None)
    normalized = next((o.normalized for o, _ in pairs if o.normalized is not None), None)
    num_classes = 0
    if boxes is not None and scores is not None:
        box = _binding(*boxes, outputs, canonical=("num_boxes", "box_coords"), source=source)
        n = box.size("num_boxes")
        score = _binding(*scores, outputs, canonical=("num_boxes", "num_classes"), source=source, boxes=n)
        if box.size("box_coords") != 4 or score.size("num_boxes") != n:
            raise ModelError(f"{source}: boxes {list(box.spec.shape)} and scores {list(score.spec.shape)} do not "
                             "form ModelPack/SSD detection ([1,N,1,4] and [1,N,classes])")
        bindings += [box, score]
        num_classes = score.size("num_classes")
    elif boxes is not None or scores is not None:
        raise ModelError(f"{source}: ModelPack detection needs both boxes and scores outputs; {_hint(outputs)}")
    if seg is not None:
        bindings.append(_binding(*seg, outputs, canonical=("height", "width", "num_classes"), source=source))
    if not bindings:
        raise ModelError(f"{source} describes no ModelPack detection or segmentation output; {_hint(outputs)}")
    kind = MODELPACK_SEGDET if seg is not None and num_classes else MODELPACK_DET if num_classes else MODELPACK_SEG
    return Layout(kind, tuple(bindings), num_classes or bindings[-1].size("num_classes"), "modelpack", config.nms,
                  size, normalized, source)


def _anchor_grid_layout(config: ModelConfig, pairs: list[tuple[OutputConfig, int]], outputs: Sequence[TensorSpec],
                        size: tuple[int, int] | None, version: str) -> Layout:
    source = config.source
    bindings: list[Binding] = []
    num_classes = 0
    for wanted, index in pairs:
        if wanted.type != "detection":
            continue
        if not wanted.anchors:
            raise ModelError(f"{source}: split detection output {list(outputs[index].shape)} has no anchors; "
                             "add anchors: [[w, h], ...] (normalised to the input) to it")
        binding = _binding(wanted, index, outputs, canonical=("height", "width", "num_anchors_x_features"),
                           source=source)
        channels = binding.size("num_anchors_x_features")
        per_anchor, remainder = divmod(channels, len(wanted.anchors))
        classes = per_anchor - 5
        if remainder or classes < 1 or (num_classes and classes != num_classes):
            raise ModelError(f"{source}: split detection output {list(outputs[index].shape)} has {channels} channels, "
                             f"not {len(wanted.anchors)} anchors x (5 + classes) matching the other outputs")
        num_classes = classes
        bindings.append(binding)
    seg = next(((o, i) for o, i in pairs if o.type == "segmentation"), None)
    if seg is not None:
        bindings.append(_binding(*seg, outputs, canonical=("height", "width", "num_classes"), source=source))
    kind = ANCHOR_GRID_SEGDET if seg is not None else ANCHOR_GRID_DET
    return Layout(kind, tuple(bindings), num_classes, version, config.nms, size, None, source)


