"""Foxglove annotations: the reference layout, label modes and track colours."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

import edgenode.messages as m
from edgenode.core.annotations import (
    TRANSPARENT,
    WHITE,
    box_text,
    frame_annotations,
    loading_annotations,
    track_colour,
)
from edgenode.core.detections import Detections
from edgenode.core.outbound import FrameResult, StageTimes

STAMP = m.Time(10, 20)
UUID = "ff8000aa-1111-4222-8333-444455556666"


@dataclass(frozen=True)
class Info:
    id: str
    lifetime: int = 1
    created_ns: int = 0


def test_loading_layout() -> None:
    message = loading_annotations(STAMP, "/models/yolo.tflite", 1920, 1080)
    (placeholder,) = message.points
    assert (placeholder.type, placeholder.points, placeholder.outline_color, placeholder.fill_color) == (
        0, [], WHITE, TRANSPARENT)
    assert placeholder.thickness == 2.0
    (status,) = message.texts
    assert status.text == "Loading Model: /models/yolo.tflite"
    assert (status.position.x, status.position.y, status.font_size) == pytest.approx((48.0, 1026.0, 28.8))


def test_boxes_in_pixels_with_track_colours() -> None:
    detections = Detections(np.array([[0.25, 0.5, 0.75, 1.0], [0, 0, 0.5, 0.5]], np.float32),
                            np.array([0.875, 0.5], np.float32), np.array([2, 0], np.int32))
    frame = FrameResult(m.Header(STAMP, "cam"), detections, ["car", "person"], [Info(UUID), None], StageTimes())
    message = frame_annotations(frame, status="yolo.tflite", label_mode="label-score", width=640, height=480)
    assert message.texts[0].text == "yolo.tflite"
    box = message.points[1]
    assert box.type == m.PointsAnnotation.LINE_LOOP
    assert [(p.x, p.y) for p in box.points] == [(160, 240), (480, 240), (480, 480), (160, 480)]
    assert box.outline_color == m.Color(1.0, 128 / 255, 0.0, 1.0) and box.outline_colors == [box.outline_color] * 4
    assert message.points[2].outline_color == WHITE
    assert [t.text for t in message.texts[1:]] == ["car 0.88", "person 0.50"]
    assert message.texts[1].font_size == pytest.approx(12.8)
    assert all(t.timestamp == STAMP for t in message.texts) and all(p.timestamp == STAMP for p in message.points)
    assert m.decode(m.ImageAnnotations, m.encode(message)) == message


@pytest.mark.parametrize(("mode", "expected"), [("index", "2"), ("label", "car"), ("score", "0.88"),
                                               ("label-score", "car 0.88"), ("track", "ff8000aa")])
def test_label_modes(mode: str, expected: str) -> None:
    assert box_text(mode, 2, "car", 0.875, UUID) == expected


def test_track_mode_without_track_shows_score() -> None:
    assert box_text("track", 2, "car", 0.875, "") == "0.88"


def test_colour_of_bad_ids_is_white() -> None:
    assert track_colour("") == WHITE and track_colour("zz") == WHITE and track_colour("xyzxyzxyz") == WHITE
