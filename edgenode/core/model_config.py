"""The EdgeFirst decoder config (``edgefirst.yaml``): what each model output is.

Parsed from already-loaded YAML/JSON text or mappings; reading files is the caller's job. The
keys follow EdgeFirst HAL's ``ConfigOutputs`` (unknown keys are ignored)::

    decoder_version: yolov8            # yolov5 | yolov8 | yolo11 | yolo26 (optional)
    nms: class_agnostic                # or class_aware (optional)
    outputs:
      - type: detection                # detection | boxes | scores | protos | mask_coefficients
        decoder: ultralytics           #   | segmentation | mask | classes; decoder: ultralytics | modelpack
        shape: [1, 84, 8400]
        dshape: [{batch: 1}, {num_features: 84}, {num_boxes: 8400}]   # or [[batch, 1], ...]
        quantization: [0.0042, -128]   # scale, zero point (optional; the tensor's own otherwise)
        anchors: [[0.05, 0.07], ...]   # ModelPack / YOLOv5 anchor-grid heads
        normalized: true               # false: box coordinates are input pixels
        name: output_0                 # optional: the model tensor's name, to bind outputs by name
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

OUTPUT_TYPES = ("detection", "boxes", "scores", "protos", "mask_coefficients", "segmentation", "mask", "classes")
DECODER_TYPES = ("ultralytics", "modelpack")
DECODER_VERSIONS = ("yolov5", "yolov8", "yolo11", "yolo26")
DIM_NAMES = ("batch", "height", "width", "num_classes", "num_features", "num_boxes", "num_protos",
             "num_anchors_x_features", "padding", "box_coords")
_NMS_WORDS = {"class_agnostic": "agnostic", "class_aware": "aware", "agnostic": "agnostic", "aware": "aware"}
_ALIASES = {"yolov8": "ultralytics", "yolo": "ultralytics"}


class ModelError(Exception):
    """The model, its metadata or its decoder config cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class OutputConfig:
    """One model output as the config describes it."""

    type: str
    decoder: str = "ultralytics"
    shape: tuple[int, ...] = ()
    dims: tuple[str, ...] = ()
    quantization: tuple[float, int] | None = None
    anchors: tuple[tuple[float, float], ...] = ()
    normalized: bool | None = None
    name: str = ""


@dataclass(frozen=True)
class ModelConfig:
    """The decoder config: outputs, NMS mode and YOLO version; ``source`` names where it came from."""

    outputs: tuple[OutputConfig, ...]
    nms: str | None = None
    decoder_version: str | None = None
    source: str = "config"


MAX_CONFIG_CHARS = 1024 * 1024  # a decoder config is a few hundred bytes; anything this big is not one
MAX_OUTPUTS = 64
MAX_RANK = 8
MAX_ANCHORS = 1024
_INT32 = (-(2**31), 2**31 - 1)


def parse_config_text(text: str, source: str, json_format: bool = False) -> ModelConfig:
    """Parse ``edgefirst.yaml`` (or JSON) text; ``source`` names it in error messages."""
    if len(text) > MAX_CONFIG_CHARS:
        raise ModelError(f"{source} is larger than {MAX_CONFIG_CHARS} characters; a decoder config is a few lines")
    try:
        data = json.loads(text) if json_format else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).strip()
        first = reason.splitlines()[0] if reason else type(exc).__name__
        raise ModelError(f"{source} is not valid {'JSON' if json_format else 'YAML'}: {first}") from None
    if not isinstance(data, Mapping):
        raise ModelError(f"{source} must be a mapping with an 'outputs' list, got {type(data).__name__}")
    return parse_config(data, source)


def parse_config(data: Mapping[str, Any], source: str) -> ModelConfig:
    """A :class:`ModelConfig` from the parsed mapping; raises :class:`ModelError` naming the bad key."""
    raw_outputs = data.get("outputs")
    if not _is_list(raw_outputs) or not raw_outputs:
        raise ModelError(f"{source} has no 'outputs' list describing the model outputs")
    if len(raw_outputs) > MAX_OUTPUTS:
        raise ModelError(f"{source} has {len(raw_outputs)} outputs; at most {MAX_OUTPUTS}")
    outputs = tuple(_parse_output(item, f"{source} outputs[{i}]") for i, item in enumerate(raw_outputs))
    nms = data.get("nms")
    if nms is not None:
        if str(nms) not in _NMS_WORDS:
            raise ModelError(f"{source} nms must be class_agnostic or class_aware, got {nms!r}")
        nms = _NMS_WORDS[str(nms)]
    version = data.get("decoder_version")
    if version is not None:
        version = str(version).lower()
        if version not in DECODER_VERSIONS:
            raise ModelError(f"{source} decoder_version must be one of {', '.join(DECODER_VERSIONS)}, got {version!r}")
    return ModelConfig(outputs, nms, version, source)


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def _whole(value: Any, low: int, high: int) -> int | None:
    """``value`` as an int in ``low..high`` (an integral float too), else None; bools are not numbers."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and low <= value <= high else None


def _positive(value: Any) -> float | None:
    """``value`` as a finite float above 0, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) and number > 0 else None


