"""A fast CDR writer compiled, once per message class, from the same pycdr2 type hints.

pycdr2 walks a tree of codec objects for every field of every message; on the node's per-frame
messages (Detect, ImageAnnotations, Model) that costs hundreds of microseconds, several
milliseconds on a Cortex-A53. Here each class is compiled into a short list of steps: nested
structs are flattened, consecutive primitive fields become one ``struct`` pack with static
padding, and sequences of fixed-size structs pack in one call. The bytes are pycdr2's (and
edgefirst-schemas') to the byte: the parity tests encode every type both ways.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from itertools import repeat
from operator import attrgetter
from typing import Any, cast

import numpy as np
from pycdr2 import IdlStruct
from pycdr2._type_helper import Annotated, get_args, get_origin
from pycdr2._type_normalize import get_extended_type_hints
from pycdr2.types import array, sequence

HEADER = b"\x00\x01\x00\x00"
_PRIMITIVES = {"int8": "b", "uint8": "B", "int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "int64": "q",
               "uint64": "Q", "float32": "f", "float64": "d", "char": "c", "byte": "B"}
_U32 = struct.Struct("<I")
Step = Callable[[bytearray, Any], None]


def _primitive_code(hint: Any) -> str | None:
    """The struct code of a primitive field type, None for anything else."""
    if hint is bool:
        return "?"
    if hint is float:
        return "d"
    if hint is int:
        return "q"
    if get_origin(hint) is Annotated:
        args = get_args(hint)
        if len(args) == 2 and isinstance(args[1], str):
            return _PRIMITIVES.get(args[1])
    return None


def _is_struct(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, IdlStruct)


def _pad(out: bytearray, alignment: int) -> None:
    gap = -(len(out) - 4) % alignment
    if gap:
        out += bytes(gap)


def _leaves(cls: type, prefix: str = "") -> list[tuple[str, Any]]:
    """Fields with nested structs flattened: (dotted path, leaf type hint)."""
    leaves: list[tuple[str, Any]] = []
    for name, hint in get_extended_type_hints(cls).items():
        path = f"{prefix}{name}"
        if _is_struct(hint):
            leaves.extend(_leaves(hint, path + "."))
        else:
            leaves.append((path, hint))
    return leaves


def _static_layout(codes: list[str]) -> tuple[str, int] | None:
    """One struct format (with padding) for primitive fields starting at an offset aligned to the first's size."""
    first = struct.calcsize(codes[0])
    if any(struct.calcsize(code) > first for code in codes):
        return None
    fmt, offset = "<", 0
    for code in codes:
        size = struct.calcsize(code)
        gap = -offset % size
        fmt += "x" * gap + code
        offset += gap + size
    return fmt, first


def _flat_fixed(cls: type) -> tuple[str, int, list[str]] | None:
    """A struct whose flattened fields are all primitives: its format, alignment and field paths."""
    leaves = _leaves(cls)
    codes = [_primitive_code(hint) for _, hint in leaves]
    if not codes or any(code is None for code in codes):
        return None
    layout = _static_layout([code for code in codes if code is not None])
    if layout is None:
        return None
    fmt, alignment = layout
    if struct.calcsize(fmt) % alignment:
        return None  # consecutive elements would need padding between them
    return fmt, alignment, [path for path, _ in leaves]


def _getter(paths: list[str]) -> Callable[[Any], tuple[Any, ...]]:
    get = attrgetter(*paths)
    return (lambda value: (get(value),)) if len(paths) == 1 else get


def _run_step(run: list[tuple[str, str]]) -> Step:
    layout = _static_layout([code for _, code in run])
    assert layout is not None
    packer, alignment = struct.Struct(layout[0]), layout[1]
    get = _getter([path for path, _ in run])

    def step(out: bytearray, value: Any) -> None:
        _pad(out, alignment)
        out += packer.pack(*get(value))

    return step


def _string_step(path: str) -> Step:
    get = attrgetter(path)

    def step(out: bytearray, value: Any) -> None:
        data = get(value).encode()
        _pad(out, 4)
        out += _U32.pack(len(data) + 1)
        out += data
        out.append(0)

    return step


