"""Read the few things the node needs from a TFLite flatbuffer's bytes, with no TFLite library.

The file identifier (``TFL3``), the named metadata buffers (``Model.metadata`` ->
``Model.buffers``) and the ``name`` of a TFLite Support ``ModelMetadata`` (the
``TFLITE_METADATA`` buffer). Every offset is bounds-checked: a truncated or foreign file raises
:class:`FlatbufferError` instead of reading garbage.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from edgenode.core.tensors import TensorSpec

TFLITE_IDENTIFIER = b"TFL3"
# Field slots of the schemas' tables.
_MODEL_SUBGRAPHS, _MODEL_BUFFERS, _MODEL_METADATA = 2, 4, 6
_SUBGRAPH_TENSORS, _SUBGRAPH_INPUTS, _SUBGRAPH_OUTPUTS = 0, 1, 2
_TENSOR_SHAPE, _TENSOR_TYPE, _TENSOR_NAME, _TENSOR_QUANTIZATION = 0, 1, 3, 4
_QUANT_SCALE, _QUANT_ZERO_POINT = 2, 3
# TFLite TensorType codes to numpy types (those a model input or output can have).
TENSOR_TYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 6: np.bool_, 7: np.int16,
                9: np.int8, 10: np.float64, 12: np.uint64, 15: np.uint32, 16: np.uint16}
_METADATA_NAME, _METADATA_BUFFER = 0, 1
_BUFFER_DATA, _BUFFER_OFFSET, _BUFFER_SIZE = 0, 1, 2
_MODEL_METADATA_NAME = 0


class FlatbufferError(ValueError):
    """The bytes are not a (complete) flatbuffer of the expected kind."""


class _Reader:
    """Reads little-endian flatbuffer fields from ``data``: bytes, or any buffer that slices to bytes
    (an ``mmap``); it keeps no buffer exports, so a memory map can be closed after an error."""

    def __init__(self, data: Any) -> None:
        self.data = data

    def _unpack(self, fmt: str, position: int) -> int:
        size = struct.calcsize(fmt)
        if position < 0 or position + size > len(self.data):
            raise FlatbufferError(f"offset {position} is outside the {len(self.data)}-byte buffer")
        value: int = struct.unpack_from(fmt, self.data, position)[0]
        return value

    def unpack(self, fmt: str, position: int) -> int:
        return self._unpack(fmt, position)

    def u32(self, position: int) -> int:
        return self._unpack("<I", position)

    def u64(self, position: int) -> int:
        return self._unpack("<Q", position)

    def scalar(self, fmt: str, table: int, slot: int, default: float = 0) -> float:
        position = self.field(table, slot)
        return self._unpack(fmt, position) if position else default

    def numbers(self, fmt: str, table: int, slot: int) -> tuple[float, ...]:
        start, length = self.vector(table, slot)
        size = struct.calcsize(fmt)
        if start + size * length > len(self.data):
            raise FlatbufferError("vector runs past the end of the buffer")
        return tuple(struct.unpack_from(f"<{length}{fmt[-1]}", self.data, start)) if start else ()

    def field(self, table: int, slot: int) -> int:
        """Absolute position of a table field, or 0 when absent."""
        vtable = table - self._unpack("<i", table)
        vtable_size = self._unpack("<H", vtable)
        entry = 4 + 2 * slot
        if entry >= vtable_size:
            return 0
        offset = self._unpack("<H", vtable + entry)
        return table + offset if offset else 0

    def indirect(self, position: int) -> int:
        return position + self.u32(position)

    def vector(self, table: int, slot: int) -> tuple[int, int]:
        """``(first element position, length)`` of a vector field; ``(0, 0)`` when absent."""
        position = self.field(table, slot)
        if not position:
            return 0, 0
        start = self.indirect(position)
        length = self.u32(start)
        return start + 4, length

    def table_at(self, element: int) -> int:
        return self.indirect(element)

    def string(self, table: int, slot: int) -> str:
        start, length = self.vector(table, slot)
        if start + length > len(self.data):
            raise FlatbufferError("string runs past the end of the buffer")
        return bytes(self.data[start:start + length]).decode("utf-8", "replace") if start else ""


def is_tflite(data: Any) -> bool:
    """True when ``data`` starts like a TFLite flatbuffer (root offset, then ``TFL3``)."""
    return len(data) >= 8 and bytes(data[4:8]) == TFLITE_IDENTIFIER


def metadata_buffers(model: Any) -> dict[str, bytes]:
    """The model's named metadata buffers, ``{name: bytes}`` (empty ones included as ``b""``)."""
    if not is_tflite(model):
        raise FlatbufferError("not a TFLite model (no TFL3 identifier)")
    reader = _Reader(model)
    root = reader.indirect(0)
    buffers_start, buffers_count = reader.vector(root, _MODEL_BUFFERS)
    entries_start, entries_count = reader.vector(root, _MODEL_METADATA)
    found: dict[str, bytes] = {}
    for i in range(entries_count):
        entry = reader.table_at(entries_start + 4 * i)
        name = reader.string(entry, _METADATA_NAME)
        slot = reader.field(entry, _METADATA_BUFFER)
        index = reader.u32(slot) if slot else 0
        if index >= buffers_count:
            raise FlatbufferError(f"metadata {name!r} points at buffer {index} of {buffers_count}")
        found.setdefault(name, _buffer_bytes(reader, reader.table_at(buffers_start + 4 * index)))
    return found


