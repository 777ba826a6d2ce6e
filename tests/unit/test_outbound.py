"""Outbound messages are filled as the EdgeFirst Model Node fills them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

import edgenode.messages as m
from edgenode.core.detections import Detections
from edgenode.core.outbound import (
    LOADING_MODEL_NAME,
    FrameResult,
    ModelInfoTemplate,
    StageTimes,
    detect_message,
    empty_detect,
    empty_mask,
    instance_masks,
    model_message,
)
from edgenode.core.tensors import TensorSpec

HEADER = m.Header(m.Time(1_700_000_000, 250_000_000), "camera")


@dataclass(frozen=True)
class Info:
    id: str
    lifetime: int
    created_ns: int


def detections() -> Detections:
    return Detections(np.array([[0.1, 0.2, 0.3, 0.6], [0.5, 0.5, 1.0, 1.0]], np.float32),
                      np.array([0.9, 0.5], np.float32), np.array([0, 3], np.int32))


def result(tracks: list[Info | None] | None = None) -> FrameResult:
    return FrameResult(HEADER, detections(), ["person", "3"], tracks,
                       StageTimes(preprocess_ns=3_000_000, invoke_ns=1_200_000_000, output_ns=10, decode_ns=400_000,
                                  track_ns=100_000))


def test_detect_fields() -> None:
    uuid = "0a1b2c3d-0000-4000-8000-000000000000"
    message = detect_message(result([Info(uuid, 4, 1_600_000_000_123), None]))
    assert message.header == HEADER
    assert message.input_timestamp == m.Time(0, 3_000_000)
    assert message.model_time == m.Time(1, 200_000_000)
    assert message.output_time == m.Time(0, 500_000)
    first, second = message.boxes
    assert (first.center_x, first.center_y) == pytest.approx((0.2, 0.4))
    assert (first.width, first.height) == pytest.approx((0.2, 0.4))
    assert (first.label, first.score, first.distance, first.speed) == ("person", pytest.approx(0.9), 0.0, 0.0)
    assert first.track == m.Track(uuid, 4, m.Time(1600, 123))
    assert second.track == m.Track("", 1, HEADER.stamp)  # untracked: created = frame stamp
    assert second.label == "3"


def test_detect_round_trips_through_edgefirst_schemas() -> None:
    em = pytest.importorskip("edgefirst.schemas.edgefirst_msgs")
    decoded = em.Detect.from_cdr(m.encode(detect_message(result())))
    assert [b.label for b in decoded.boxes] == ["person", "3"]
    assert decoded.model_time.sec == 1 and decoded.frame_id == "camera"


def test_model_message_carries_masks_and_durations() -> None:
    masked = Detections(detections().boxes, detections().scores, detections().classes,
                        (np.full((2, 3), 255, np.uint8), np.zeros((1, 1), np.uint8)))
    frame = FrameResult(HEADER, masked, ["a", "b"], None, result().times)
    message = model_message(frame, instance_masks(masked))
    assert message.input_time == m.Duration(0, 3_000_000)
    assert message.decode_time == m.Duration(0, 500_000)
    assert [(k.height, k.width, k.length, k.boxed, k.mask) for k in message.masks] == [
        (2, 3, 1, True, b"\xff" * 6), (1, 1, 1, True, b"\x00")]
    assert instance_masks(detections()) == []


def test_model_info_template_equals_a_full_encode() -> None:
    template = ModelInfoTemplate.for_model(
        input_spec=TensorSpec("in", (1, 640, 640, 3), np.dtype("int8"), 1 / 255, -128),
        output_spec=TensorSpec("out", (1, 6, 8400), np.dtype("float32")),
        labels=["Normal", "Fall"], model_types="Detection", model_format="TFLite", model_name="yolov8s")
    stamp = m.Time(1_700_000_123, 456)
    full = m.ModelInfo(m.Header(stamp, ""), [1, 640, 640, 3], m.ModelInfo.INT8, [1, 6, 8400], m.ModelInfo.FLOAT32,
                       ["Normal", "Fall"], "Detection", "TFLite", "yolov8s", m.ModelInfo.DTYPE_I8,
                       m.ModelInfo.DTYPE_F32)
    assert template.encode_at(stamp) == m.encode(full)
    assert m.decode(m.ModelInfo, template.encode_at(m.Time(7, 8))).header.stamp == m.Time(7, 8)


def test_heartbeat_messages() -> None:
    loading = m.decode(m.ModelInfo, ModelInfoTemplate.loading().encode_at(HEADER.stamp))
    assert (loading.model_name, loading.model_types, loading.input_shape, loading.output_shape, loading.labels) == (
        LOADING_MODEL_NAME, "", [0, 0, 0, 0], [0, 0, 0, 0], [])
    assert (loading.input_type, loading.output_type, loading.header.stamp) == (0, 0, HEADER.stamp)
    assert empty_detect(HEADER) == m.Detect(HEADER)
    assert empty_mask() == m.Mask(0, 0, 1, "", b"", False)


def test_misaligned_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="labels"):
        FrameResult(HEADER, detections(), ["one"], None, StageTimes())
    with pytest.raises(ValueError, match="tracks"):
        FrameResult(HEADER, detections(), ["a", "b"], [None], StageTimes())
