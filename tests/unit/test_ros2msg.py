"""ros2msg schema text, Zenoh encodings and the CDR layout check, against a general ROS 2 decoder."""

from __future__ import annotations

import random
import struct
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import edgenode.messages as m
from edgenode.messages.ros2msg import (
    SEPARATOR,
    CdrShape,
    MalformedPayload,
    UnknownType,
    complete_definition,
    ros_topic,
    schema_from_encoding,
)
from edgenode.resources import message_texts
from tests.unit.test_messages_definitions import CLASSES, DEFINITIONS, _build, _random_message

mcap_records = pytest.importorskip("mcap.records")
mcap_ros2_decoder = pytest.importorskip("mcap_ros2.decoder")

TEXTS = message_texts()


def ros2_decoder(name: str) -> object:
    """mcap-ros2-support's decoder for ``name``, built from our schema text alone."""
    schema = mcap_records.Schema(id=1, name=name, encoding="ros2msg", data=complete_definition(name, TEXTS).encode())
    return mcap_ros2_decoder.DecoderFactory().decoder_for("cdr", schema)


@pytest.mark.parametrize(("encoding", "expected"), [
    ("application/cdr;edgefirst_msgs/msg/Detect", "edgefirst_msgs/msg/Detect"),
    ("application/cdr;sensor_msgs/CompressedImage", "sensor_msgs/msg/CompressedImage"),
    (" application/cdr ; foxglove_msgs/msg/ImageAnnotations ", "foxglove_msgs/msg/ImageAnnotations"),
    ("application/cdr", None),
    ("application/cdr;", None),
    ("application/cdr;Detect", None),
    ("application/cdr;a/b/c/d", None),
    ("application/json;edgefirst_msgs/msg/Detect", None),
    ("zenoh/bytes", None),
    ("", None),
])
def test_schema_from_encoding(encoding: str, expected: str | None) -> None:
    assert schema_from_encoding(encoding) == expected


@pytest.mark.parametrize(("key", "topic"), [
    ("rt/model/boxes2d", "/model/boxes2d"),
    ("model/boxes2d", "/model/boxes2d"),
    ("camera/jpeg", "/camera/jpeg"),
    ("cam1/rt/camera/jpeg", "/cam1/camera/jpeg"),
    ("rt", "/rt"),
    ("a/b/rt/c/rt/d", "/a/b/c/rt/d"),
])
def test_ros_topic_of_a_key(key: str, topic: str) -> None:
    assert ros_topic(key) == topic


def test_dependencies_follow_the_ros2_convention_once_each() -> None:
    text = complete_definition("edgefirst_msgs/msg/Detect", TEXTS)
    sections = text.split(SEPARATOR + "\n")
    assert sections[0] == TEXTS["edgefirst_msgs/msg/Detect"]
    names = [section.split("\n", 1)[0] for section in sections[1:]]
    assert names == ["MSG: std_msgs/msg/Header", "MSG: builtin_interfaces/msg/Time", "MSG: edgefirst_msgs/msg/Box",
                     "MSG: edgefirst_msgs/msg/Track"]
    assert complete_definition("builtin_interfaces/msg/Time", TEXTS) == TEXTS["builtin_interfaces/msg/Time"]


def test_unknown_types_are_named() -> None:
    with pytest.raises(UnknownType, match="no definition of acme_msgs/msg/Widget"):
        complete_definition("acme_msgs/msg/Widget", TEXTS)
    texts = {**TEXTS, "acme_msgs/msg/Widget": "std_msgs/Header header\nacme_msgs/Part part\n"}
    with pytest.raises(UnknownType, match=r"acme_msgs/msg/Part \(used by acme_msgs/msg/Widget\)"):
        complete_definition("acme_msgs/msg/Widget", texts)
    with pytest.raises(UnknownType, match="acme_msgs/msg/Widget"):
        CdrShape("acme_msgs/msg/Widget", DEFINITIONS)


@pytest.mark.parametrize("name", sorted(DEFINITIONS))
def test_every_type_decodes_with_a_general_ros2_decoder(name: str) -> None:
    """Our schema text, fed to mcap-ros2-support, decodes what edgenode encodes, field for field."""
    decode = ros2_decoder(name)
    assert decode is not None
    rng = random.Random(name)
    for _ in range(10):
        values = _random_message(DEFINITIONS[name], rng)
        payload = m.encode(_build(CLASSES[name], DEFINITIONS[name], values))
        assert _plain(decode(payload), DEFINITIONS[name].fields) == _plain_values(values)  # type: ignore[operator]


def _plain(decoded: object, fields: object) -> dict[str, object]:
    out: dict[str, object] = {}
    for field in fields:  # type: ignore[attr-defined]
        value = getattr(decoded, field.name)
        out[field.name] = _plain_value(value, field)
    return out


