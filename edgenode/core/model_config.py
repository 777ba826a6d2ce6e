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


def parse_config_text(text: str, source: str, json_format: bool = False) -> ModelConfig:
    """Parse ``edgefirst.yaml`` (or JSON) text; ``source`` names it in error messages."""
    try:
        data = json.loads(text) if json_format else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{source} is not valid {'JSON' if json_format else 'YAML'}: {first}") from None
    if not isinstance(data, Mapping):
        raise ModelError(f"{source} must be a mapping with an 'outputs' list, got {type(data).__name__}")
    return parse_config(data, source)


def parse_config(data: Mapping[str, Any], source: str) -> ModelConfig:
    """A :class:`ModelConfig` from the parsed mapping; raises :class:`ModelError` naming the bad key."""
    raw_outputs = data.get("outputs")
    if not isinstance(raw_outputs, Sequence) or isinstance(raw_outputs, str) or not raw_outputs:
        raise ModelError(f"{source} has no 'outputs' list describing the model outputs")
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
        q = item["quantization"]
        try:
            scale, zero_point = float(q[0]), int(q[1])
        except (TypeError, ValueError, IndexError, KeyError):
            raise ModelError(f"{where} quantization must be [scale, zero_point], got {q!r}") from None
        quantization = (scale, zero_point)
    anchors: tuple[tuple[float, float], ...] = ()
    if item.get("anchors"):
        try:
            anchors = tuple((float(a[0]), float(a[1])) for a in item["anchors"])
        except (TypeError, ValueError, IndexError, KeyError):
            raise ModelError(f"{where} anchors must be a list of [width, height] pairs") from None
    normalized = item.get("normalized")
    return OutputConfig(kind, decoder, shape, dims, quantization, anchors,
                        None if normalized is None else bool(normalized), str(item.get("name") or ""))


def _int_list(values: Any, where: str) -> tuple[int, ...]:
    try:
        result = tuple(int(v) for v in values)
    except (TypeError, ValueError):
        raise ModelError(f"{where} must be a list of integers, got {values!r}") from None
    if any(v < 0 for v in result):
        raise ModelError(f"{where} must not be negative, got {list(result)}")
    return result


def _parse_dshape(entries: Any, where: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
    names: list[str] = []
    sizes: list[int] = []
    for entry in entries:
        if isinstance(entry, Mapping) and len(entry) == 1:
            name, size = next(iter(entry.items()))
        elif isinstance(entry, Sequence) and not isinstance(entry, str) and len(entry) == 2:
            name, size = entry
        else:
            raise ModelError(f"{where} dshape entries must be {{name: size}} or [name, size], got {entry!r}")
        if str(name) not in DIM_NAMES:
            raise ModelError(f"{where} dshape has unknown dimension {name!r}; known: {', '.join(DIM_NAMES)}")
        names.append(str(name))
        sizes.append(int(size))
    return tuple(names), tuple(sizes)
