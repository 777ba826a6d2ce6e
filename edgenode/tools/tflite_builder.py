"""Build small TFLite models without TensorFlow, for tests, demos and fixtures.

A writer for the part of the TFLite schema (``schema.fbs``, file identifier ``TFL3``) these models
use, on the ``flatbuffers`` package's ``Builder``: it needs neither TFLite runtime, so the demo and
the tests build their models under ``ai_edge_litert`` and the board's ``tflite_runtime`` alike
(``edgenode.core.tflite_flatbuffer`` is the matching reader). A model is one subgraph of tensors
(float or per-tensor quantised, optionally holding constant data), builtin operators with their
options, inputs and outputs, plus named metadata buffers (``TFLITE_METADATA`` and others) and files
appended as a ZIP archive (``labels.txt``, ``edgefirst.yaml``), as TFLite converters and EdgeFirst
Studio store them.

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

Operator options are given by the schema's table and field names::

    builder.add_operator("CONV_2D", [x, w, b], [y],
                         options("Conv2DOptions", padding="SAME", stride_w=1, stride_h=1,
                                 fused_activation_function="RELU"))
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import flatbuffers
import numpy as np

# Numbers from the TFLite schema (tensorflow/compiler/mlir/lite/schema/schema.fbs): a tensor's type...
_TENSOR_TYPES = {np.dtype(np.float32): 0, np.dtype(np.float16): 1, np.dtype(np.int32): 2, np.dtype(np.uint8): 3,
                 np.dtype(np.int64): 4, np.dtype(np.bool_): 6, np.dtype(np.int16): 7, np.dtype(np.int8): 9,
                 np.dtype(np.float64): 10, np.dtype(np.uint32): 15, np.dtype(np.uint16): 16}
# ...the builtin operators a builder may use (``BuiltinOperator``)...
BUILTIN_OPERATORS = {
    "ADD": 0, "AVERAGE_POOL_2D": 1, "CONCATENATION": 2, "CONV_2D": 3, "DEPTHWISE_CONV_2D": 4, "DEQUANTIZE": 6,
    "FULLY_CONNECTED": 9, "LOGISTIC": 14, "MAX_POOL_2D": 17, "MUL": 18, "RELU": 19, "RELU6": 21, "RESHAPE": 22,
    "RESIZE_BILINEAR": 23, "SOFTMAX": 25, "TANH": 28, "PAD": 34, "GATHER": 36, "TRANSPOSE": 39, "MEAN": 40,
    "SUB": 41, "DIV": 42, "SQUEEZE": 43, "STRIDED_SLICE": 45, "EXP": 47, "SPLIT": 49, "CAST": 53, "MAXIMUM": 55,
    "ARG_MAX": 56, "MINIMUM": 57, "SLICE": 65, "SUM": 74, "SQRT": 75, "REDUCE_MAX": 82, "PACK": 83,
    "RESIZE_NEAREST_NEIGHBOR": 97, "LEAKY_RELU": 98, "ABS": 101, "QUANTIZE": 114, "HARD_SWISH": 117,
}
# ...and the enums options use.
_PADDING = {"SAME": 0, "VALID": 1}
_ACTIVATION = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3, "TANH": 4, "SIGN_BIT": 5}


@dataclass(frozen=True)
class _Field:
    slot: int
    kind: str  # "byte" (an enum), "int", "bool", "float" or "ints" (a vector of int32)
    default: float = 0
    enum: Mapping[str, int] | None = None


def _fields(*specs: tuple[str, str] | tuple[str, str, float]) -> dict[str, _Field]:
    """Fields in the schema's declaration order (their slots); an enum kind names its table."""
    enums: dict[str, Mapping[str, int]] = {"padding": _PADDING, "activation": _ACTIVATION}
    table = {}
    for slot, (name, kind, *default) in enumerate(specs):
        enum = enums.get(kind)
        table[name] = _Field(slot, "byte" if enum else kind, default[0] if default else 0, enum)
    return table


