"""Build small TFLite models without TensorFlow, for tests, demos and fixtures.

Uses the flatbuffer object API that ``ai_edge_litert`` ships (``schema_py_generated``), imported
lazily, so this module costs nothing unless used. A model is one subgraph of tensors (float or
per-tensor quantised, optionally holding constant data), builtin operators, inputs and outputs,
plus named metadata buffers (``TFLITE_METADATA`` and others) and files appended as a ZIP archive
(``labels.txt``, ``edgefirst.yaml``), as TFLite converters and EdgeFirst Studio store them.

Example, an identity model whose output is its input reshaped::

    builder = ModelBuilder()
    x = builder.add_tensor("input", [1, 6, 8400], np.float32)
    y = builder.add_tensor("output", [1, 6, 8400], np.float32)
    shape = builder.add_tensor("shape", [3], np.int32, data=np.array([1, 6, 8400], np.int32))
    builder.add_operator("RESHAPE", [x, shape], [y])
    builder.set_io([x], [y])
    builder.add_metadata("TFLITE_METADATA", model_metadata("echo"))
    builder.add_file("labels.txt", "person\\ncar\\n")
    Path("echo.tflite").write_bytes(builder.build())
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_TENSOR_TYPES = {np.dtype(np.float32): "FLOAT32", np.dtype(np.float16): "FLOAT16", np.dtype(np.int32): "INT32",
                 np.dtype(np.uint8): "UINT8", np.dtype(np.int64): "INT64", np.dtype(np.int16): "INT16",
                 np.dtype(np.int8): "INT8", np.dtype(np.float64): "FLOAT64", np.dtype(np.bool_): "BOOL",
                 np.dtype(np.uint16): "UINT16", np.dtype(np.uint32): "UINT32"}


def _schema() -> Any:
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("building TFLite models needs ai-edge-litert (pip install ai-edge-litert)") from exc
    return schema_py_generated


@dataclass
class _Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    buffer: int
    scale: float | None
    zero_point: int


@dataclass
class ModelBuilder:
    """Accumulates one subgraph, then :meth:`build` returns the ``.tflite`` bytes (ZIP appended)."""

    description: str = "built by edgenode.tools.tflite_builder"
    _tensors: list[_Tensor] = field(default_factory=list)
    _buffers: list[bytes] = field(default_factory=lambda: [b""])  # buffer 0: the empty sentinel
    _operators: list[tuple[str, int, list[int], list[int], Any]] = field(default_factory=list)
    _inputs: list[int] = field(default_factory=list)
    _outputs: list[int] = field(default_factory=list)
    _metadata: list[tuple[str, int]] = field(default_factory=list)
    _files: list[tuple[str, bytes]] = field(default_factory=list)

    def add_buffer(self, data: bytes | np.ndarray = b"") -> int:
        """A raw buffer (constant data or metadata); returns its index."""
        raw = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
        self._buffers.append(raw)
        return len(self._buffers) - 1

    def add_tensor(self, name: str, shape: Sequence[int], dtype: Any, *, data: np.ndarray | None = None,
                   scale: float | None = None, zero_point: int = 0) -> int:
        """A tensor (constant when ``data`` is given; per-tensor quantised when ``scale`` is); returns its index."""
        kind = np.dtype(dtype)
        if kind not in _TENSOR_TYPES:
            raise ValueError(f"unsupported tensor type {kind}")
        buffer = 0
        if data is not None:
            array = np.ascontiguousarray(data, dtype=kind)
            if tuple(array.shape) != tuple(shape) and array.size != int(np.prod(shape)):
                raise ValueError(f"data of shape {array.shape} does not fill tensor {name!r} {list(shape)}")
            buffer = self.add_buffer(array)
        self._tensors.append(_Tensor(name, tuple(int(s) for s in shape), kind, buffer, scale, zero_point))
        return len(self._tensors) - 1

    def add_operator(self, op: str, inputs: Sequence[int], outputs: Sequence[int], options: Any = None,
                     version: int = 1) -> None:
        """A builtin operator by name (``"RESHAPE"``, ``"FULLY_CONNECTED"``...).

        ``options`` is the schema's options object (e.g. ``schema.FullyConnectedOptionsT()``); the
        RESHAPE options are filled from the output shape when omitted.
        """
        if not hasattr(_schema().BuiltinOperator, op):
            raise ValueError(f"unknown TFLite builtin operator {op!r}")
        self._operators.append((op, version, list(inputs), list(outputs), options))

    def set_io(self, inputs: Sequence[int], outputs: Sequence[int]) -> None:
        """The subgraph's input and output tensors, in order."""
        self._inputs, self._outputs = list(inputs), list(outputs)

    def add_metadata(self, name: str, data: bytes) -> None:
        """A named metadata buffer (``TFLITE_METADATA``, ``min_runtime_version``...)."""
        self._metadata.append((name, self.add_buffer(data)))

    def add_file(self, name: str, data: bytes | str) -> None:
        """A file for the ZIP archive appended after the flatbuffer."""
        self._files.append((name, data.encode() if isinstance(data, str) else bytes(data)))

    def build(self) -> bytes:
        """The model: flatbuffer, then the ZIP archive when files were added."""
        schema = _schema()
        from ai_edge_litert.tools.flatbuffer_utils import convert_object_to_bytearray

        model = schema.ModelT()
        model.version = 3
        model.description = self.description
        codes: list[tuple[str, int]] = []
        subgraph = schema.SubGraphT()
        subgraph.tensors = [self._tensor_object(schema, t) for t in self._tensors]
        subgraph.inputs, subgraph.outputs = list(self._inputs), list(self._outputs)
        subgraph.operators = []
        for op, version, inputs, outputs, given in self._operators:
            if (op, version) not in codes:
                codes.append((op, version))
            operator = schema.OperatorT()
            operator.opcodeIndex = codes.index((op, version))
            operator.inputs, operator.outputs = inputs, outputs
            options = given
            if options is None and op == "RESHAPE":
                options = schema.ReshapeOptionsT()
                options.newShape = list(self._tensors[outputs[0]].shape)
            if options is not None:
                operator.builtinOptionsType = getattr(schema.BuiltinOptions, type(options).__name__[:-1])
                operator.builtinOptions = options
            subgraph.operators.append(operator)
        model.subgraphs = [subgraph]
        model.operatorCodes = []
        for op, version in codes:
            code = schema.OperatorCodeT()
            code.builtinCode = getattr(schema.BuiltinOperator, op)
            code.deprecatedBuiltinCode = min(code.builtinCode, 127)
            code.version = version
            model.operatorCodes.append(code)
        model.buffers = []
        for raw in self._buffers:
            buffer = schema.BufferT()
            buffer.data = np.frombuffer(raw, np.uint8) if raw else None
            model.buffers.append(buffer)
        model.metadata = []
        for name, index in self._metadata:
            entry = schema.MetadataT()
            entry.name, entry.buffer = name, index
            model.metadata.append(entry)
        flat = bytes(convert_object_to_bytearray(model))
        return flat + zip_archive(self._files) if self._files else flat

    @staticmethod
    def _tensor_object(schema: Any, tensor: _Tensor) -> Any:
        item = schema.TensorT()
        item.name = tensor.name
        item.shape = list(tensor.shape)
        item.type = getattr(schema.TensorType, _TENSOR_TYPES[tensor.dtype])
        item.buffer = tensor.buffer
        if tensor.scale is not None:
            quantization = schema.QuantizationParametersT()
            quantization.scale = [float(tensor.scale)]
            quantization.zeroPoint = [int(tensor.zero_point)]
            item.quantization = quantization
        return item


