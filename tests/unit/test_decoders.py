"""Every decoder on crafted tensors with known answers (boxes normalised x1, y1, x2, y2)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from edgenode.core.decoder_factory import build_decoder
from edgenode.core.detections import Detections
from edgenode.core.masks import semantic_mask, sigmoid_255
from edgenode.core.model_config import ModelError, parse_config_text
from edgenode.core.tensors import TensorSpec

IMAGE = TensorSpec("images", (1, 640, 640, 3), np.dtype(np.uint8), index=0)
N = 8400


class Out:
    """A model output for a test: the array and its quantisation."""

    def __init__(self, array: np.ndarray, scale: float = 0.0, zero_point: int = 0, name: str = "") -> None:
        self.array, self.scale, self.zero_point, self.name = array, scale, zero_point, name


def quantize(real: np.ndarray, scale: float, zero_point: int, dtype: type = np.int8) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.clip(np.round(real / scale) + zero_point, info.min, info.max).astype(dtype)


def run(outputs: list[Out], config: str | None = None, *, image: TensorSpec = IMAGE, family: str = "",
        ssd: bool = False, labels: tuple[str, ...] = (), end_to_end: bool | None = None, **settings: object
        ) -> Detections:
    specs = [TensorSpec(o.name or f"output_{i}", o.array.shape, o.array.dtype, o.scale, o.zero_point, 100 + i)
             for i, o in enumerate(outputs)]
    parsed = parse_config_text(config, "test config") if config else None
    parameters: dict[str, Any] = {"threshold": 0.5, "iou": 0.45, **settings}
    decoder = build_decoder(parsed, [image], specs, **parameters, family=family, ssd=ssd, labels=labels,
                            end_to_end=end_to_end)
    detections = decoder.decode([o.array for o in outputs])
    assert detections.boxes.dtype == np.float32 and detections.scores.dtype == np.float32
    assert detections.classes.dtype == np.int32
    return detections


def yolo_head(classes: int = 3, extra: int = 0, anchors: int = N) -> np.ndarray:
    """A float ``[1, 4 + classes + extra, anchors]`` head with three planted boxes and noise."""
    head = np.zeros((1, 4 + classes + extra, anchors), np.float32)
    head[0, 4:4 + classes] = np.random.default_rng(1).uniform(0, 0.2, (classes, anchors))
    plant(head, 100, (0.5, 0.375, 0.25, 0.125), 2, 0.9)      # kept
    plant(head, 101, (0.51, 0.375, 0.25, 0.125), 2, 0.8)     # duplicate of 100: suppressed
    plant(head, 5000, (0.25, 0.75, 0.125, 0.25), 0, 0.6)     # kept
    plant(head, 6000, (0.75, 0.75, 0.125, 0.25), 1, 0.3)     # below the threshold
    return head


def plant(head: np.ndarray, anchor: int, xywh: tuple[float, ...], cls: int, score: float, *, first: int = 4) -> None:
    head[0, :4, anchor] = xywh
    head[0, first:first + 3, anchor] = 0.0
    head[0, first + cls, anchor] = score


EXPECTED_BOXES = np.array([[0.375, 0.3125, 0.625, 0.4375], [0.1875, 0.625, 0.3125, 0.875]], np.float32)


def test_yolov8_float() -> None:
    found = run([Out(yolo_head())])
    np.testing.assert_allclose(found.boxes, EXPECTED_BOXES, atol=1e-6)
    np.testing.assert_allclose(found.scores, [0.9, 0.6], rtol=1e-6)
    assert found.classes.tolist() == [2, 0] and found.instance_masks is None


def test_yolov8_transposed_head_is_not_end_to_end() -> None:
    found = run([Out(np.ascontiguousarray(yolo_head().transpose(0, 2, 1)))])
    np.testing.assert_allclose(found.boxes, EXPECTED_BOXES, atol=1e-6)
    assert found.classes.tolist() == [2, 0]


def test_yolov8_int8_thresholds_in_the_quantised_domain() -> None:
    scale, zero_point = 1 / 255, -128
    head = quantize(yolo_head(), scale, zero_point)
    head[0, 4:7, 7000] = -128
    head[0, :4, 7000] = quantize(np.array([0.5, 0.5, 0.1, 0.1]), scale, zero_point)
    head[0, 5, 7000] = math.ceil(0.5 / scale + zero_point)          # exactly reaches 0.5: kept
    head[0, :4, 7001] = head[0, :4, 7000] + 60                        # far away, one step below: dropped
    head[0, 5, 7001] = head[0, 5, 7000] - 1
    found = run([Out(head, scale, zero_point)])
    assert found.classes.tolist() == [2, 0, 1]
    np.testing.assert_allclose(found.scores, (head[0, [6, 4, 5], [100, 5000, 7000]].astype(np.float32) + 128) * scale,
                               rtol=1e-6)
    np.testing.assert_allclose(found.boxes[:2], EXPECTED_BOXES, atol=2 * scale)


def test_yolov5_objectness_times_class() -> None:
    head = np.zeros((1, 25200, 5 + 3), np.float32)
    head[0, 10, :] = [0.5, 0.5, 0.2, 0.2, 0.9, 0.1, 0.8, 0.0]      # 0.9 x 0.8 = 0.72: kept
    head[0, 20, :] = [0.2, 0.2, 0.1, 0.1, 0.4, 1.0, 0.0, 0.0]      # objectness too low
    head[0, 30, :] = [0.8, 0.8, 0.1, 0.1, 0.95, 0.0, 0.0, 0.5]     # 0.475: below 0.5
    found = run([Out(head)])                                        # 25200 = 3 x 8400: YOLOv5
    np.testing.assert_allclose(found.scores, [0.72], rtol=1e-6)
    np.testing.assert_allclose(found.boxes, [[0.4, 0.4, 0.6, 0.6]], atol=1e-6)
    assert found.classes.tolist() == [1]


def test_split_boxes_and_scores() -> None:
    head = yolo_head()
    found = run([Out(head[:, 4:].copy(), name="scores"), Out(head[:, :4].copy(), name="boxes")])
    np.testing.assert_allclose(found.boxes, EXPECTED_BOXES, atol=1e-6)
    assert found.classes.tolist() == [2, 0]


def test_raw_dfl_boxes() -> None:
    logits = np.zeros((1, 64, N), np.float32)
    anchor = 5 * 80 + 10                                  # stride 8, cell x=10, y=5: centre (84, 44) px
    for side, distance in enumerate((2, 3, 4, 1)):        # left, top, right, bottom in cells
        logits[0, side * 16 + distance, anchor] = 50.0
    scores = np.zeros((1, 2, N), np.float32)
    scores[0, 1, anchor] = 0.8
    found = run([Out(logits), Out(scores)])
    np.testing.assert_allclose(found.boxes, [[68 / 640, 20 / 640, 116 / 640, 52 / 640]], atol=1e-5)
    assert found.classes.tolist() == [1]


def proto_grid(channels: int = 2, size: int = 32) -> np.ndarray:
    """Prototype 0 is the column index, prototype 1 is -1 everywhere."""
    protos = np.zeros((1, size, size, channels), np.float32)
    protos[0, :, :, 0] = np.arange(size, dtype=np.float32)[None, :] / 8
    protos[0, :, :, 1] = -1.0
    return protos


def expected_mask(box: np.ndarray, coefficients: tuple[float, float], size: int = 32) -> np.ndarray:
    x0, y0 = int(np.floor(box[0] * size)), int(np.floor(box[1] * size))
    x1, y1 = int(np.ceil(box[2] * size)), int(np.ceil(box[3] * size))
    columns = np.arange(x0, x1, dtype=np.float32) / 8
    logits = coefficients[0] * columns[None, :] - coefficients[1] + np.zeros((y1 - y0, 1), np.float32)
    return sigmoid_255(logits.astype(np.float32))


def test_yolov8_instance_segmentation() -> None:
    head = yolo_head(extra=2)
    head[0, 7:9, 100] = [1.0, 2.0]
    head[0, 7:9, 5000] = [-0.5, 0.0]
    found = run([Out(proto_grid()), Out(head)])               # protos first, as real exports do
    assert found.instance_masks is not None and len(found.instance_masks) == 2
    first, second = found.instance_masks
    assert first.shape == (4, 8) and first.dtype == np.uint8  # x 12..20, y 10..14 of the 32x32 grid
    np.testing.assert_array_equal(first, expected_mask(EXPECTED_BOXES[0], (1.0, 2.0)))
    np.testing.assert_array_equal(second, expected_mask(EXPECTED_BOXES[1], (-0.5, 0.0)))


def test_instance_masks_from_quantised_protos() -> None:
    head = yolo_head(extra=2)
    head[0, 7:9, 100] = [1.0, 2.0]
    head[0, 7:9, 5000] = [-0.5, 0.0]
    protos = quantize(proto_grid(), 1 / 32, 0)
    found = run([Out(head), Out(protos, 1 / 32, 0)])
    assert found.instance_masks is not None
    for mask, box, coef in zip(found.instance_masks, EXPECTED_BOXES, [(1.0, 2.0), (-0.5, 0.0)], strict=True):
        assert np.abs(mask.astype(int) - expected_mask(box, coef).astype(int)).max() <= 1


def test_two_way_segmentation_and_split_segmentation() -> None:
    head = yolo_head()
    coefficients = np.zeros((1, 2, N), np.float32)
    coefficients[0, :, 100] = [1.0, 2.0]
    two_way = run([Out(head), Out(coefficients), Out(proto_grid())])
    split = run([Out(head[:, :4].copy()), Out(proto_grid()), Out(coefficients), Out(head[:, 4:].copy())])
    for found in (two_way, split):
        assert found.classes.tolist() == [2, 0] and found.instance_masks is not None
        np.testing.assert_array_equal(found.instance_masks[0], expected_mask(EXPECTED_BOXES[0], (1.0, 2.0)))


def end_to_end_rows(extra: int = 0) -> np.ndarray:
    rows = np.zeros((1, 300, 6 + extra), np.float32)
    rows[0, 0, :6] = [0.1, 0.2, 0.3, 0.4, 0.95, 7]
    rows[0, 1, :6] = [0.15, 0.2, 0.35, 0.4, 0.85, 2]     # overlaps row 0: kept, NMS was the model's
    rows[0, 2, :6] = [0.5, 0.5, 0.9, 0.9, 0.4, 1]        # below the threshold
    return rows


def test_end_to_end() -> None:
    found = run([Out(end_to_end_rows())])
    np.testing.assert_allclose(found.boxes, [[0.1, 0.2, 0.3, 0.4], [0.15, 0.2, 0.35, 0.4]], atol=1e-6)
    np.testing.assert_allclose(found.scores, [0.95, 0.85], rtol=1e-6)
    assert found.classes.tolist() == [7, 2]
    assert run([Out(end_to_end_rows())], classes=("2",)).classes.tolist() == [2]
    assert len(run([Out(end_to_end_rows())], max_boxes=1)) == 1


def test_end_to_end_int8_and_segmentation() -> None:
    rows = end_to_end_rows(extra=2)
    rows[0, 0, 6:] = [1.0, 2.0]
    found = run([Out(quantize(rows, 1 / 16, 0), 1 / 16, 0), Out(proto_grid())])
    assert found.classes.tolist() == [7, 2] and found.instance_masks is not None
    assert found.instance_masks[0].shape == (6, 6)       # quantised box 0.125..0.3125 x 0.1875..0.375: 4..10, 6..12


def test_split_end_to_end() -> None:
    rows = end_to_end_rows()
    found = run([Out(rows[:, :, :4].copy(), name="boxes"), Out(rows[:, :, 5:6].copy(), name="classes"),
                 Out(rows[:, :, 4:5].copy(), name="scores")])
    assert found.classes.tolist() == [7, 2]
    np.testing.assert_allclose(found.scores, [0.95, 0.85], rtol=1e-6)


def test_modelpack_detection_int8() -> None:
    boxes = np.zeros((1, 1000, 1, 4), np.float32)
    scores = np.zeros((1, 1000, 3), np.float32)
    boxes[0, 10, 0] = [0.25, 0.25, 0.5, 0.5]
    scores[0, 10] = [0.1, 0.2, 0.9]
    boxes[0, 11, 0] = [0.26, 0.25, 0.5, 0.5]
    scores[0, 11] = [0.8, 0.0, 0.0]
    found = run([Out(quantize(boxes, 1 / 128, 0), 1 / 128, 0), Out(quantize(scores, 1 / 255, -128), 1 / 255, -128)])
    assert found.classes.tolist() == [2]
    np.testing.assert_allclose(found.boxes, [[0.25, 0.25, 0.5, 0.5]], atol=1 / 128)
    aware = run([Out(boxes), Out(scores)], nms="aware")
    assert aware.classes.tolist() == [2, 0]


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_modelpack_split_detection_with_anchors() -> None:
    anchors = [[0.1, 0.2], [0.3, 0.4]]
    level = np.full((1, 4, 5, 2 * (5 + 2)), -20.0, np.float32)   # H=4, W=5, 2 anchors, 2 classes
    cell = level[0, 2, 3, 7:14]                                   # y=2, x=3, anchor 1
    cell[:] = [0.0, logit(0.75), 0.0, logit(0.25), 20.0, -20.0, logit(0.8)]
    config = f"""