_ACT = ("fused_activation_function", "activation")
# Options tables: name -> (its ``BuiltinOptions`` union code, its fields).
OPTIONS: dict[str, tuple[int, dict[str, _Field]]] = {
    "Conv2DOptions": (1, _fields(("padding", "padding"), ("stride_w", "int"), ("stride_h", "int"), _ACT,
                                 ("dilation_w_factor", "int", 1), ("dilation_h_factor", "int", 1))),
    "DepthwiseConv2DOptions": (2, _fields(("padding", "padding"), ("stride_w", "int"), ("stride_h", "int"),
                                          ("depth_multiplier", "int"), _ACT, ("dilation_w_factor", "int", 1),
                                          ("dilation_h_factor", "int", 1))),
    "Pool2DOptions": (5, _fields(("padding", "padding"), ("stride_w", "int"), ("stride_h", "int"),
                                 ("filter_width", "int"), ("filter_height", "int"), _ACT)),
    "FullyConnectedOptions": (8, _fields(_ACT, ("weights_format", "int"), ("keep_num_dims", "bool"))),
    "SoftmaxOptions": (9, _fields(("beta", "float"))),
    "ConcatenationOptions": (10, _fields(("axis", "int"), _ACT)),
    "AddOptions": (11, _fields(_ACT)),
    "ReshapeOptions": (17, _fields(("new_shape", "ints"))),
    "MulOptions": (21, _fields(_ACT)),
    "ReducerOptions": (27, _fields(("keep_dims", "bool"))),
    "SubOptions": (28, _fields(_ACT)),
    "DivOptions": (29, _fields(_ACT)),
    "StridedSliceOptions": (32, _fields(("begin_mask", "int"), ("end_mask", "int"), ("ellipsis_mask", "int"),
                                        ("new_axis_mask", "int"), ("shrink_axis_mask", "int"))),
    "SplitOptions": (35, _fields(("num_splits", "int"))),
}


@dataclass(frozen=True)
class Options:
    """An operator's builtin options: a table of :data:`OPTIONS` and its field values."""

    table: str
    values: tuple[tuple[str, Any], ...]


def options(table: str, **values: Any) -> Options:
    """Builtin options by the schema's names, e.g. ``options("Pool2DOptions", padding="VALID", stride_w=2)``.

    Enum fields (``padding``, ``fused_activation_function``) take the enum's name; unknown tables,
    fields and names raise ``ValueError`` here rather than making a model TFLite rejects later.
    """
    if table not in OPTIONS:
        raise ValueError(f"unsupported TFLite options table {table!r} (known: {', '.join(sorted(OPTIONS))})")
    fields = OPTIONS[table][1]
    for name, value in values.items():
        spec = fields.get(name)
        if spec is None:
            raise ValueError(f"{table} has no field {name!r} (fields: {', '.join(fields)})")
        if spec.enum is not None and value not in spec.enum:
            raise ValueError(f"{table}.{name} must be one of {', '.join(spec.enum)}, not {value!r}")
    return Options(table, tuple(values.items()))


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
    _operators: list[tuple[str, int, list[int], list[int], Options | None]] = field(default_factory=list)
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
            buffer = self.add_buffer(array.astype(array.dtype.newbyteorder("<"), copy=False))
        self._tensors.append(_Tensor(name, tuple(int(s) for s in shape), kind, buffer, scale, zero_point))
        return len(self._tensors) - 1

    def add_operator(self, op: str, inputs: Sequence[int], outputs: Sequence[int], options: Options | None = None,
                     version: int = 1) -> None:
        """A builtin operator by name (``"RESHAPE"``, ``"FULLY_CONNECTED"``...) with its :func:`options`.

        The RESHAPE options are filled from the output shape when omitted.
        """
        if op not in BUILTIN_OPERATORS:
            raise ValueError(f"unknown TFLite builtin operator {op!r} (this builder knows "
                             f"{', '.join(sorted(BUILTIN_OPERATORS))})")
        if options is not None and not isinstance(options, Options):
            raise TypeError(f"options must come from tflite_builder.options(), not {type(options).__name__}")
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
        size = sum(len(raw) + 32 for raw in self._buffers) + 1024 * (len(self._tensors) + len(self._operators) + 1)
        writer = _Writer(flatbuffers.Builder(size))
        codes: list[tuple[str, int]] = []
        operators = []
        for op, version, inputs, outputs, given in self._operators:
            if (op, version) not in codes:
                codes.append((op, version))
            chosen = given
            if chosen is None and op == "RESHAPE":
                chosen = options("ReshapeOptions", new_shape=list(self._tensors[outputs[0]].shape))
            operators.append(writer.operator(codes.index((op, version)), inputs, outputs, chosen))
        # Tables and vectors are written before the tables that point at them.
        buffers = [writer.table([(0, "bytes", raw)] if raw else []) for raw in self._buffers]
        tensors = [writer.tensor(t) for t in self._tensors]
        subgraph = writer.table([(0, "tables", tensors), (1, "ints", self._inputs), (2, "ints", self._outputs),
                                 (3, "tables", operators)])
        op_codes = [writer.table([(0, "byte", min(BUILTIN_OPERATORS[op], 127)), (2, "int", version, 1),
                                  (3, "int", BUILTIN_OPERATORS[op])]) for op, version in codes]
        metadata = [writer.table([(0, "string", name), (1, "uint", index)]) for name, index in self._metadata]
        model = writer.table([(0, "uint", 3), (1, "tables", op_codes), (2, "tables", [subgraph]),
                              (3, "string", self.description), (4, "tables", buffers), (6, "tables", metadata)])
        writer.builder.Finish(model, file_identifier=b"TFL3")
        flat = bytes(writer.builder.Output())
        return flat + zip_archive(self._files) if self._files else flat


