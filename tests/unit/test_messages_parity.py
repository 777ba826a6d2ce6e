"""Byte identity with the edgefirst-schemas package, both directions, for every type it has."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import edgenode.messages as m
from edgenode.core import annotations, outbound
from edgenode.core.annotations import boxes_and_annotations_cdr, frame_annotations, frame_annotations_cdr
from edgenode.core.detections import Detections
from edgenode.core.outbound import (
    FrameResult,
    StageTimes,
    box_sequence,
    detect_cdr,
    detect_message,
    mask_cdr,
    model_cdr,
    model_message,
)
from edgenode.messages.cdr import encode, encode_with_pycdr2
from edgenode.messages.edgefirst_msgs import DTYPE_TO_LEGACY_TYPE
from tests.helpers.fixed_arrays_message import FixedArrays

ef = pytest.importorskip("edgefirst.schemas")
from edgefirst.schemas import builtin_interfaces as rb  # noqa: E402
from edgefirst.schemas import edgefirst_msgs as re_  # noqa: E402
from edgefirst.schemas import foxglove_msgs as rf  # noqa: E402
from edgefirst.schemas import sensor_msgs as rs  # noqa: E402
from edgefirst.schemas import std_msgs as rstd  # noqa: E402

u8 = st.integers(0, 2**8 - 1)
u32 = st.integers(0, 2**32 - 1)
i32 = st.integers(-(2**31), 2**31 - 1)
u64 = st.integers(0, 2**64 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)
f32 = st.floats(width=32, allow_nan=False)
f64 = st.floats(allow_nan=False)
text = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=24)
blob = st.binary(max_size=64)
small = {"max_size": 4}

times = st.builds(m.Time, i32, st.integers(0, 999_999_999))
durations = st.builds(m.Duration, i32, st.integers(0, 999_999_999))
headers = st.builds(m.Header, times, text)
tracks = st.builds(m.Track, text, i32, times)
boxes = st.builds(m.Box, f32, f32, f32, f32, text, f32, f32, f32, tracks)
masks = st.builds(m.Mask, u32, u32, u32, text, blob, st.booleans())
points = st.builds(m.Point2, f64, f64)
colors = st.builds(m.Color, f64, f64, f64, f64)
planes = st.one_of(
    st.builds(lambda handle, offset, stride, size, used, modifier: m.TensorPlane(
        handle, offset, stride, max(size, used), min(size, used), modifier, b"", b""),
        st.integers(0, 2**31), u64, u64, u64, u64, u64),
    st.binary(max_size=32).map(lambda data: m.TensorPlane(-1, 0, 0, len(data), len(data), 0, b"", data)),
)


@st.composite
def tensors(draw: st.DrawFn) -> m.Tensor:
    shape = draw(st.lists(st.integers(0, 2**40), max_size=4))
    strides = draw(st.one_of(st.just([]), st.lists(i64, min_size=len(shape), max_size=len(shape))))
    axis = draw(st.sampled_from([-2, -1, *list(range(len(shape)))]))
    count = {-2: 0, -1: 1}.get(axis, shape[axis] if axis >= 0 else 0)
    if count > 4:
        axis, count = -1, 1
    scales = draw(st.lists(f32, min_size=count, max_size=count))
    zeros = draw(st.one_of(st.just([]), st.lists(i32, min_size=count, max_size=count)))
    fmt = draw(text)
    colour = [draw(text) for _ in range(4)] if fmt else ["", "", "", ""]
    plane_list = draw(st.lists(planes, max_size=3))
    inline = [p.handle == -1 for p in plane_list]
    if any(inline) and not all(inline):
        plane_list = [p for p in plane_list if p.handle == -1]
    return m.Tensor(draw(st.integers(0, 3)), draw(u32), draw(st.integers(-1, 2**31 - 1)), draw(st.integers(0, 10)),
                    axis, shape, strides, scales, zeros, fmt, *colour, plane_list)


model_infos = st.builds(
    lambda header, ishape, idt, oshape, odt, labels, types, fmt, name: m.ModelInfo(
        header, ishape, DTYPE_TO_LEGACY_TYPE.get(idt, 0), oshape, DTYPE_TO_LEGACY_TYPE.get(odt, 0), labels,
        types, fmt, name, idt, odt),
    headers, st.lists(u32, **small), st.sampled_from([*sorted(DTYPE_TO_LEGACY_TYPE), 255]),
    st.lists(u32, **small), st.sampled_from([*sorted(DTYPE_TO_LEGACY_TYPE), 255]), st.lists(text, **small),
    text, text, text,
)


# --- ours -> reference objects -------------------------------------------------------------
def r_time(t: m.Time) -> Any:
    return rb.Time(t.sec, t.nanosec)


def r_header(h: m.Header) -> Any:
    return rstd.Header(stamp=r_time(h.stamp), frame_id=h.frame_id)


def r_box(b: m.Box) -> Any:
    return re_.DetectBox(center_x=b.center_x, center_y=b.center_y, width=b.width, height=b.height, label=b.label,
                         score=b.score, distance=b.distance, speed=b.speed, track_id=b.track.id,
                         track_lifetime=b.track.lifetime, track_created=r_time(b.track.created))


def r_mask(k: m.Mask, cls: Any) -> Any:
    return cls(k.height, k.width, k.length, k.encoding, k.mask, k.boxed)


def r_color(c: m.Color) -> Any:
    return rf.Color(c.r, c.g, c.b, c.a)


def r_point(p: m.Point2) -> Any:
    return rf.Point2(p.x, p.y)


def r_tensor(t: m.Tensor) -> Any:
    return re_.Tensor(
        storage_kind=t.storage_kind, pid=t.pid, fence_fd=t.fence_fd, dtype=t.dtype, quant_axis=t.quant_axis,
        shape=t.shape, strides=t.strides, quant_scales=t.quant_scales, quant_zero_points=t.quant_zero_points,
        format=t.format, color_space=t.color_space, color_transfer=t.color_transfer,
        color_encoding=t.color_encoding, color_range=t.color_range,
        planes=[re_.TensorPlane(handle=p.handle, offset=p.offset, stride=p.stride, size=p.size, used=p.used,
                                modifier=p.modifier, handle_bytes=p.handle_bytes, data=p.data) for p in t.planes],
    )


def r_circle(c: m.CircleAnnotation) -> Any:
    return rf.CircleAnnotations(r_time(c.timestamp), r_point(c.position), c.diameter, c.thickness,
                                r_color(c.fill_color), r_color(c.outline_color))


def r_points(p: m.PointsAnnotation) -> Any:
    return rf.PointAnnotation(timestamp=r_time(p.timestamp), type_=p.type, points=[r_point(x) for x in p.points],
                              outline_color=r_color(p.outline_color),
                              outline_colors=[r_color(c) for c in p.outline_colors],
                              fill_color=r_color(p.fill_color), thickness=p.thickness)


def r_text(t: m.TextAnnotation) -> Any:
    return rf.TextAnnotation(r_time(t.timestamp), r_point(t.position), t.text, t.font_size,
                             r_color(t.text_color), r_color(t.background_color))


CASES: dict[str, tuple[Any, Callable[[Any], Any], Any]] = {
    "Time": (times, r_time, rb.Time),
    "Duration": (durations, lambda d: rb.Duration(d.sec, d.nanosec), rb.Duration),
    "Header": (headers, r_header, rstd.Header),
    "RegionOfInterest": (
        st.builds(m.RegionOfInterest, u32, u32, u32, u32, st.booleans()),
        lambda r: rs.RegionOfInterest(r.x_offset, r.y_offset, r.height, r.width, r.do_rectify),
        rs.RegionOfInterest,
    ),
    "CameraInfo": (
        st.builds(m.CameraInfo, headers, u32, u32, text, st.lists(f64, **small), st.lists(f64, min_size=9, max_size=9),
                  st.lists(f64, min_size=9, max_size=9), st.lists(f64, min_size=12, max_size=12), u32, u32,
                  st.builds(m.RegionOfInterest, u32, u32, u32, u32, st.booleans())),
        lambda c: rs.CameraInfo(r_header(c.header), c.height, c.width, c.distortion_model, c.d, c.k, c.r, c.p,
                                c.binning_x, c.binning_y,
                                rs.RegionOfInterest(c.roi.x_offset, c.roi.y_offset, c.roi.height, c.roi.width,
                                                    c.roi.do_rectify)),
        rs.CameraInfo,
    ),
    "CompressedImage": (
        st.builds(m.CompressedImage, headers, text, blob),
        lambda c: rs.CompressedImage(r_header(c.header), c.format, c.data),
        rs.CompressedImage,
    ),
    "Track": (tracks, lambda t: re_.Track(t.id, t.lifetime, r_time(t.created)), re_.Track),
    "Detect": (
        st.builds(m.Detect, headers, times, times, times, st.lists(boxes, **small)),
        lambda d: re_.Detect(r_header(d.header), r_time(d.input_timestamp), r_time(d.model_time),
                             r_time(d.output_time), [r_box(b) for b in d.boxes]),
        re_.Detect,
    ),
    "Mask": (masks, lambda k: r_mask(k, re_.Mask), re_.Mask),
    "Model": (
        st.builds(m.Model, headers, durations, durations, durations, durations, st.lists(boxes, **small),
                  st.lists(masks, **small)),
        lambda d: re_.Model(r_header(d.header), *(rb.Duration(x.sec, x.nanosec) for x in
                                                  (d.input_time, d.model_time, d.output_time, d.decode_time)),
                            boxes=[r_box(b) for b in d.boxes], masks=[r_mask(k, re_.MaskBox) for k in d.masks]),
        re_.Model,
    ),
    "ModelInfo": (
        model_infos,
        lambda i: re_.ModelInfo(r_header(i.header), input_shape=i.input_shape, output_shape=i.output_shape,
                                labels=i.labels, model_type=i.model_types, model_format=i.model_format,
                                model_name=i.model_name, input_dtype=i.input_dtype, output_dtype=i.output_dtype,
                                input_type=i.input_type, output_type=i.output_type),
        re_.ModelInfo,
    ),
    "Tensor": (tensors(), r_tensor, re_.Tensor),
    "TensorStamped": (
        st.builds(m.TensorStamped, headers, u64, tensors()),
        lambda s: re_.TensorStamped(stamp=r_time(s.header.stamp), frame_id=s.header.frame_id, seq=s.seq,
                                    tensor=r_tensor(s.tensor)),
        re_.TensorStamped,
    ),
    "CameraFrame": (
        st.builds(m.CameraFrame, headers, u64, tensors()),
        lambda s: re_.CameraFrame(stamp=r_time(s.header.stamp), frame_id=s.header.frame_id, seq=s.seq,
                                  tensor=r_tensor(s.tensor)),
        re_.CameraFrame,
    ),
    "Point2": (points, r_point, rf.Point2),
    "Color": (colors, r_color, rf.Color),
    "CircleAnnotation": (
        st.builds(m.CircleAnnotation, times, points, f64, f64, colors, colors), r_circle, rf.CircleAnnotations),
    "PointsAnnotation": (
        st.builds(m.PointsAnnotation, times, u8, st.lists(points, **small), colors, st.lists(colors, **small),
                  colors, f64),
        r_points, rf.PointAnnotation),
    "TextAnnotation": (st.builds(m.TextAnnotation, times, points, text, f64, colors, colors), r_text,
                       rf.TextAnnotation),
    "ImageAnnotations": (
        st.builds(m.ImageAnnotations,
                  st.lists(st.builds(m.CircleAnnotation, times, points, f64, f64, colors, colors), max_size=2),
                  st.lists(st.builds(m.PointsAnnotation, times, u8, st.lists(points, max_size=3), colors,
                                     st.lists(colors, max_size=3), colors, f64), max_size=2),
                  st.lists(st.builds(m.TextAnnotation, times, points, text, f64, colors, colors), max_size=2)),
        lambda a: rf.ImageAnnotation(circles=[r_circle(c) for c in a.circles],
                                     points=[r_points(p) for p in a.points], texts=[r_text(t) for t in a.texts]),
        rf.ImageAnnotation,
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_byte_identical_both_directions(name: str) -> None:
    strategy, to_reference, reference_cls = CASES[name]

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(strategy)
    def check(ours: Any) -> None:
        reference_bytes = to_reference(ours).to_bytes()
        our_bytes = m.encode(ours)
        assert our_bytes == reference_bytes
        assert encode_with_pycdr2(ours) == our_bytes  # the compiled writer against pycdr2 itself
        assert m.decode(type(ours), reference_bytes) == ours
        assert reference_cls.from_cdr(our_bytes).to_bytes() == our_bytes

    check()


def test_every_reference_type_is_covered() -> None:
    """A new message type in edgefirst-schemas that we also speak must get a parity case."""
    ours = {name for name in m.__all__ if isinstance(getattr(m, name), type) and hasattr(getattr(m, name), "__idl__")}
    assert ours - set(CASES) <= {"DmaBuffer", "Box", "TensorPlane"}  # absent from 4.x or not standalone there


def test_reference_decodes_fields_we_wrote() -> None:
    frame = m.CameraFrame(m.Header(m.Time(10, 20), "camera"), 42,
                          m.Tensor(storage_kind=2, pid=1234, dtype=0, shape=[1080, 1920], format="YUYV",
                                   planes=[m.TensorPlane(handle=7, stride=3840, size=4147200, used=4147200)]))
    decoded = re_.CameraFrame.from_cdr(m.encode(frame))
    assert (decoded.seq, decoded.frame_id, decoded.stamp.sec) == (42, "camera", 10)
    tensor = decoded.tensor
    assert (tensor.pid, tensor.format, tensor.shape, tensor.planes[0].handle) == (1234, "YUYV", [1080, 1920], 7)
    info = re_.ModelInfo.from_cdr(m.encode(m.ModelInfo(labels=["person"], model_types="Detection",
                                                       input_type=m.ModelInfo.UINT8, input_dtype=m.ModelInfo.DTYPE_U8)))
    assert (info.labels, info.model_type, info.input_dtype, info.has_dtype_fields) == (["person"], "Detection", 0, True)


def test_model_info_without_dtype_fields_still_decodes() -> None:
    """Senders older than schemas 4.x (EdgeFirst model node 2.7) omit the trailing dtype bytes."""
    full = m.encode(m.ModelInfo(input_type=m.ModelInfo.INT8, output_type=m.ModelInfo.FLOAT32,
                                input_dtype=m.ModelInfo.DTYPE_I8, output_dtype=m.ModelInfo.DTYPE_F32,
                                model_name="yolo"))
    legacy = full[:-2]
    decoded = m.decode(m.ModelInfo, legacy)
    assert (decoded.model_name, decoded.input_dtype, decoded.output_dtype) == ("yolo", 1, 9)
    reference = re_.ModelInfo.from_cdr(legacy)
    assert reference.has_dtype_fields is False


# -- fixed-length arrays of structs and strings (no shipped schema has one; the encoder supports them) --

def test_fixed_arrays_of_structs_and_strings_match_pycdr2() -> None:
    message = FixedArrays([m.Time(1, 2), m.Time(3, 4)], ["a", "bc"])
    assert encode(message) == encode_with_pycdr2(message)


@pytest.mark.parametrize(("stamps", "names", "error"), [
    ([m.Time(1, 2)], ["a", "b"], "stamps needs 2 elements, got 1"),
    ([m.Time(1, 2), m.Time(3, 4)], ["a", "b", "c"], "names needs 2 strings, got 3"),
])
def test_fixed_arrays_of_the_wrong_length_are_refused(stamps: list[m.Time], names: list[str], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        encode(FixedArrays(stamps, names))


# -- the per-frame messages built straight to CDR, every box at once (what the node publishes) --

@dataclass(frozen=True)
class _Track:
    id: str
    lifetime: int
    created_ns: int


_NANOS = 1_000_000_000
unit_f32 = st.floats(-2.0, 2.0, width=32)
stamp_ns = st.integers(-(2**31) * _NANOS, (2**31 - 1) * _NANOS + _NANOS - 1)
ascii_ids = st.text("0123456789abcdef-", min_size=0, max_size=40)
box_tracks = st.one_of(st.none(), st.builds(_Track, st.one_of(ascii_ids, text), i32, stamp_ns))


@st.composite
def frame_results(draw: st.DrawFn, max_boxes: int = 8) -> FrameResult:
    count = draw(st.integers(0, max_boxes))
    boxes = np.array(draw(st.lists(st.tuples(unit_f32, unit_f32, unit_f32, unit_f32), min_size=count,
                                   max_size=count)), np.float32).reshape(count, 4)
    scores = np.array(draw(st.lists(f32, min_size=count, max_size=count)), np.float32)
    classes = np.array(draw(st.lists(st.integers(0, 1000), min_size=count, max_size=count)), np.int32)
    labels = draw(st.lists(st.one_of(st.sampled_from(["person", "car", "Normal", "Fall"]), text), min_size=count,
                           max_size=count))
    tracks = draw(st.one_of(st.none(), st.lists(box_tracks, min_size=count, max_size=count)))
    times = StageTimes(*(draw(st.integers(0, 2**30 * _NANOS - 1)) for _ in range(5)))  # decode + track fit int32 s
    return FrameResult(draw(headers), Detections(boxes, scores, classes), labels, tracks, times)


FRAME_CHECKS = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]  # the fixture only picks a packing


@pytest.fixture(params=["box by box", "all boxes at once"])
def packing(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways the per-frame encoders lay out boxes: in Python for small frames, with numpy for big ones."""
    small = 10**6 if request.param == "box by box" else -1
    monkeypatch.setattr(outbound, "SMALL_FRAME", small)
    monkeypatch.setattr(annotations, "SMALL_FRAME", small)
    return str(request.param)


