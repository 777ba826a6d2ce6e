"""A loaded model without TFLite for the node's tests: a runtime that records its inputs, a decoder that
returns the detections it is given."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edgenode.core.detections import Detections
from edgenode.core.model_description import ModelDescription
from edgenode.core.tensors import TensorSpec
from edgenode.node.model_loading import LoadedModel

INPUT = TensorSpec("images", (1, 32, 32, 3), np.dtype(np.uint8))
OUTPUT = TensorSpec("output0", (1, 6, 10), np.dtype(np.float32), index=1)


class FakeRuntime:
    """A TFLiteRuntime's interface: ``invoke`` sums the input into a one-value output."""

    runtime = "fake"
    delegate = None
    threads = 1

    def __init__(self, spec: TensorSpec = INPUT) -> None:
        self.inputs = [spec]
        self.outputs = [OUTPUT]
        self.tensor = np.zeros(spec.shape, spec.dtype)
        self.copies = 0
        self.invokes = 0
        self._output = np.zeros((1,), np.int64)

    def input_view(self, index: int = 0) -> np.ndarray:
        return self.tensor

    def set_input(self, values: np.ndarray, index: int = 0) -> None:
        self.copies += 1
        np.copyto(self.tensor, values, casting="unsafe")

    def invoke(self) -> None:
        self.invokes += 1
        self._output[0] = int(self.tensor.sum())

    def output_views(self) -> list[np.ndarray]:
        return [self._output]


def detections(boxes: Sequence[Sequence[float]], scores: Sequence[float], classes: Sequence[int],
               semantic_mask: np.ndarray | None = None) -> Detections:
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32),
                      np.array(classes, np.int32), None, semantic_mask)


class FixedDecoder:
    """Returns ``found`` for every frame (a fresh copy), counting calls."""

    layout: Any = None
    params: Any = None

    def __init__(self, found: Detections) -> None:
        self.found = found
        self.calls = 0

    def decode(self, outputs: Sequence[np.ndarray]) -> Detections:
        self.calls += 1
        found = self.found
        return Detections(found.boxes.copy(), found.scores.copy(), found.classes.copy(), found.instance_masks,
                          found.semantic_mask)


def fake_model(found: Detections, *, model_types: str = "Detection", labels: tuple[str, ...] = ("person", "car"),
               name: str = "fake-model") -> LoadedModel:
    description = ModelDescription(name, "TFLite", model_types, (INPUT,), (OUTPUT,), labels)
    return LoadedModel(FakeRuntime(), FixedDecoder(found), description)  # type: ignore[arg-type]
