"""A real photo through the camera path (YUYV frame, CPU preprocessing, letterbox) into the real YOLOv8 models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from edgenode.adapters.tflite import import_runtimes
from edgenode.core.colour import encode_rgb
from edgenode.core.pixels import YUYV, describe_frame
from edgenode.core.preprocess import CpuPreprocessor
from edgenode.core.tensors import TensorSpec
from edgenode.tools.camera.sources import read_image

PEOPLE = np.array([[216, 394, 344, 892], [34, 388, 225, 908], [688, 347, 810, 885]], np.float32)  # bus.jpg


def iou(box: NDArray[np.float32], boxes: NDArray[np.float32]) -> NDArray[np.float32]:
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return np.asarray(inter / (area + areas - inter), np.float32)


@pytest.mark.models
@pytest.mark.parametrize("resize", ["letterbox", "stretch"])
@pytest.mark.parametrize("model", ["yolov8s-fall-int8.tflite", "yolov8s-fall-f32.tflite"])
def test_bus_photo_as_a_yuyv_frame_finds_the_three_people(shared_models: Path, model: str, resize: str) -> None:
    interpreter = import_runtimes()[0].interpreter(model_path=str(shared_models / model), num_threads=2)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    scale, zero_point = detail["quantization"]
    spec = TensorSpec(detail["name"], tuple(detail["shape"]), np.dtype(detail["dtype"]), scale, zero_point)

    rgb = read_image(shared_models / "bus.jpg")  # 810 x 1080
    height, width = rgb.shape[:2]
    frame = encode_rgb(rgb, YUYV).reshape(-1)
    pre = CpuPreprocessor(spec, resize)
    geometry = pre.convert_array(frame, describe_frame(YUYV, width, height, 0, len(frame)))

    interpreter.set_tensor(detail["index"], pre.tensor)
    interpreter.invoke()
    output = interpreter.get_output_details()[0]
    raw = interpreter.get_tensor(output["index"])[0].astype(np.float32)
    out_scale, out_zero = output["quantization"]
    if out_scale:
        raw = (raw - out_zero) * out_scale
    cx, cy, w, h, normal = raw[0], raw[1], raw[2], raw[3], raw[4]
    keep = normal > 0.25
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)[keep]
    frame_boxes = geometry.boxes_to_frame(boxes.astype(np.float32)) * np.array([width, height] * 2, np.float32)
    for person in PEOPLE:
        assert len(frame_boxes) and iou(person, frame_boxes).max() > 0.6, f"no Normal box on {person}"