SUBNORMAL_BOX = FrameResult(m.Header(m.Time(0, 0), ""), Detections(
    np.array([[0.0, 0.0, 0.0, -1e-45]], np.float32), np.zeros(1, np.float32), np.zeros(1, np.int32)),
    ["person"], None, StageTimes(0, 0, 0, 0, 0))
"""Found by CI: half of a float32 subnormal rounded in float32 gave +0.0 where the message classes give -0.0."""


@settings(max_examples=150, deadline=None, suppress_health_check=FRAME_CHECKS)
@given(frame_results(), st.lists(masks, max_size=3))
@example(SUBNORMAL_BOX, [])
def test_frame_detect_and_model_match_the_message_encoders(packing: str, result: FrameResult,
                                                          mask_list: list[m.Mask]) -> None:
    detect = detect_message(result)
    boxes_cdr = box_sequence(result)
    assert detect_cdr(result, boxes_cdr) == detect_cdr(result) == encode(detect) == encode_with_pycdr2(detect)
    assert detect_cdr(result) == re_.Detect(r_header(detect.header), r_time(detect.input_timestamp),
                                            r_time(detect.model_time), r_time(detect.output_time),
                                            [r_box(b) for b in detect.boxes]).to_bytes()
    model = model_message(result, mask_list)
    assert model_cdr(result, mask_list, boxes_cdr) == encode(model) == encode_with_pycdr2(model)


