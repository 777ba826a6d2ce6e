"""Parser for ROS 2 ``.msg`` definitions (the files in the top-level ``schemas/`` folder)."""

from __future__ import annotations

import re
from dataclasses import dataclass

PRIMITIVES = frozenset(
    {"bool", "byte", "char", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
     "float32", "float64", "string"}
)
_FIELD = re.compile(r"^(?P<type>[A-Za-z0-9_/]+)(?P<array>\[(?P<len>\d*)\])?\s+(?P<name>[a-z][a-z0-9_]*)$")
_CONSTANT = re.compile(r"^(?P<type>[A-Za-z0-9_]+)\s+(?P<name>[A-Z][A-Z0-9_]*)\s*=\s*(?P<value>.+)$")


@dataclass(frozen=True)
class FieldDefinition:
    """One field: ``type`` is a primitive or ``package/Name``; ``length`` is set for fixed arrays."""

    name: str
    type: str
    is_sequence: bool = False
    length: int | None = None


@dataclass(frozen=True)
class MessageDefinition:
    """A parsed ``.msg``: its full name (``package/msg/Name``), fields in wire order, constants."""

    name: str
    fields: tuple[FieldDefinition, ...]
    constants: tuple[tuple[str, str, str], ...]


def parse_message(name: str, text: str) -> MessageDefinition:
    """Parse the text of ``package/msg/Name``; field types are qualified with the package."""
    package = name.split("/", 1)[0]
    fields: list[FieldDefinition] = []
    constants: list[tuple[str, str, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        constant = _CONSTANT.match(line)
        if constant:
            constants.append((constant["type"], constant["name"], constant["value"].strip()))
            continue
        match = _FIELD.match(re.sub(r"\s+", " ", line))
        if not match:
            raise ValueError(f"{name}.msg line {number}: cannot parse {raw.strip()!r}")
        type_name = match["type"]
        if type_name not in PRIMITIVES and "/" not in type_name:
            type_name = f"{package}/{type_name}"
        array, length = match["array"], match["len"]
        fields.append(
            FieldDefinition(
                name=match["name"],
                type=type_name,
                is_sequence=bool(array) and not length,
                length=int(length) if length else None,
            )
        )
    return MessageDefinition(name=name, fields=tuple(fields), constants=tuple(constants))