def _bytes_step(path: str) -> Step:
    get = attrgetter(path)

    def step(out: bytearray, value: Any) -> None:
        data = get(value)
        _pad(out, 4)
        out += _U32.pack(len(data))
        out += data

    return step


def _primitive_sequence_step(path: str, code: str, counted: bool, length: int | None) -> Step:
    get, size = attrgetter(path), struct.calcsize(code)

    def step(out: bytearray, value: Any) -> None:
        items = get(value)
        count = len(items)
        if counted:
            _pad(out, 4)
            out += _U32.pack(count)
        elif count != length:
            raise ValueError(f"{path} needs {length} values, got {count}")
        if count:
            _pad(out, size)
            out += struct.pack(f"<{count}{code}", *items)

    return step


def _write_length(out: bytearray, items: Any, counted: bool, length: int | None, *, path: str, what: str) -> None:
    """A sequence's element count (aligned), or a check that an array has its fixed length."""
    if counted:
        _pad(out, 4)
        out += _U32.pack(len(items))
    elif len(items) != length:
        raise ValueError(f"{path} needs {length} {what}, got {len(items)}")


def _struct_sequence_step(path: str, element: type, counted: bool, length: int | None) -> Step:
    get = attrgetter(path)
    fixed = _flat_fixed(element)
    if fixed is not None:  # fixed-size elements: pack the whole sequence in one call
        fmt, alignment, paths = fixed
        fields = _getter(paths)
        body = fmt[1:]

        def packed(out: bytearray, value: Any) -> None:
            items = get(value)
            _write_length(out, items, counted, length, path=path, what="elements")
            if items:
                _pad(out, alignment)
                out += struct.pack("<" + body * len(items), *[x for item in items for x in fields(item)])

        return packed
    encode_element = compiled(element)

    def each(out: bytearray, value: Any) -> None:
        items = get(value)
        _write_length(out, items, counted, length, path=path, what="elements")
        for item in items:
            encode_element(out, item)

    return each


def _compile(cls: type) -> Step:
    steps: list[Step] = []
    run: list[tuple[str, str]] = []

    def flush() -> None:
        while run:  # split where a later field is wider than the run's first (padding would depend on offset)
            first = struct.calcsize(run[0][1])
            end = next((i for i, (_, code) in enumerate(run) if struct.calcsize(code) > first), len(run))
            steps.append(_run_step(run[:end]))
            del run[:end]

    for path, hint in _leaves(cls):
        code = _primitive_code(hint)
        if code is not None:
            run.append((path, code))
            continue
        flush()
        if hint is str:
            steps.append(_string_step(path))
        elif hint is bytes:
            steps.append(_bytes_step(path))
        elif isinstance(hint, (sequence, array)):
            kind = hint
            counted = isinstance(kind, sequence)
            length = kind.length if isinstance(kind, array) else None
            element_code = _primitive_code(kind.subtype)
            if element_code is not None:
                steps.append(_primitive_sequence_step(path, element_code, counted, length))
            elif kind.subtype is str:
                steps.append(_string_sequence_step(path, counted, length))
            elif _is_struct(kind.subtype):
                steps.append(_struct_sequence_step(path, kind.subtype, counted, length))
            else:
                raise TypeError(f"{cls.__name__}.{path}: unsupported element type {kind.subtype!r}")
        else:
            raise TypeError(f"{cls.__name__}.{path}: unsupported field type {hint!r}")
    flush()

    def encode_struct(out: bytearray, value: Any) -> None:
        for step in steps:
            step(out, value)

    return encode_struct


def _string_sequence_step(path: str, counted: bool, length: int | None) -> Step:
    get = attrgetter(path)

    def step(out: bytearray, value: Any) -> None:
        items = get(value)
        _write_length(out, items, counted, length, path=path, what="strings")
        for item in items:
            data = item.encode()
            _pad(out, 4)
            out += _U32.pack(len(data) + 1)
            out += data
            out.append(0)

    return step