@settings(max_examples=150, deadline=None, suppress_health_check=FRAME_CHECKS)
@given(frame_results(), st.sampled_from(["label", "score", "label-score", "index", "track"]), text,
       st.tuples(st.floats(1.0, 8192.0), st.floats(1.0, 8192.0)))
def test_frame_annotations_match_the_message_encoders(packing: str, result: FrameResult, mode: str, status: str,
                                                      size: tuple[float, float]) -> None:
    width, height = size
    message = frame_annotations(result, status=status, label_mode=mode, width=width, height=height)
    ours = frame_annotations_cdr(result, status=status, label_mode=mode, width=width, height=height)
    assert ours == encode(message) == encode_with_pycdr2(message)
    assert boxes_and_annotations_cdr(result, status=status, label_mode=mode, width=width, height=height) == (
        box_sequence(result), ours)
    assert ours == rf.ImageAnnotation(circles=[], points=[r_points(p) for p in message.points],
                                      texts=[r_text(t) for t in message.texts]).to_bytes()


@pytest.mark.parametrize("count", [1, 50, 300, 1500])
def test_busy_frames_with_ragged_labels_and_ids(packing: str, count: int) -> None:
    rng = np.random.default_rng(count)
    xy = rng.uniform(0, 0.9, (count, 2)).astype(np.float32)
    labels = [["person", "car", "bicycle", "é", ""][i % 5] for i in range(count)]
    tracks = [None if i % 7 == 0 else _Track(f"{i:08x}-0000-4000-8000-{i:012x}"[: 36 - i % 3], i, i * 33_000_000)
              for i in range(count)]
    result = FrameResult(m.Header(m.Time(1_700_000_000, 5), "camera"),
                         Detections(np.concatenate([xy, xy + 0.1], axis=1), rng.uniform(0, 1, count).astype(np.float32),
                                    np.arange(count, dtype=np.int32)), labels, tracks, StageTimes(1, 2, 3, 4, 5))
    assert detect_cdr(result) == encode(detect_message(result))
    for mode in ("label", "track", "label-score"):
        expected = encode(frame_annotations(result, status="m.tflite", label_mode=mode, width=1920, height=1080))
        assert frame_annotations_cdr(result, status="m.tflite", label_mode=mode, width=1920, height=1080) == expected
        assert boxes_and_annotations_cdr(result, status="m.tflite", label_mode=mode, width=1920, height=1080) == (
            box_sequence(result), expected)


@settings(max_examples=200, deadline=None)
@given(masks)
def test_mask_written_directly_matches_the_message_encoder(mask: m.Mask) -> None:
    assert mask_cdr(mask) == encode(mask) == re_.Mask(mask.height, mask.width, mask.length, mask.encoding, mask.mask,
                                                      mask.boxed).to_bytes()


def test_times_beyond_int32_seconds_are_refused(packing: str) -> None:
    result = FrameResult(m.Header(m.Time(1, 2), ""), Detections(np.zeros((1, 4), np.float32),
                                                               np.zeros(1, np.float32), np.zeros(1, np.int32)),
                         ["a"], [_Track("x", 1, 2**31 * _NANOS)], StageTimes())
    with pytest.raises(ValueError, match="int32"):
        box_sequence(result)
