"""ROS 2 messages as a Foxglove bridge sees them: schema names, ``ros2msg`` schema text, CDR layout checks.

Pure: the ``.msg`` texts come in as a mapping (``edgenode.resources.message_texts()`` reads them).

- :func:`schema_from_encoding`: the type named by a Zenoh encoding (``application/cdr;pkg/msg/Type``);
  :func:`ros_topic`: the ROS 2 topic of a Zenoh key (``rt/model/boxes2d`` is ``/model/boxes2d``).
- :func:`complete_definition`: the ``ros2msg`` text of a type with every dependency appended the
  ROS 2 way (80 ``=``, then ``MSG: pkg/msg/Name``, then its text), as rosbag2 writes it in MCAP files
  and Foxglove reads it.
- :class:`CdrShape`: walks a CDR payload along its definition without building any object,
  checking that every length fits the buffer (so a client is never handed a message its decoder
  would fail on), and reads the message's stamp for the log time.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass

from edgenode.messages.definitions import PRIMITIVES, MessageDefinition, parse_message

SEPARATOR = "=" * 80
TIME = "builtin_interfaces/msg/Time"
STAMP_NAMES = ("stamp", "timestamp")
# A stamp counts when it is a top-level field or in a top-level field (header.stamp, the first
# annotation's timestamp); deeper Times (a track's creation) are not the message's time.
STAMP_DEPTH = 2
_TYPE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*/(?:msg/)?[A-Za-z][A-Za-z0-9_]*")
_SIZES = {"bool": 1, "byte": 1, "char": 1, "int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "int32": 4,
          "uint32": 4, "float32": 4, "int64": 8, "uint64": 8, "float64": 8}
_ENDIAN = {b"\x00\x00": ">", b"\x00\x01": "<"}
HEADER_SIZE = 4


class UnknownType(KeyError):
    """A type (or one of its dependencies) with no shipped definition."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown type"


class MalformedPayload(ValueError):
    """A payload that is not a CDR encoding of its type."""


def full_name(type_name: str) -> str:
    """``pkg/Name`` or ``pkg/msg/Name`` as ``pkg/msg/Name``."""
    package, _, name = type_name.partition("/")
    return f"{package}/msg/{name.rsplit('/', 1)[-1]}"


def ros_topic(key: str) -> str:
    """The ROS 2 topic of a Zenoh key: the ``rt`` segment of ROS 2 over Zenoh dropped, a ``/`` added.

    ``rt/model/boxes2d`` and ``model/boxes2d`` are ``/model/boxes2d``; ``cam1/rt/camera/jpeg``
    (a namespaced node) is ``/cam1/camera/jpeg``.
    """
    parts = key.strip("/").split("/")
    if "rt" in parts and len(parts) > 1:
        parts.remove("rt")
    return "/" + "/".join(parts)


def schema_from_encoding(encoding: str) -> str | None:
    """The ROS 2 type of a Zenoh encoding ``application/cdr;pkg/msg/Type`` (``pkg/Type`` accepted); else None."""
    media, separator, schema = encoding.partition(";")
    schema = schema.strip()
    if media.strip().lower() != "application/cdr" or not separator or not _TYPE_NAME.fullmatch(schema):
        return None
    return full_name(schema)


def _dependencies(name: str, texts: Mapping[str, str]) -> list[str]:
    """Every type ``name`` uses, directly or not, depth-first in order of first use."""
    found: list[str] = []

    def visit(type_name: str) -> None:
        text = texts.get(type_name)
        if text is None:
            raise UnknownType(f"no definition of {type_name}" + (f" (used by {name})" if type_name != name else ""))
        for field in parse_message(type_name, text).fields:
            if field.type in PRIMITIVES:
                continue
            dependency = full_name(field.type)
            if dependency != name and dependency not in found:
                found.append(dependency)
                visit(dependency)

    visit(name)
    return found


def complete_definition(name: str, texts: Mapping[str, str]) -> str:
    """The ``ros2msg`` schema of ``name``: its text, then each dependency after the ROS 2 separator."""
    dependencies = _dependencies(name, texts)
    parts = [texts[name].rstrip("\n")]
    parts += [f"{SEPARATOR}\nMSG: {dependency}\n{texts[dependency].rstrip()}" for dependency in dependencies]
    return "\n".join(parts) + "\n"


# -- walking a payload ------------------------------------------------------------------------------

# One step of a plan: (kind, argument, count). Kinds: primitive, string, sequence of primitives,
# sequence of strings, array of strings, struct, array of structs, sequence of structs, stamp.
_PRIM, _STR, _SEQ_PRIM, _SEQ_STR, _ARR_STR, _STRUCT, _ARR_STRUCT, _SEQ_STRUCT, _STAMP = range(9)


@dataclass
class _Plan:
    steps: list[tuple[int, object, int]]
    min_size: int = 0


@dataclass(frozen=True)
class Inspection:
    """What a payload holds: the bytes its message spans (header included) and its stamp, if any."""

    size: int
    stamp_ns: int | None