outputs:
  - {{type: detection, decoder: modelpack, shape: [1, 4, 5, 14], anchors: {anchors}}}
"""
    found = run([Out(level)], config)
    x, y = (2 * 0.5 + 3 - 0.5) / 5, (2 * 0.75 + 2 - 0.5) / 4
    w, h = 4 * 0.25 * 0.3, 4 * 0.0625 * 0.4
    np.testing.assert_allclose(found.boxes, [[x - w / 2, y - h / 2, x + w / 2, y + h / 2]], atol=1e-5)
    np.testing.assert_allclose(found.scores, [0.8], rtol=1e-4)
    assert found.classes.tolist() == [1]


def test_modelpack_split_int8_and_one_class_uses_objectness() -> None:
    level = np.full((1, 2, 2, 6), -10.0, np.float32)
    level[0, 1, 0] = [0.0, 0.0, 0.0, 0.0, logit(0.7), logit(0.1)]
    scale, zero_point = 0.1, 0
    config = "outputs: [{type: detection, decoder: modelpack, shape: [1, 2, 2, 6], anchors: [[0.5, 0.5]]}]"
    found = run([Out(quantize(level, scale, zero_point), scale, zero_point)], config)
    assert found.classes.tolist() == [0]
    np.testing.assert_allclose(found.scores, [0.7], atol=0.02)
    np.testing.assert_allclose(found.boxes, [[0.0, 0.5, 0.5, 1.0]], atol=0.01)


@pytest.mark.parametrize(("values", "expected"), [
    (np.array([[[-128, 0, 127]]], np.int8), [[[0, 128, 255]]]),
    (np.array([[[0, 7, 255]]], np.uint8), [[[0, 7, 255]]]),
    (np.array([[[-32768, 0, 32767]]], np.int16), [[[0, 128, 255]]]),
    (np.array([[[-2.0, 0.0, 2.0]]], np.float32), [[[0, 128, 255]]]),
    (np.array([[[1.0, 1.0, 1.0]]], np.float32), [[[0, 0, 0]]]),
])
def test_semantic_mask_conversion(values: np.ndarray, expected: list) -> None:
    assert semantic_mask(values).tolist() == expected


def test_modelpack_segmentation_nchw_becomes_hwc() -> None:
    scores = np.zeros((1, 3, 256, 320), np.int8)
    scores[0, 2, 10, 20] = 100
    found = run([Out(scores)])
    assert len(found) == 0 and found.semantic_mask is not None
    assert found.semantic_mask.shape == (256, 320, 3) and found.semantic_mask[10, 20].tolist() == [128, 128, 228]
    scores[0, 2, 10, 20] = 0
    assert found.semantic_mask[10, 20, 2] == 228                  # a copy, not a view of the output


def test_modelpack_segmentation_with_detection() -> None:
    boxes = np.zeros((1, 1000, 1, 4), np.float32)
    scores = np.zeros((1, 1000, 2), np.float32)
    boxes[0, 3, 0] = [0.5, 0.5, 0.75, 0.75]
    scores[0, 3] = [0.2, 0.7]
    seg = np.zeros((1, 120, 160, 3), np.uint8)
    found = run([Out(seg), Out(scores), Out(boxes)])
    assert found.classes.tolist() == [1] and found.semantic_mask is not None
    assert found.semantic_mask.shape == (120, 160, 3)


def test_class_filter_applies_before_nms() -> None:
    head = yolo_head()
    plant(head, 102, (0.5, 0.375, 0.25, 0.125), 1, 0.95)        # class 1 on top of the class-2 box
    labels = ("cat", "dog", "person")
    assert run([Out(head)], labels=labels).classes.tolist() == [1, 0]
    assert run([Out(head)], labels=labels, classes=("person",)).classes.tolist() == [2]
    assert run([Out(head)], labels=labels, classes=("person", "cat")).classes.tolist() == [2, 0]
    assert run([Out(head)], labels=labels, nms="aware").classes.tolist() == [1, 2, 0]
    with pytest.raises(ModelError, match="--classes horse: not a label of this model"):
        run([Out(head)], labels=labels, classes=("horse",))


def test_label_offset_shifts_class_names() -> None:
    head = yolo_head()
    labels = ("background", "cat", "dog", "person")
    assert run([Out(head)], labels=labels, label_offset=1, classes=("person",)).classes.tolist() == [2]


def test_config_nms_mode_and_cli_precedence() -> None:
    head = yolo_head()
    plant(head, 102, (0.5, 0.375, 0.25, 0.125), 1, 0.95)
    config = "nms: class_aware\noutputs: [{type: detection, shape: [1, 7, 8400]}]"
    assert run([Out(head)], config).classes.tolist() == [1, 2, 0]
    assert run([Out(head)], config, nms="agnostic").classes.tolist() == [1, 0]


def test_pixel_boxes_are_normalised() -> None:
    head = yolo_head()
    head[0, :4] *= 640
    found = run([Out(head)])
    np.testing.assert_allclose(found.boxes, EXPECTED_BOXES, atol=1e-6)
    config = "outputs: [{type: detection, shape: [1, 7, 8400], normalized: false}]"
    small = yolo_head()
    small[0, :4] *= 2   # coordinates up to 1.5 px would pass as normalised; the config says pixels
    np.testing.assert_allclose(run([Out(small)], config).boxes, EXPECTED_BOXES * 2 / 640, atol=1e-6)


def test_many_candidates_are_capped_and_max_boxes_applies() -> None:
    head = np.zeros((1, 5, N), np.float32)
    grid = np.arange(N)
    head[0, 0], head[0, 1] = (grid % 100) / 100, (grid // 100) / 100
    head[0, 2:4] = 0.005
    head[0, 4] = np.linspace(0.6, 0.99, N, dtype=np.float32)
    found = run([Out(head)], max_boxes=50)
    assert len(found) == 50 and found.scores[0] == np.float32(0.99)
    assert np.all(np.diff(found.scores) <= 0)


def test_nothing_found_and_outputs_not_retained() -> None:
    head = yolo_head()
    assert len(run([Out(np.zeros_like(head))])) == 0
    found = run([Out(head)])
    head[:] = 0
    assert found.classes.tolist() == [2, 0] and found.boxes[0, 0] == np.float32(0.375)


def test_decoder_family_flag_forces_modelpack() -> None:
    boxes = np.zeros((1, 10, 1, 4), np.float32)
    scores = np.zeros((1, 10, 2), np.float32)
    boxes[0, 0, 0], scores[0, 0] = [0.1, 0.1, 0.2, 0.2], [0.0, 0.9]
    assert run([Out(boxes), Out(scores)], ssd=True).classes.tolist() == [1]


def test_ties_over_the_candidate_cap_keep_the_first_anchors() -> None:
    head = np.zeros((1, 5, N), np.float32)
    grid = np.arange(N)
    head[0, 0], head[0, 1] = (grid % 100) / 100, (grid // 100) / 100   # apart: NMS drops nothing
    head[0, 2:4] = 0.005
    head[0, 4] = 0.75
    found = run([Out(head)], max_boxes=300)
    assert len(found) == 300                                        # the cap: 300 of 8400 tied candidates
    np.testing.assert_array_equal(found.boxes[:, 0], (grid[:300] % 100 / 100).astype(np.float32) - np.float32(0.0025))
    found_int8 = run([Out(quantize(head, 1 / 255, -128), 1 / 255, -128)], max_boxes=300)
    assert len(found_int8) == 300 and np.all(found_int8.boxes[:-1, 1] <= found_int8.boxes[1:, 1])  # anchor order


def test_a_nan_score_makes_no_candidate_and_a_nan_box_suppresses_nothing() -> None:
    head = yolo_head()
    head[0, 4, 100] = np.nan                       # the best box of class 2 has a NaN class-0 score: no candidate
    assert run([Out(head)]).classes.tolist() == [2, 0]   # its duplicate (anchor 101) is kept instead
    head = yolo_head()
    head[0, 3, 100] = np.nan                       # NaN height: kept, and suppresses nothing
    found = run([Out(head)])
    assert found.classes.tolist() == [2, 2, 0] and np.isnan(found.boxes[0, 1])


@pytest.mark.parametrize("dtype", [np.float16, np.int16, np.uint8])
def test_other_output_types_decode_as_their_values(dtype: type) -> None:
    head = yolo_head()
    if dtype is np.float16:
        expected = run([Out(head.astype(np.float16).astype(np.float32))])
        found = run([Out(head.astype(np.float16))])
    else:
        scale, zero_point = (1 / 16384, 3) if dtype is np.int16 else (1 / 255, 0)
        quantised = quantize(head, scale, zero_point, dtype)
        expected = run([Out(quantised.astype(np.float32), scale, zero_point)])
        found = run([Out(quantised, scale, zero_point)])
    assert found.classes.tolist() == expected.classes.tolist() == [2, 0]
    np.testing.assert_array_equal(found.boxes, expected.boxes)
    np.testing.assert_array_equal(found.scores, expected.scores)


def test_read_only_strided_and_wrongly_typed_outputs_decode_alike() -> None:
    head = yolo_head()
    expected = run([Out(head)])
    specs = [TensorSpec("output_0", head.shape, head.dtype, 0.0, 0, 100)]
    decoder = build_decoder(None, [IMAGE], specs, threshold=0.5, iou=0.45)
    read_only = head.copy()
    read_only.flags.writeable = False
    strided = np.asfortranarray(head)
    for outputs in ([read_only], [strided], [head.astype(np.float64)]):
        found = decoder.decode(outputs)
        np.testing.assert_array_equal(found.boxes, expected.boxes)
        assert found.classes.tolist() == expected.classes.tolist()
    with pytest.raises(ValueError, match=r"model output 0 has shape \[1, 7, 4200\]"):
        decoder.decode([head[:, :, :4200]])


def test_results_are_the_callers_not_the_next_frames() -> None:
    specs = [TensorSpec("output_0", (1, 7, N), np.dtype(np.float32), 0.0, 0, 100)]
    decoder = build_decoder(None, [IMAGE], specs, threshold=0.5, iou=0.45)
    first = decoder.decode([yolo_head()])
    boxes = first.boxes.copy()
    decoder.decode([np.zeros((1, 7, N), np.float32)])
    decoder.decode([yolo_head()[:, :, ::-1].copy()])
    np.testing.assert_array_equal(first.boxes, boxes)


def test_raw_dfl_boxes_with_no_candidate() -> None:
    assert len(run([Out(np.zeros((1, 64, N), np.float32)), Out(np.zeros((1, 2, N), np.float32))])) == 0
