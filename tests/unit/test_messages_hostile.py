"""Decoding network input: every malformation is a CdrError, never a hang, a huge allocation or a crash."""

from __future__ import annotations

import struct
import tracemalloc
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycdr2._support import Endianness

import edgenode.messages as m
from edgenode.messages.cdr import CdrError

SAMPLES: list[Any] = [
    m.DmaBuffer(m.Header(m.Time(1, 2), "camera"), 10, 11, 1920, 1080, 3840, 0x56595559, 4147200),
    m.Detect(m.Header(m.Time(1, 2), "cam"), boxes=[m.Box(0.5, 0.5, 0.125, 0.25, "person", 0.875,
                                                         track=m.Track("id", 2, m.Time(3, 4)))] * 3),
    m.Mask(4, 4, 1, "", bytes(range(16)), False),
    m.ModelInfo(m.Header(), [1, 640, 640, 3], 2, [1, 84, 8400], 8, ["person", "car"], "Detection", "TFLite", "y"),
    m.CameraInfo(m.Header(frame_id="cam"), 1080, 1920, "plumb_bob", [0.1] * 5),
    m.CameraFrame(m.Header(), 7, m.Tensor(2, 99, -1, 0, -2, [1080, 1920], [], [], [], "YUYV",
                                          planes=[m.TensorPlane(5, 0, 3840, 4147200, 4147200)])),
    m.ImageAnnotations(points=[m.PointsAnnotation(points=[m.Point2(1, 2)] * 4, outline_colors=[m.Color()] * 4)],
                       texts=[m.TextAnnotation(text="hello")]),
    m.Model(m.Header(), boxes=[m.Box(label="x")], masks=[m.Mask(2, 2, 1, "", b"abcd", True)]),
]
IDS = [type(sample).__name__ for sample in SAMPLES]


@pytest.mark.parametrize("sample", SAMPLES, ids=IDS)
def test_every_truncation_is_a_clear_error(sample: Any) -> None:
    data = m.encode(sample)
    for length in range(len(data)):
        if isinstance(sample, m.ModelInfo) and length >= len(data) - 2:
            continue  # a ModelInfo without its two trailing dtype bytes is the valid pre-4.x layout
        with pytest.raises(CdrError) as caught:
            m.decode(type(sample), data[:length])
        assert m.schema_name(sample) in str(caught.value)


@pytest.mark.parametrize("header", ["0002", "0003", "0006", "0007", "0009", "000b", "0100", "ffff"])
def test_wrong_encapsulation_is_refused(header: str) -> None:
    data = bytes.fromhex(header) + m.encode(SAMPLES[0])[2:]
    with pytest.raises(CdrError, match="encapsulation"):
        m.decode(m.DmaBuffer, data)


@pytest.mark.parametrize("sample", SAMPLES, ids=IDS)
def test_big_endian_cdr_is_read(sample: Any) -> None:
    big = type(sample).__idl__.serialize(sample, endianness=Endianness.Big)
    assert big[:2] == b"\x00\x00"
    assert m.decode(type(sample), big) == sample


def _decode_small_peak(cls: Any, data: bytes) -> int:
    tracemalloc.start()
    try:
        with pytest.raises(CdrError, match=r"truncated|negative"):
            m.decode(cls, data)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_huge_string_length_is_refused_without_allocating() -> None:
    data = bytearray(m.encode(SAMPLES[0]))
    struct.pack_into("<I", data, 12, 0xFFFFFFFF)  # frame_id length
    assert _decode_small_peak(m.DmaBuffer, bytes(data)) < 1 << 20


def test_huge_sequence_count_is_refused_without_allocating() -> None:
    data = bytearray(m.encode(m.Detect(m.Header(), boxes=[])))
    struct.pack_into("<I", data, len(data) - 4, 0xFFFFFFFF)  # boxes count
    assert _decode_small_peak(m.Detect, bytes(data)) < 1 << 20


def test_huge_primitive_sequence_is_refused_without_allocating() -> None:
    data = bytearray(m.encode(m.ModelInfo(input_shape=[1, 2, 3])))
    struct.pack_into("<I", data, 12, 0x40000000)  # input_shape count after the empty frame_id
    assert _decode_small_peak(m.ModelInfo, bytes(data)) < 1 << 20


def test_huge_byte_array_is_refused_without_allocating() -> None:
    sample = m.Mask(4, 4, 1, "", bytes(16), False)
    data = bytearray(m.encode(sample))
    struct.pack_into("<I", data, 24, 0xFFFFFFF0)  # mask length: after height, width, length and encoding "\0" + pad
    assert _decode_small_peak(m.Mask, bytes(data)) < 1 << 20


def test_string_without_terminator_length_is_refused() -> None:
    data = bytearray(m.encode(SAMPLES[0]))
    struct.pack_into("<I", data, 12, 0)
    with pytest.raises(CdrError):
        m.decode(m.DmaBuffer, bytes(data))


def test_invalid_utf8_is_refused() -> None:
    data = bytearray(m.encode(m.DmaBuffer(m.Header(frame_id="abc"))))
    data[16:19] = b"\xff\xfe\xfd"
    with pytest.raises(CdrError, match="malformed"):
        m.decode(m.DmaBuffer, bytes(data))


@pytest.mark.parametrize("cls", [type(sample) for sample in SAMPLES], ids=IDS)
@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300))
def test_random_bytes_never_escape_as_other_errors(cls: Any, data: bytes) -> None:
    try:
        decoded = m.decode(cls, b"\x00\x01\x00\x00" + data)
    except CdrError:
        return
    assert isinstance(decoded, cls)


@pytest.mark.parametrize("sample", SAMPLES, ids=IDS)
@settings(max_examples=200, deadline=None)
@given(flips=st.lists(st.tuples(st.integers(4, 10_000), st.integers(0, 255)), min_size=1, max_size=6))
def test_mutated_messages_never_escape_as_other_errors(sample: Any, flips: list[tuple[int, int]]) -> None:
    data = bytearray(m.encode(sample))
    for position, value in flips:
        data[position % len(data)] = value
    try:
        decoded = m.decode(type(sample), bytes(data))
    except CdrError:
        return
    assert isinstance(decoded, type(sample))


def test_decode_reads_memoryview_without_copy() -> None:
    data = m.encode(SAMPLES[0])
    assert m.decode(m.DmaBuffer, memoryview(data)) == SAMPLES[0]