def _parse_output(item: Any, where: str) -> OutputConfig:
    if not isinstance(item, Mapping):
        raise ModelError(f"{where} must be a mapping with a 'type', got {item!r}")
    kind = str(item.get("type", "")).lower()
    if kind not in OUTPUT_TYPES:
        raise ModelError(f"{where} type must be one of {', '.join(OUTPUT_TYPES)}, got {item.get('type')!r}")
    decoder = str(item.get("decoder", "ultralytics")).lower()
    decoder = _ALIASES.get(decoder, decoder)
    if decoder not in DECODER_TYPES:
        raise ModelError(f"{where} decoder must be ultralytics or modelpack, got {item.get('decoder')!r}")
    shape = _int_list(item.get("shape") or (), f"{where} shape")
    dims: tuple[str, ...] = ()
    if item.get("dshape"):
        dims, sizes = _parse_dshape(item["dshape"], where)
        if shape and shape != sizes:
            raise ModelError(f"{where} shape {list(shape)} disagrees with its dshape {list(sizes)}")
        shape = sizes
    quantization = None
    if item.get("quantization") is not None:
        quantization = _parse_quantization(item["quantization"], where)
    anchors: tuple[tuple[float, float], ...] = ()
    if item.get("anchors"):
        anchors = _parse_anchors(item["anchors"], where)
    normalized = item.get("normalized")
    if normalized is not None and not isinstance(normalized, bool):
        raise ModelError(f"{where} normalized must be true or false, got {normalized!r}")
    name = item.get("name") or ""
    if not isinstance(name, str):
        raise ModelError(f"{where} name must be text, got {name!r}")
    return OutputConfig(kind, decoder, shape, dims, quantization, anchors, normalized, name)


def _parse_quantization(value: Any, where: str) -> tuple[float, int]:
    if not _is_list(value) or len(value) != 2:
        raise ModelError(f"{where} quantization must be [scale, zero_point], got {value!r}")
    scale, zero_point = _positive(value[0]), _whole(value[1], *_INT32)
    if scale is None:
        raise ModelError(f"{where} quantization scale must be a finite number above 0, got {value[0]!r}")
    if zero_point is None:
        raise ModelError(f"{where} quantization zero point must be a whole number {_INT32[0]}..{_INT32[1]}, "
                         f"got {value[1]!r}")
    return scale, zero_point


def _parse_anchors(value: Any, where: str) -> tuple[tuple[float, float], ...]:
    problem = ModelError(f"{where} anchors must be a list of [width, height] pairs of finite numbers above 0 "
                         f"(at most {MAX_ANCHORS})")
    if not _is_list(value) or len(value) > MAX_ANCHORS:
        raise problem
    anchors = []
    for pair in value:
        if not _is_list(pair) or len(pair) != 2:
            raise problem
        width, height = _positive(pair[0]), _positive(pair[1])
        if width is None or height is None:
            raise problem
        anchors.append((width, height))
    return tuple(anchors)


def _int_list(values: Any, where: str) -> tuple[int, ...]:
    sizes = [_whole(v, 0, _INT32[1]) for v in values] if _is_list(values) and len(values) <= MAX_RANK else [None]
    if any(size is None for size in sizes):
        raise ModelError(f"{where} must be a list of whole numbers 0..{_INT32[1]} (at most {MAX_RANK}), "
                         f"got {values!r}")
    return tuple(size for size in sizes if size is not None)


def _parse_dshape(entries: Any, where: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
    if not _is_list(entries) or len(entries) > MAX_RANK:
        raise ModelError(f"{where} dshape must be a list of {{name: size}} or [name, size], got {entries!r}")
    names: list[str] = []
    sizes: list[int] = []
    for entry in entries:
        if isinstance(entry, Mapping) and len(entry) == 1:
            name, size = next(iter(entry.items()))
        elif _is_list(entry) and len(entry) == 2:
            name, size = entry
        else:
            raise ModelError(f"{where} dshape must be a list of {{name: size}} or [name, size], got {entry!r}")
        if str(name) not in DIM_NAMES:
            raise ModelError(f"{where} dshape has unknown dimension {name!r}; known: {', '.join(DIM_NAMES)}")
        whole = _whole(size, 0, _INT32[1])
        if whole is None:
            raise ModelError(f"{where} dshape {name} must be a whole number 0..{_INT32[1]}, got {size!r}")
        names.append(str(name))
        sizes.append(whole)
    return tuple(names), tuple(sizes)