_compiled: dict[type, Step] = {}


def compiled(cls: type) -> Step:
    """The compiled writer of ``cls``, built on first use (two threads racing build equal writers)."""
    step = _compiled.get(cls)
    if step is None:
        step = _compiled.setdefault(cls, _compile(cls))
    return step


def write(message: IdlStruct, size_hint: int = 256) -> bytes:
    """CDR little-endian bytes of ``message`` with the ``00 01 00 00`` header."""
    out = bytearray(HEADER)
    compiled(type(message))(out, message)
    return bytes(out)


# --------------------------------------------------------------------------------------------
# Many elements of one fixed layout at once: the per-box parts of the per-frame messages
# --------------------------------------------------------------------------------------------
#
# A frame's boxes share a layout but for their strings. Each element is laid out as one row of a
# numpy template at its widest (every string at the longest length in the frame); a mask drops
# each row's unused string bytes and ``template[mask]`` is the elements' CDR, in order, in one
# call. Valid where the elements' alignment does not depend on their string lengths: the
# callers check the offsets they rely on (and the tests hold the result to pycdr2's bytes).


def pad_to(out: bytearray, alignment: int) -> None:
    """Pad ``out`` (CDR header included) to ``alignment`` from the start of the CDR body."""
    _pad(out, alignment)


_STRINGS_KEPT = 4096
STRING_BLOCKS: dict[int, dict[str, bytes]] = {4: {}, 8: {}}
"""Cached CDR string blocks per alignment unit (see :func:`counted_strings`)."""


def _counted(text: str, unit: int) -> bytes:
    data = text.encode()
    size = len(data) + 1
    return _U32.pack(size) + data + bytes(-(-(size + 4) // unit) * unit - 4 - len(data))


def counted_string(text: str, unit: int) -> bytes:
    """One block of :func:`counted_strings` (cached the same way)."""
    cache = STRING_BLOCKS[unit]
    block = cache.get(text)
    if block is None:
        if len(cache) >= _STRINGS_KEPT:
            cache.clear()
        block = cache[text] = _counted(text, unit)
    return block


def counted_strings(texts: Sequence[str], unit: int) -> tuple[np.ndarray, list[int]]:
    """CDR strings of ``texts`` as blocks that start ``unit``-aligned: the u32 length (NUL included),
    the UTF-8 bytes, the NUL, zeros to the next ``unit`` boundary. One row per text (an
    ``(n, widest)`` uint8 array, shorter blocks zero-filled) and the bytes each row's block takes.

    Blocks are cached (labels and track ids recur from frame to frame; emptied at 4096 entries).
    """
    cache = STRING_BLOCKS[unit]
    looked_up = list(map(cache.get, texts))
    if None in looked_up:
        if len(cache) >= _STRINGS_KEPT:
            cache.clear()
        looked_up = [cache.setdefault(text, _counted(text, unit)) for text in texts]
    found = cast("list[bytes]", looked_up)
    used = list(map(len, found))
    widest = max(used)
    if min(used) < widest:
        found = list(map(bytes.ljust, found, repeat(widest, len(found)), repeat(b"\0", len(found))))
    return np.frombuffer(b"".join(found), np.uint8).reshape(len(found), widest), used


def ragged_rows(template: np.ndarray, spans: list[tuple[int, Sequence[int]]], width: list[int]) -> np.ndarray:
    """The rows of ``template`` concatenated, each without the unused tail of its string columns.

    ``spans`` holds, per string, its first column and how many columns each row uses;
    ``width`` how many columns the template gives that string (one call when every row uses them all).
    """
    ragged = [(first, used, span) for (first, used), span in zip(spans, width, strict=True) if min(used) < span]
    if not ragged:
        return template.reshape(-1)
    keep = np.ones(template.shape[:2], bool)
    for first, used, span in ragged:
        keep[:, first:first + span] = np.arange(span) < np.array(used)[:, None]
    result: np.ndarray = template[keep]
    return result
