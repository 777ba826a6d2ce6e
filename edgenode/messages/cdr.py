"""CDR encode and hardened decode for the pycdr2 message classes.

Encoding uses the compiled writer (:mod:`edgenode.messages.compiled_cdr`, about 10x pycdr2's
speed, byte-identical); :func:`encode_with_pycdr2` is pycdr2's own serializer, kept as the
reference the tests hold the compiled writer to.

Decoding is hostile-input code: a truncated buffer, an unknown encapsulation, or a string,
sequence or byte-array length beyond the end of the buffer raises :class:`CdrError` before
anything is read or allocated past the buffer, so a bad message costs at most one pass over
its own bytes.
"""

from __future__ import annotations

import struct
import threading
from typing import Any, TypeVar

from pycdr2 import IdlStruct
from pycdr2._support import Buffer, Endianness

from edgenode.messages.compiled_cdr import write
from edgenode.messages.edgefirst_msgs import ModelInfo, ModelInfoV1, model_info_from_v1

MessageT = TypeVar("MessageT", bound=IdlStruct)

HEADER_SIZE = 4
# Encapsulation identifiers (first two header bytes, big-endian): plain CDR only.
_ENCAPSULATIONS = {b"\x00\x00": Endianness.Big, b"\x00\x01": Endianness.Little}
_ENCAPSULATION_NAMES = {
    b"\x00\x02": "PL_CDR_BE",
    b"\x00\x03": "PL_CDR_LE",
    b"\x00\x06": "CDR2_BE",
    b"\x00\x07": "CDR2_LE",
    b"\x00\x08": "D_CDR2_BE",
    b"\x00\x09": "D_CDR2_LE",
    b"\x00\x0a": "PL_CDR2_BE",
    b"\x00\x0b": "PL_CDR2_LE",
}
_DECODE_FAILURES = (struct.error, UnicodeDecodeError, ValueError, TypeError, IndexError, OverflowError,
                    RecursionError, MemoryError)

_ready: set[type[IdlStruct]] = set()
_ready_lock = threading.Lock()


class CdrError(ValueError):
    """A buffer that is not a valid CDR encoding of the expected message."""


def schema_name(message: IdlStruct | type[IdlStruct]) -> str:
    """ROS 2 type name as EdgeFirst puts it in the Zenoh encoding, e.g. ``edgefirst_msgs/msg/Detect``."""
    cls = message if isinstance(message, type) else type(message)
    return str(cls.__idl_typename__).replace(".", "/")


def _ensure_ready(cls: type[IdlStruct]) -> Any:
    """Build pycdr2's codec machines once per class; pycdr2 itself is not thread-safe here."""
    if cls not in _ready:
        with _ready_lock:
            if cls not in _ready:
                idl: Any = cls.__idl__
                idl.populate()
                _ready.add(cls)
    return cls.__idl__


class _WriteBuffer(Buffer):
    """A fresh, pre-sized, zeroed output buffer per message (pycdr2 shares one per class)."""

    def __init__(self, capacity: int) -> None:
        super().__init__(None)
        self._bytes = bytearray(max(capacity, 64))
        self._size = len(self._bytes)

    def zero_out(self) -> None:
        """Already zero: the buffer is new."""

    def asbytes(self) -> bytes:
        return bytes(memoryview(self._bytes)[: self._pos])


class _ReadBuffer(Buffer):
    """A zero-copy reader over the message that checks every length against what remains."""

    def __init__(self, data: bytes | bytearray | memoryview, endianness: Endianness) -> None:
        self._bytes = data  # type: ignore[assignment]  # read-only view: never written or copied
        self._size = len(data)
        self._pos = HEADER_SIZE
        self._align_offset = HEADER_SIZE
        self._align_max = 8
        self.set_endianness(endianness)

    def _claim(self, size: int) -> int:
        start = self._pos
        if size < 0:
            raise CdrError(f"negative length at byte {start}")
        if start + size > self._size:
            raise CdrError(f"truncated: {size} bytes needed at byte {start} of {self._size}")
        self._pos = start + size
        return start

    def read(self, pack: str, size: int) -> Any:
        start = self._claim(size)
        return struct.unpack_from(self._endian + pack, self._bytes, start)[0]

    def read_multi(self, pack: str, size: int) -> tuple[Any, ...]:
        start = self._claim(size)
        return struct.unpack_from(self._endian + pack, self._bytes, start)

    def read_bytes(self, length: int) -> bytes:
        start = self._claim(length)
        return bytes(self._bytes[start : start + length])


def encode(message: IdlStruct) -> bytes:
    """CDR little-endian bytes of ``message``, with the ``00 01 00 00`` header."""
    return write(message)


def encode_with_pycdr2(message: IdlStruct, size_hint: int = 256) -> bytes:
    """The same bytes by pycdr2's serializer (slow; the reference for :func:`encode`)."""
    idl = _ensure_ready(type(message))
    return bytes(idl.serialize(message, buffer=_WriteBuffer(size_hint + 64), endianness=Endianness.Little))


def _decode_exact(cls: type[MessageT], data: bytes | bytearray | memoryview) -> MessageT:
    if len(data) < HEADER_SIZE:
        raise CdrError(f"{len(data)} bytes is shorter than the 4-byte CDR header")
    kind = bytes(data[0:2])
    endianness = _ENCAPSULATIONS.get(kind)
    if endianness is None:
        name = _ENCAPSULATION_NAMES.get(kind, "unknown")
        raise CdrError(f"encapsulation 0x{kind.hex()} ({name}) is not plain CDR (0x0000 or 0x0001)")
    idl = _ensure_ready(cls)
    buffer = _ReadBuffer(data, endianness)
    try:
        message = idl.v0_machine.deserialize(buffer)
    except CdrError:
        raise
    except _DECODE_FAILURES as exc:
        raise CdrError(f"malformed at byte {buffer.tell()}: {exc}") from None
    if not isinstance(message, cls):
        raise CdrError(f"decoded {type(message).__name__}, expected {cls.__name__}")
    return message


def decode(cls: type[MessageT], data: bytes | bytearray | memoryview) -> MessageT:
    """Decode CDR ``data`` as ``cls``; any malformation raises :class:`CdrError` naming the type."""
    try:
        return _decode_exact(cls, data)
    except CdrError as exc:
        if cls is ModelInfo:
            try:
                return model_info_from_v1(_decode_exact(ModelInfoV1, data))  # type: ignore[return-value]
            except CdrError:
                pass
        raise CdrError(f"{schema_name(cls)}: {exc}") from None