class CdrShape:
    """The wire layout of one type, compiled once from its definitions; :meth:`inspect` checks a payload."""

    def __init__(self, name: str, definitions: Mapping[str, MessageDefinition]) -> None:
        self.name = name
        self._definitions = definitions
        self._plans: dict[tuple[str, int], _Plan] = {}
        self._plan = self._compile(name, 1)

    def _compile(self, name: str, depth: int) -> _Plan:
        key = (name, min(depth, STAMP_DEPTH + 1))
        cached = self._plans.get(key)
        if cached is not None:
            return cached
        definition = self._definitions.get(name)
        if definition is None:
            raise UnknownType(f"no definition of {name}" + (f" (used by {self.name})" if name != self.name else ""))
        plan = self._plans[key] = _Plan([])
        for field in definition.fields:
            step = self._step(field.type, field.name, field.is_sequence, field.length, depth)
            plan.steps.append(step)
            kind, argument, count = step
            if kind == _PRIM:
                plan.min_size += int(argument) * count  # type: ignore[call-overload]
            elif kind == _STRUCT:
                plan.min_size += argument.min_size  # type: ignore[attr-defined]
            elif kind == _ARR_STRUCT:
                plan.min_size += argument.min_size * count  # type: ignore[attr-defined]
            elif kind == _STAMP:
                plan.min_size += 8
            else:  # a length word (strings, sequences) or fixed strings
                plan.min_size += 4 * (count or 1)
        return plan

    def _step(self, type_name: str, name: str, sequence: bool, length: int | None,
              depth: int) -> tuple[int, object, int]:
        if type_name == "string":
            if sequence:
                return (_SEQ_STR, None, 0)
            return (_ARR_STR, None, length) if length is not None else (_STR, None, 1)
        if type_name in _SIZES:
            size = _SIZES[type_name]
            return (_SEQ_PRIM, size, 0) if sequence else (_PRIM, size, length if length is not None else 1)
        full = full_name(type_name)
        if (full == TIME and name in STAMP_NAMES and depth <= STAMP_DEPTH and not sequence
                and length is None):
            return (_STAMP, None, 1)
        plan = self._compile(full, depth + 1)
        if sequence:
            return (_SEQ_STRUCT, plan, 0)
        return (_ARR_STRUCT, plan, length) if length is not None else (_STRUCT, plan, 1)

    def inspect(self, payload: bytes | bytearray | memoryview) -> Inspection:
        """Walk ``payload``; raises :class:`MalformedPayload` where a length or field runs past its end."""
        if len(payload) < HEADER_SIZE:
            raise MalformedPayload(f"{len(payload)} bytes is shorter than the 4-byte CDR header")
        endian = _ENDIAN.get(bytes(payload[0:2]))
        if endian is None:
            raise MalformedPayload(f"encapsulation 0x{bytes(payload[0:2]).hex()} is not plain CDR")
        walker = _Walker(payload, endian)
        walker.walk(self._plan)
        return Inspection(walker.pos, walker.stamp_ns)


class _Walker:
    def __init__(self, data: bytes | bytearray | memoryview, endian: str) -> None:
        self.data = data
        self.end = len(data)
        self.pos = HEADER_SIZE
        self.u32 = struct.Struct(endian + "I")
        self.time = struct.Struct(endian + "iI")
        self.stamp_ns: int | None = None
        self.stamp_seen = False

    def need(self, size: int, what: str) -> None:
        if self.pos + size > self.end:
            raise MalformedPayload(f"{what} needs {size} bytes at byte {self.pos} of {self.end}")

    def align(self, size: int) -> None:
        offset = self.pos - HEADER_SIZE
        self.pos += -offset % size

    def count(self) -> int:
        self.align(4)
        self.need(4, "a length")
        (value,) = self.u32.unpack_from(self.data, self.pos)
        self.pos += 4
        return int(value)

    def string(self) -> None:
        length = self.count()
        self.need(length, "a string")
        self.pos += length

    def walk(self, plan: _Plan) -> None:
        for kind, argument, count in plan.steps:
            if kind == _PRIM:
                size = int(argument)  # type: ignore[call-overload]
                self.align(size)
                self.need(size * count, "a field")
                self.pos += size * count
            elif kind == _STR:
                self.string()
            elif kind == _SEQ_PRIM:
                size = int(argument)  # type: ignore[call-overload]
                items = self.count()
                if items:
                    self.align(size)
                    self.need(size * items, f"a sequence of {items}")
                    self.pos += size * items
            elif kind in (_SEQ_STR, _ARR_STR):
                items = self.count() if kind == _SEQ_STR else count
                self.need(4 * items, f"{items} strings")  # each takes at least its length word
                for _ in range(items):
                    self.string()
            elif kind == _STAMP:
                self.align(4)
                self.need(8, "a stamp")
                if not self.stamp_seen:
                    self.stamp_seen = True
                    sec, nanosec = self.time.unpack_from(self.data, self.pos)
                    if sec >= 0 and nanosec < 1_000_000_000 and (sec or nanosec):
                        self.stamp_ns = sec * 1_000_000_000 + nanosec
                self.pos += 8
            else:
                nested: _Plan = argument  # type: ignore[assignment]
                items = self.count() if kind == _SEQ_STRUCT else count
                if items > 1:
                    self.need(max(nested.min_size, 1) * items, f"a sequence of {items}")
                for _ in range(items):
                    self.walk(nested)
