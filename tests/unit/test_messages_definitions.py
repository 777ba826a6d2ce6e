"""The pycdr2 classes match the shipped .msg definitions, checked by an independent CDR writer."""

from __future__ import annotations

import random
import struct
from typing import Any

import pytest

import edgenode.messages as m
from edgenode.messages.cdr import encode_with_pycdr2
from edgenode.messages.definitions import MessageDefinition, parse_message
from edgenode.resources import message_definitions

DEFINITIONS = message_definitions()
CLASSES = {m.schema_name(cls): cls for cls in (getattr(m, name) for name in m.__all__)
           if isinstance(cls, type) and hasattr(cls, "__idl__")}
FORMATS = {"bool": "?", "int8": "b", "uint8": "B", "byte": "B", "char": "B", "int16": "h", "uint16": "H",
           "int32": "i", "uint32": "I", "int64": "q", "uint64": "Q", "float32": "f", "float64": "d"}


def _full_name(type_name: str) -> str:
    package, name = type_name.split("/")
    return f"{package}/msg/{name}"


def _random_value(type_name: str, rng: random.Random) -> Any:
    if type_name == "string":
        return "".join(rng.choice("abcxyz_é") for _ in range(rng.randint(0, 9)))
    if type_name == "bool":
        return rng.random() < 0.5
    if type_name in ("float32", "float64"):
        return rng.randint(-1000, 1000) / 8.0  # exact in float32
    if type_name in FORMATS:
        bits = struct.calcsize(FORMATS[type_name]) * 8
        signed = FORMATS[type_name].islower()
        return rng.randint(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else rng.randint(0, 2**bits - 1)
    return _random_message(DEFINITIONS[_full_name(type_name)], rng)


def _random_message(definition: MessageDefinition, rng: random.Random) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for field in definition.fields:
        if field.length is not None:
            values[field.name] = [_random_value(field.type, rng) for _ in range(field.length)]
        elif field.is_sequence:
            count = rng.randint(0, 3)
            if field.type == "uint8":
                values[field.name] = bytes(rng.randint(0, 255) for _ in range(count * 3))
            else:
                values[field.name] = [_random_value(field.type, rng) for _ in range(count)]
        else:
            values[field.name] = _random_value(field.type, rng)
    return values


class _Writer:
    """Plain XCDR1 little-endian, alignment relative to the end of the 4-byte header."""

    def __init__(self) -> None:
        self.out = bytearray(b"\x00\x01\x00\x00")

    def align(self, size: int) -> None:
        while (len(self.out) - 4) % size:
            self.out.append(0)

    def primitive(self, type_name: str, value: Any) -> None:
        code = FORMATS[type_name]
        self.align(struct.calcsize(code))
        self.out += struct.pack("<" + code, value)

    def value(self, type_name: str, value: Any) -> None:
        if type_name == "string":
            raw = value.encode() + b"\x00"
            self.primitive("uint32", len(raw))
            self.out += raw
        elif type_name in FORMATS:
            self.primitive(type_name, value)
        else:
            self.message(DEFINITIONS[_full_name(type_name)], value)

    def message(self, definition: MessageDefinition, values: dict[str, Any]) -> None:
        for field in definition.fields:
            value = values[field.name]
            if field.is_sequence:
                self.primitive("uint32", len(value))
            if field.is_sequence or field.length is not None:
                if isinstance(value, bytes):
                    self.out += value
                else:
                    for item in value:
                        self.value(field.type, item)
            else:
                self.value(field.type, value)


def _build(cls: Any, definition: MessageDefinition, values: dict[str, Any]) -> Any:
    kwargs = {}
    for field in definition.fields:
        value = values[field.name]
        if field.type in FORMATS or field.type == "string":
            kwargs[field.name] = value
        else:
            nested_definition = DEFINITIONS[_full_name(field.type)]
            nested_cls = CLASSES[_full_name(field.type)]
            if field.is_sequence or field.length is not None:
                kwargs[field.name] = [_build(nested_cls, nested_definition, item) for item in value]
            else:
                kwargs[field.name] = _build(nested_cls, nested_definition, value)
    return cls(**kwargs)


def test_every_definition_has_a_class_and_back() -> None:
    assert set(DEFINITIONS) == set(CLASSES)


@pytest.mark.parametrize("name", sorted(DEFINITIONS))
def test_class_fields_match_definition(name: str) -> None:
    fields = [f.name for f in DEFINITIONS[name].fields]
    assert list(CLASSES[name].__dataclass_fields__) == fields


@pytest.mark.parametrize("name", sorted(DEFINITIONS))
def test_class_encodes_as_the_definition_says(name: str) -> None:
    rng = random.Random(name)
    for _ in range(25):
        values = _random_message(DEFINITIONS[name], rng)
        writer = _Writer()
        writer.message(DEFINITIONS[name], values)
        message = _build(CLASSES[name], DEFINITIONS[name], values)
        assert m.encode(message) == bytes(writer.out)
        assert encode_with_pycdr2(message) == bytes(writer.out)


@pytest.mark.parametrize("name", sorted(DEFINITIONS))
def test_constants_match_class_attributes(name: str) -> None:
    for _, constant, value in DEFINITIONS[name].constants:
        assert getattr(CLASSES[name], constant) == int(value)


def test_parser_reports_the_bad_line() -> None:
    with pytest.raises(ValueError, match="line 2"):
        parse_message("pkg/msg/Bad", "uint32 ok\nthis is not a field\n")