def zip_archive(files: Sequence[tuple[str, bytes]]) -> bytes:
    """A stored (uncompressed) ZIP of ``(name, data)`` pairs, as appended to TFLite models."""
    stream = io.BytesIO()
    with zipfile.ZipFile(stream, "w", zipfile.ZIP_STORED) as archive:
        for name, data in files:
            archive.writestr(name, data)
    return stream.getvalue()


def model_metadata(name: str, description: str = "", version: str = "", author: str = "",
                   license_text: str = "") -> bytes:
    """A ``TFLITE_METADATA`` buffer: the TFLite Support ``ModelMetadata`` table (file id ``M001``)."""
    import flatbuffers  # type: ignore[import-untyped]

    builder = flatbuffers.Builder(256)
    strings = [builder.CreateString(text) if text else 0 for text in (name, description, version, author,
                                                                       license_text)]
    builder.StartObject(8)
    for slot, offset in zip((0, 1, 2, 4, 5), strings, strict=True):
        if offset:
            builder.PrependUOffsetTRelativeSlot(slot, offset, 0)
    root = builder.EndObject()
    builder.Finish(root, file_identifier=b"M001")
    return bytes(builder.Output())


@dataclass(frozen=True)
class TensorDef:
    """A tensor to create: name, shape, type and optional per-tensor quantisation."""

    name: str
    shape: tuple[int, ...]
    dtype: Any = np.float32
    scale: float | None = None
    zero_point: int = 0


def echo_model(outputs: Sequence[TensorDef], output_order: Sequence[int] = ()) -> ModelBuilder:
    """A model with one input per output (``<name>_in``), each RESHAPEd to that output unchanged.

    Tests write the output tensors they want a decoder to see into the inputs. ``output_order``
    lists the subgraph's outputs by position in ``outputs`` (default: the same order), to mimic
    converters that emit outputs in a surprising order.
    """
    builder = ModelBuilder()
    inputs, created = [], []
    for out in outputs:
        x = builder.add_tensor(f"{out.name}_in", out.shape, out.dtype, scale=out.scale, zero_point=out.zero_point)
        y = builder.add_tensor(out.name, out.shape, out.dtype, scale=out.scale, zero_point=out.zero_point)
        shape = builder.add_tensor(f"{out.name}_shape", [len(out.shape)], np.int32,
                                   data=np.array(out.shape, np.int32))
        builder.add_operator("RESHAPE", [x, shape], [y])
        inputs.append(x)
        created.append(y)
    order = list(output_order) or list(range(len(outputs)))
    builder.set_io(inputs, [created[i] for i in order])
    return builder
