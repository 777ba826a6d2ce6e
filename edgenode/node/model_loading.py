"""Load a model for the pipeline: file metadata, decoder plan, runtime (with delegate), description.

The decoder plan is resolved from the file's own tensor list before the runtime loads, so a model
that cannot be decoded fails at once instead of after the NPU's first graph compile.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edgenode.adapters.model_file import read_config_file, read_model_file
from edgenode.adapters.tflite import TFLiteRuntime, load_runtime
from edgenode.config import DecodeSettings, ModelSettings
from edgenode.core.decoder_factory import decode_params, decoder_for
from edgenode.core.decoding import Decoder
from edgenode.core.fairness import batch_pays
from edgenode.core.model_config import ModelError
from edgenode.core.model_description import ModelDescription, model_format, model_name
from edgenode.core.model_layout import Layout, describe_outputs, resolve_layout
from edgenode.core.semantic_masks import mask_classes_problem
from edgenode.core.tensors import TensorSpec, one_frame
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


def _invoke_seconds(runtime: TFLiteRuntime, repeats: int = 2) -> float:
    """The best of ``repeats`` invokes on whatever the input holds, after one that is not timed."""
    runtime.invoke()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        runtime.invoke()
        best = min(best, time.perf_counter() - started)
    return best


def choose_batch(runtime: TFLiteRuntime, setting: int, streams: int) -> int:
    """Frames of different streams per invoke, the runtime's input resized to it (``setting``: ``--batch``,
    0 = auto). A model whose input takes several frames takes them; with one stream, or ``--batch 1``, one.
    Otherwise the input is resized to as many frames as there are streams (at most ``setting``), and with auto
    kept so only when one invoke of them measured clearly faster per frame than single invokes (one line);
    auto resizes nothing on a delegate."""
    spec = runtime.inputs[0]
    native = spec.shape[0] if spec.shape else 1
    if native > 1:
        _log().info(f"batch: the model takes {native} frames an invoke")
        return native
    if streams < 2 or setting == 1:
        return 1
    if not setting and runtime.delegate is not None:
        # A delegate compiles a graph per input shape (minutes on an NPU) and may refuse one: auto resizes
        # only on the CPU (XNNPACK); a model exported with a batch, or --batch N, batches on a delegate.
        _log().info(f"batch: 1 frame an invoke (auto resizes no model on the {runtime.delegate} delegate: "
                    "export it with a batch, or ask with --batch)")
        return 1
    frames = min(setting or streams, streams)
    try:
        runtime.resize_batch(frames)
    except ModelError as exc:
        _log().info(f"batch: 1 frame an invoke ({exc})")
        return 1
    if setting:
        _log().info(f"batch: {frames} frames an invoke (--batch {setting})")
        return frames
    batched = _invoke_seconds(runtime)
    runtime.resize_batch(1)
    single = _invoke_seconds(runtime)
    pays = batch_pays(single, batched, frames)
    _log().info(f"batch auto: 1 frame {single * 1e3:.1f} ms, {frames} frames {batched * 1e3:.1f} ms "
                f"({batched / frames * 1e3:.1f} ms a frame, {batched / frames / single:.0%} of one alone): "
                f"{frames if pays else 1} frame{'s' if pays else ''} an invoke",
                single_ms=round(single * 1e3, 2), batch_ms=round(batched * 1e3, 2), frames=frames,
                batch=frames if pays else 1)
    if pays:
        runtime.resize_batch(frames)
    return frames if pays else 1


def load_model(model: ModelSettings, decode: DecodeSettings, mask_classes: Sequence[int] = (), *,
               streams: int = 1) -> LoadedModel:
    """Load ``model.path`` as the settings say, for ``streams`` camera streams (which may share a batched
    invoke, :func:`choose_batch`); raises ``ModelError`` (one line) when it cannot be used.

    ``--classes`` and ``--mask-classes`` that the model does not have are warned about, naming the flag.
    """
    file = read_model_file(model.path)
    config = read_config_file(model.edgefirst_config) if model.edgefirst_config else file.embedded_config()
    labels = file.labels()
    hint = file.end_to_end()

    def plan(inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]) -> Layout:  # one frame's slice of each
        return resolve_layout(config, [one_frame(s) for s in inputs], [one_frame(s) for s in outputs],
                              family=model.decoder, ssd=model.ssd, end_to_end=hint)

    layout = plan(file.inputs, file.outputs)
    params = decode_params(layout, threshold=decode.threshold, iou=decode.iou, max_boxes=decode.max_boxes,
                           nms=decode.nms, classes=decode.classes, label_offset=decode.label_offset, labels=labels,
                           warn=_log().warning)
    channels = layout.get("segmentation").shape[-1] if layout.has("segmentation") else None
    problem = mask_classes_problem(mask_classes, channels)
    if problem:
        _log().warning(problem)
    runtime = load_runtime(model.path, model)
    choose_batch(runtime, model.batch, streams)
    if [(s.name, s.shape) for s in runtime.outputs] != [(s.name, s.shape) for s in file.outputs]:
        layout = plan(runtime.inputs, runtime.outputs)
    description = ModelDescription(model_name(file.metadata_name, model.path.name), model_format(model.path.name),
                                   layout.model_types, tuple(runtime.inputs), tuple(runtime.outputs), labels,
                                   decode.label_offset)
    _log().info(f"decoding {layout.kind} ({layout.version}, {layout.num_classes or len(labels)} classes) from "
             f"{layout.source}; outputs {describe_outputs(runtime.outputs)}")
    return LoadedModel(runtime, decoder_for(layout, params), description)