class _Writer:
    """Writes tables from ``(slot, kind, value[, default])`` fields, out-of-line values first as flatbuffers
    requires. Kinds: scalars (``byte``, ``ubyte``, ``bool``, ``int``, ``uint``, ``float``), a ``string``,
    ``bytes`` (a ubyte vector), vectors of ``ints``, ``floats``, ``longs`` and ``tables`` (offsets), and an
    ``offset`` to a table already written."""

    def __init__(self, builder: Any) -> None:
        self.builder = builder

    def table(self, fields: Sequence[tuple[Any, ...]]) -> int:
        b = self.builder
        offsets = [(spec[0], spec[1], self._child(spec[1], spec[2]), *spec[3:]) for spec in fields]
        b.StartObject(max((spec[0] for spec in fields), default=-1) + 1)
        for slot, kind, value, *default in offsets:
            fallback = default[0] if default else 0
            if kind in ("string", "bytes", "tables", "ints", "floats", "longs", "offset"):
                b.PrependUOffsetTRelativeSlot(slot, value, 0)
            elif kind == "byte":
                b.PrependInt8Slot(slot, int(value), int(fallback))
            elif kind == "ubyte":
                b.PrependUint8Slot(slot, int(value), int(fallback))
            elif kind == "bool":
                b.PrependBoolSlot(slot, bool(value), bool(fallback))
            elif kind == "int":
                b.PrependInt32Slot(slot, int(value), int(fallback))
            elif kind == "uint":
                b.PrependUint32Slot(slot, int(value), int(fallback))
            elif kind == "float":
                b.PrependFloat32Slot(slot, float(value), float(fallback))
            else:  # pragma: no cover - a mistake in this module
                raise AssertionError(kind)
        return int(b.EndObject())

    def _child(self, kind: str, value: Any) -> Any:
        """Writes a field's out-of-line value (string, vector) and returns its offset; scalars pass through."""
        b = self.builder
        if kind == "string":
            return b.CreateString(value)
        if kind == "bytes":  # Buffer.data: aligned to 16 bytes, as the schema asks (force_align: 16)
            b.Prep(16, len(value))
            return b.CreateByteVector(value)
        if kind in ("ints", "floats", "longs"):
            dtype = {"ints": "<i4", "floats": "<f4", "longs": "<i8"}[kind]
            return b.CreateNumpyVector(np.asarray(value, dtype))
        if kind == "tables":
            b.StartVector(4, len(value), 4)
            for offset in reversed(value):
                b.PrependUOffsetTRelative(offset)
            return b.EndVector()
        return value

    def tensor(self, tensor: _Tensor) -> int:
        fields: list[tuple[Any, ...]] = [(0, "ints", list(tensor.shape)), (1, "byte", _TENSOR_TYPES[tensor.dtype]),
                                         (2, "uint", tensor.buffer), (3, "string", tensor.name)]
        if tensor.scale is not None:
            fields.append((4, "offset", self.table([(2, "floats", [float(tensor.scale)]),
                                                    (3, "longs", [int(tensor.zero_point)])])))
        return self.table(fields)

    def operator(self, code: int, inputs: Sequence[int], outputs: Sequence[int], given: Options | None) -> int:
        fields: list[tuple[Any, ...]] = [(0, "uint", code), (1, "ints", list(inputs)), (2, "ints", list(outputs))]
        if given is not None:
            union, spec = OPTIONS[given.table]
            values = []
            for name, value in given.values:
                item = spec[name]
                values.append((item.slot, item.kind, item.enum[value] if item.enum else value, item.default))
            fields += [(3, "ubyte", union), (4, "offset", self.table(values))]
        return self.table(fields)


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