def _plain_value(value: object, field: object) -> object:
    type_name = field.type  # type: ignore[attr-defined]
    nested = DEFINITIONS.get(type_name.replace("/", "/msg/"))
    if nested is None:
        if isinstance(value, (bytes, bytearray)):
            return bytes(value)
        if isinstance(value, (list, tuple)):
            return [float(v) if isinstance(v, float) else v for v in value]
        return value
    if field.is_sequence or field.length is not None:  # type: ignore[attr-defined]
        return [_plain(item, nested.fields) for item in value]  # type: ignore[attr-defined]
    return _plain(value, nested.fields)


def _plain_values(values: dict[str, object]) -> dict[str, object]:
    return {key: (_plain_values(v) if isinstance(v, dict) else
                  [(_plain_values(i) if isinstance(i, dict) else i) for i in v] if isinstance(v, list) else v)
            for key, v in values.items()}


@pytest.mark.parametrize("name", sorted(DEFINITIONS))
def test_shape_spans_every_valid_payload_and_refuses_every_truncation(name: str) -> None:
    shape = CdrShape(name, DEFINITIONS)
    rng = random.Random(name + "shape")
    for _ in range(10):
        payload = m.encode(_build(CLASSES[name], DEFINITIONS[name], _random_message(DEFINITIONS[name], rng)))
        assert shape.inspect(payload).size == len(payload)
        for cut in range(len(payload)):
            with pytest.raises(MalformedPayload):
                shape.inspect(payload[:cut])


def test_stamp_is_the_header_stamp() -> None:
    shape = CdrShape("edgefirst_msgs/msg/Detect", DEFINITIONS)
    stamp = m.Time(1_800_000_000, 123_456_789)
    box = m.Box(label="red", track=m.Track("x", 1, m.Time(5, 6)))
    detect = m.Detect(m.Header(stamp, "camera"), m.Time(0, 1), m.Time(0, 2), m.Time(0, 3), [box])
    assert shape.inspect(m.encode(detect)).stamp_ns == stamp.to_nanos()
    assert shape.inspect(m.encode(m.Detect())).stamp_ns is None  # a zero stamp says nothing


def test_stamp_of_annotations_is_the_first_annotation_timestamp() -> None:
    shape = CdrShape("foxglove_msgs/msg/ImageAnnotations", DEFINITIONS)
    first, later = m.Time(1_700_000_000, 5), m.Time(1_700_000_001, 0)
    annotations = m.ImageAnnotations([], [m.PointsAnnotation(first, 2, [m.Point2(1, 2)]), m.PointsAnnotation(later)],
                                     [m.TextAnnotation(later, m.Point2(3, 4), "red")])
    assert shape.inspect(m.encode(annotations)).stamp_ns == first.to_nanos()
    assert shape.inspect(m.encode(m.ImageAnnotations())).stamp_ns is None
    assert CdrShape("edgefirst_msgs/msg/Mask", DEFINITIONS).inspect(m.encode(m.Mask(mask=b"ab"))).stamp_ns is None


def test_big_endian_payloads() -> None:
    payload = b"\x00\x00\x00\x00" + struct.pack(">iI", 5, 6) + struct.pack(">I", 2) + b"a\x00"
    inspection = CdrShape("std_msgs/msg/Header", DEFINITIONS).inspect(payload)
    assert (inspection.size, inspection.stamp_ns) == (len(payload), 5_000_000_006)


@pytest.mark.parametrize(("payload", "message"), [
    (b"", "shorter than the 4-byte CDR header"),
    (b"\x00\x03\x00\x00" + bytes(16), "encapsulation 0x0003 is not plain CDR"),
    (b"\x00\x01\x00\x00" + bytes(8) + struct.pack("<I", 1000) + b"ab", "a string needs 1000 bytes at byte 16"),
])
def test_malformed_payloads_say_where(payload: bytes, message: str) -> None:
    with pytest.raises(MalformedPayload, match=message):
        CdrShape("edgefirst_msgs/msg/Detect", DEFINITIONS).inspect(payload)


def test_huge_counts_are_refused_before_any_loop() -> None:
    header = m.encode(m.Header(m.Time(1, 2), "camera"))
    huge = struct.pack("<I", 0xFFFFFFFF)
    cases = {"edgefirst_msgs/msg/Detect": header + bytes(24) + huge,  # boxes
             "edgefirst_msgs/msg/ModelInfo": header + huge,  # input_shape
             "foxglove_msgs/msg/ImageAnnotations": b"\x00\x01\x00\x00" + huge,  # circles
             "edgefirst_msgs/msg/Model": header + bytes(32) + huge}  # boxes
    for name, payload in cases.items():
        started = time.perf_counter()
        with pytest.raises(MalformedPayload, match=r"sequence of \d+ needs"):
            CdrShape(name, DEFINITIONS).inspect(payload + bytes(64))
        assert time.perf_counter() - started < 0.5


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(DEFINITIONS)), st.binary(max_size=256))
def test_random_bytes_raise_only_malformed_payload(name: str, tail: bytes) -> None:
    try:
        CdrShape(name, DEFINITIONS).inspect(b"\x00\x01\x00\x00" + tail)
    except MalformedPayload:
        pass
