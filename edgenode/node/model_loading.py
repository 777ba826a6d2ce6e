"""Load a model for the pipeline: file metadata, decoder plan, runtime (with delegate), description.

The decoder plan is resolved from the file's own tensor list before the runtime loads, so a model
that cannot be decoded fails at once instead of after the NPU's first graph compile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edgenode.adapters.model_file import read_config_file, read_model_file
from edgenode.adapters.tflite import TFLiteRuntime, load_runtime
from edgenode.config import DecodeSettings, ModelSettings
from edgenode.core.decoder_factory import decode_params, decoder_for
from edgenode.core.decoding import Decoder
from edgenode.core.model_description import ModelDescription, model_format, model_name
from edgenode.core.model_layout import Layout, describe_outputs, resolve_layout
from edgenode.core.semantic_masks import mask_classes_problem
from edgenode.core.tensors import TensorSpec
from edgenode.logs import get_logger


def _log() -> Any:
    """This module's logger, looked up when used (so tests can capture it)."""
    return get_logger("edgenode.model")


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to run: ``runtime`` (input, invoke, outputs), ``decoder`` and ``description``."""

    runtime: TFLiteRuntime
    decoder: Decoder
    description: ModelDescription

    @property
    def layout(self) -> Layout:
        return self.decoder.layout


def load_model(model: ModelSettings, decode: DecodeSettings, mask_classes: Sequence[int] = ()) -> LoadedModel:
    """Load ``model.path`` as the settings say; raises ``ModelError`` (one line) when it cannot be used.

    ``--classes`` and ``--mask-classes`` that the model does not have are warned about, naming the flag.
    """
    file = read_model_file(model.path)
    config = read_config_file(model.edgefirst_config) if model.edgefirst_config else file.embedded_config()
    labels = file.labels()
    hint = file.end_to_end()

    def plan(inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]) -> Layout:
        return resolve_layout(config, inputs, outputs, family=model.decoder, ssd=model.ssd, end_to_end=hint)

    layout = plan(file.inputs, file.outputs)
    params = decode_params(layout, threshold=decode.threshold, iou=decode.iou, max_boxes=decode.max_boxes,
                           nms=decode.nms, classes=decode.classes, label_offset=decode.label_offset, labels=labels,
                           warn=_log().warning)
    channels = layout.get("segmentation").shape[-1] if layout.has("segmentation") else None
    problem = mask_classes_problem(mask_classes, channels)
    if problem:
        _log().warning(problem)
    runtime = load_runtime(model.path, model)
    if [(s.name, s.shape) for s in runtime.outputs] != [(s.name, s.shape) for s in file.outputs]:
        layout = plan(runtime.inputs, runtime.outputs)
    description = ModelDescription(model_name(file.metadata_name, model.path.name), model_format(model.path.name),
                                   layout.model_types, tuple(runtime.inputs), tuple(runtime.outputs), labels,
                                   decode.label_offset)
    _log().info(f"decoding {layout.kind} ({layout.version}, {layout.num_classes or len(labels)} classes) from "
             f"{layout.source}; outputs {describe_outputs(runtime.outputs)}")
    return LoadedModel(runtime, decoder_for(layout, params), description)