def io_tensors(model: Any) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The first subgraph's input and output tensors (as the runtime will report them)."""
    if not is_tflite(model):
        raise FlatbufferError("not a TFLite model (no TFL3 identifier)")
    reader = _Reader(model)
    root = reader.indirect(0)
    subgraphs, count = reader.vector(root, _MODEL_SUBGRAPHS)
    if not count:
        raise FlatbufferError("the model has no subgraph")
    subgraph = reader.table_at(subgraphs)
    tensors, tensor_count = reader.vector(subgraph, _SUBGRAPH_TENSORS)

    def spec(index: int) -> TensorSpec:
        if not 0 <= index < tensor_count:
            raise FlatbufferError(f"tensor {index} of {tensor_count} does not exist")
        tensor = reader.table_at(tensors + 4 * index)
        shape = tuple(int(v) for v in reader.numbers("<i", tensor, _TENSOR_SHAPE))
        code = int(reader.scalar("<b", tensor, _TENSOR_TYPE))
        scale, zero_point = 0.0, 0
        quantization = reader.field(tensor, _TENSOR_QUANTIZATION)
        if quantization:
            table = reader.indirect(quantization)
            scales = reader.numbers("<f", table, _QUANT_SCALE)
            zero_points = reader.numbers("<q", table, _QUANT_ZERO_POINT)
            if len(scales) == 1:
                scale, zero_point = float(scales[0]), int(zero_points[0]) if zero_points else 0
        dtype = np.dtype(TENSOR_TYPES.get(code, np.uint8))
        return TensorSpec(reader.string(tensor, _TENSOR_NAME), shape, dtype, scale, zero_point, index)

    inputs = [spec(int(i)) for i in reader.numbers("<i", subgraph, _SUBGRAPH_INPUTS)]
    outputs = [spec(int(i)) for i in reader.numbers("<i", subgraph, _SUBGRAPH_OUTPUTS)]
    return inputs, outputs


def _buffer_bytes(reader: _Reader, buffer: int) -> bytes:
    start, length = reader.vector(buffer, _BUFFER_DATA)
    if start:
        if start + length > len(reader.data):
            raise FlatbufferError("buffer data runs past the end of the file")
        return bytes(reader.data[start:start + length])
    offset_field = reader.field(buffer, _BUFFER_OFFSET)
    size_field = reader.field(buffer, _BUFFER_SIZE)
    if offset_field and size_field:  # large models keep buffers after the flatbuffer
        offset, size = reader.u64(offset_field), reader.u64(size_field)
        if offset + size > len(reader.data):
            raise FlatbufferError("buffer data runs past the end of the file")
        return bytes(reader.data[offset:offset + size])
    return b""


def model_metadata_name(buffer: bytes) -> str:
    """``name`` of a TFLite Support ``ModelMetadata`` flatbuffer (``""`` when absent or unreadable)."""
    if len(buffer) < 8:
        return ""
    try:
        reader = _Reader(buffer)
        return reader.string(reader.indirect(0), _MODEL_METADATA_NAME)
    except FlatbufferError:
        return ""
