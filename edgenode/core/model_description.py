"""What the node says about its model (EdgeFirst ModelInfo): name, format, types, tensors, labels.

Also the model's own label and name sources, parsed from already-read bytes: ``labels.txt``, the
Ultralytics ``metadata.json`` (``names``, ``end2end``) and the TFLite ``TFLITE_METADATA`` name.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath

import numpy as np

from edgenode.core.tensors import TensorSpec

# edgefirst_msgs/ModelInfo element type codes.
TENSOR_TYPES = {np.dtype(np.int8): 1, np.dtype(np.uint8): 2, np.dtype(np.int16): 3, np.dtype(np.uint16): 4,
                np.dtype(np.float16): 5, np.dtype(np.int32): 6, np.dtype(np.uint32): 7, np.dtype(np.float32): 8,
                np.dtype(np.int64): 9, np.dtype(np.uint64): 10, np.dtype(np.float64): 11}
MODEL_FORMATS = {".tflite": "TFLite", ".rtm": "DeepViewRT", ".rknn": "RKNN", ".hef": "HailoRT"}


def label_for(labels: Sequence[str], class_index: int, label_offset: int = 0) -> str:
    """The label of a decoded class: ``labels[class_index + label_offset]``, else that index as text."""
    position = class_index + label_offset
    return labels[position] if 0 <= position < len(labels) else str(position)


def tensor_type(dtype: np.dtype | type) -> int:
    """ModelInfo type code of ``dtype`` (0, RAW, when it has none)."""
    return TENSOR_TYPES.get(np.dtype(dtype), 0)


def model_format(file_name: str) -> str:
    """``TFLite`` for ``.tflite`` (EdgeFirst names for the others), the extension itself otherwise."""
    suffix = PurePath(file_name).suffix
    if not suffix:
        return "unknown"
    return MODEL_FORMATS.get(suffix.lower(), suffix[1:])


def model_name(metadata_name: str, file_name: str) -> str:
    """The TFLite metadata name when it has one, else the file name with its extension (as EdgeFirst)."""
    return metadata_name.strip() or PurePath(file_name).name


def parse_labels(text: str) -> tuple[str, ...]:
    """``labels.txt``: one label per line; trailing blank lines dropped, inner ones kept as ``""``."""
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return tuple(lines)


def ultralytics_metadata(text: str) -> Mapping[str, object]:
    """The Ultralytics export ``metadata.json`` as a mapping (empty when unreadable)."""
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, Mapping) else {}


def ultralytics_labels(metadata: Mapping[str, object]) -> tuple[str, ...]:
    """Class names from Ultralytics ``names`` (``{"0": "person", ...}`` or a list); gaps become indices."""
    names = metadata.get("names")
    if isinstance(names, Sequence) and not isinstance(names, str):
        return tuple(str(n) for n in names)
    if not isinstance(names, Mapping):
        return ()
    try:
        indexed = {int(k): str(v) for k, v in names.items()}
    except (TypeError, ValueError):
        return ()
    if not indexed or min(indexed) < 0:
        return ()
    return tuple(indexed.get(i, str(i)) for i in range(max(indexed) + 1))


def ultralytics_end_to_end(metadata: Mapping[str, object]) -> bool | None:
    """Ultralytics ``end2end`` (or an export with ``args.nms``): the head outputs final boxes."""
    args = metadata.get("args")
    if isinstance(args, Mapping) and args.get("nms") is True:
        return True
    value = metadata.get("end2end")
    return value if isinstance(value, bool) else None


@dataclass(frozen=True)
class ModelDescription:
    """The model as ModelInfo describes it; ``label_for`` applies ``--label-offset``."""

    name: str
    model_format: str
    model_types: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    labels: tuple[str, ...]
    label_offset: int = 0

    def label_for(self, class_index: int) -> str:
        return label_for(self.labels, class_index, self.label_offset)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.inputs[0].shape if self.inputs else ()

    @property
    def input_type(self) -> int:
        return tensor_type(self.inputs[0].dtype) if self.inputs else 0

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Output 0's shape, as EdgeFirst reports it."""
        return self.outputs[0].shape if self.outputs else ()

    @property
    def output_type(self) -> int:
        return tensor_type(self.outputs[0].dtype) if self.outputs else 0
