"""Parity with ``edgefirst_hal.Decoder`` on the same synthetic tensors: boxes, scores, classes after NMS."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.hal_reference import Output, assert_same, hal_decode, ours

pytest.importorskip("edgefirst_hal")
N = 8400


def scene(classes: int = 80, objects: int = 7, duplicates: int = 3, *, noise: float = 0.1, extra: int = 0,
          seed: int = 0) -> np.ndarray:
    """A float ``[1, 4 + classes + extra, 8400]`` head: noise plus planted objects, each several times."""
    rng = np.random.default_rng(seed)
    head = np.zeros((1, 4 + classes + extra, N), np.float32)
    head[0, 4:4 + classes] = rng.uniform(0, noise, (classes, N))
    head[0, :4] = rng.uniform(0.05, 0.95, (4, N)) * np.array([[1], [1], [0.2], [0.2]], np.float32)
    head[0, 4 + classes:] = rng.normal(0, 1, (extra, N))
    anchors = rng.choice(N, objects * duplicates, replace=False)
    for k in range(objects):
        centre = rng.uniform(0.15, 0.85, 2)
        size = rng.uniform(0.05, 0.3, 2)
        cls = int(rng.integers(classes))
        for d in range(duplicates):
            a = anchors[k * duplicates + d]
            head[0, :4, a] = [*(centre + rng.normal(0, 0.01, 2)), *(size * rng.uniform(0.9, 1.1, 2))]
            head[0, 4 + cls, a] = rng.uniform(0.5, 0.95)
    return head


def crowd(count: int = 250, classes: int = 3, seed: int = 1) -> np.ndarray:
    """Many candidates (up to HAL's 300-candidate cap), overlapping often, several classes."""
    rng = np.random.default_rng(seed)
    head = np.zeros((1, 4 + classes, N), np.float32)
    head[0, 4:] = rng.uniform(0, 0.2, (classes, N))
    anchors = rng.choice(N, count, replace=False)
    head[0, :2, anchors] = rng.uniform(0.1, 0.9, (count, 2))
    head[0, 2:4, anchors] = rng.uniform(0.05, 0.25, (count, 2))
    head[0, 4 + rng.integers(classes, size=count), anchors] = rng.uniform(0.3, 1.0, count)
    return head


def quantize(real: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return np.clip(np.round(real / scale) + zero_point, -128, 127).astype(np.int8)


@pytest.mark.parametrize("aware", [False, True])
@pytest.mark.parametrize("head", [scene(), crowd()], ids=["few", "many"])
def test_yolov8_float(head: np.ndarray, aware: bool) -> None:
    outputs = [Output(head, "detection")]
    assert_same(ours(outputs, 0.25, 0.45, aware), hal_decode(outputs, 0.25, 0.45, aware))


@pytest.mark.parametrize("aware", [False, True])
@pytest.mark.parametrize("head", [scene(), crowd()], ids=["few", "many"])
def test_yolov8_int8(head: np.ndarray, aware: bool) -> None:
    scale, zero_point = 1.0 / 255, -128
    quantised = head.copy()
    quantised[0, :4] *= 0.5  # boxes share the tensor's scale: keep them in range
    outputs = [Output(quantize(quantised, scale, zero_point), "detection", scale, zero_point)]
    assert_same(ours(outputs, 0.25, 0.45, aware), hal_decode(outputs, 0.25, 0.45, aware), box_atol=1e-6)


def test_yolov8_transposed() -> None:
    head = np.ascontiguousarray(scene().transpose(0, 2, 1))
    outputs = [Output(head, "detection", dims=("batch", "num_boxes", "num_features"))]
    assert_same(ours(outputs, 0.25, 0.45), hal_decode(outputs, 0.25, 0.45))


def test_split_boxes_and_scores() -> None:
    head = scene(classes=5)
    outputs = [Output(head[:, :4].copy(), "boxes"), Output(head[:, 4:].copy(), "scores")]
    assert_same(ours(outputs, 0.25, 0.45), hal_decode(outputs, 0.25, 0.45))


def test_instance_segmentation_float() -> None:
    head = scene(classes=4, extra=8)
    protos = np.random.default_rng(3).normal(0, 1, (1, 40, 40, 8)).astype(np.float32)
    outputs = [Output(head, "detection"), Output(protos, "protos")]
    assert_same(ours(outputs, 0.25, 0.45), hal_decode(outputs, 0.25, 0.45), mask_atol=1)


def test_instance_segmentation_int8() -> None:
    head = scene(classes=4, extra=8)
    head[0, :4] *= 0.5
    head[0, 8:] *= 0.25
    protos = np.random.default_rng(3).normal(0, 1, (1, 40, 40, 8)).astype(np.float32)
    outputs = [Output(quantize(head, 1 / 255, -128), "detection", 1 / 255, -128),
               Output(quantize(protos, 1 / 40, 5), "protos", 1 / 40, 5)]
    assert_same(ours(outputs, 0.25, 0.45), hal_decode(outputs, 0.25, 0.45), box_atol=1e-6, mask_atol=1)


def test_modelpack_detection() -> None:
    rng = np.random.default_rng(5)
    boxes = np.zeros((1, 2000, 1, 4), np.float32)
    xy = rng.uniform(0, 0.8, (2000, 2))
    boxes[0, :, 0] = np.concatenate([xy, xy + rng.uniform(0.02, 0.2, (2000, 2))], axis=1)
    scores = rng.uniform(0, 0.3, (1, 2000, 3)).astype(np.float32)
    scores[0, rng.choice(2000, 120, replace=False), rng.integers(3, size=120)] = rng.uniform(0.4, 1, 120)
    outputs = [Output(boxes, "boxes", decoder="modelpack"), Output(scores, "scores", decoder="modelpack")]
    # Class-agnostic only: HAL's ModelPack path ignores Nms.ClassAware (edgenode honours it).
    assert_same(ours(outputs, 0.4, 0.45), hal_decode(outputs, 0.4, 0.45))


def test_end_to_end() -> None:
    rows = np.zeros((1, 300, 6), np.float32)
    rng = np.random.default_rng(6)
    xy = rng.uniform(0, 0.8, (40, 2))
    rows[0, :40, :4] = np.concatenate([xy, xy + 0.1], axis=1)
    rows[0, :40, 4] = np.sort(rng.uniform(0.2, 1.0, 40))[::-1]
    rows[0, :40, 5] = rng.integers(0, 80, 40)
    outputs = [Output(rows, "detection", dims=("batch", "num_boxes", "num_features"))]
    found = ours(outputs, 0.4, 0.45)
    assert_same(found, hal_decode(outputs, 0.4, 0.45, version="yolo26"))


def test_modelpack_split_detection() -> None:
    """HAL uses a fast approximate sigmoid here (relative error up to ~1%): compare within that."""
    rng = np.random.default_rng(8)
    anchors = ((0.1, 0.15), (0.2, 0.25), (0.35, 0.3))
    level = rng.normal(-4, 1, (1, 20, 20, 3 * 7)).astype(np.float32)
    for _ in range(6):
        y, x, a = rng.integers(20), rng.integers(20), rng.integers(3)
        level[0, y, x, a * 7:(a + 1) * 7] = [*rng.normal(0, 1, 4), 4.0, *rng.normal(-2, 2, 2)]
    outputs = [Output(level, "detection", decoder="modelpack", anchors=anchors)]
    pairs = [list(a) for a in anchors]
    config = f"outputs: [{{type: detection, decoder: modelpack, shape: [1, 20, 20, 21], anchors: {pairs}}}]"
    found = ours(outputs, 0.3, 0.45, config=config)
    reference = hal_decode(outputs, 0.3, 0.45)
    assert len(found) == len(reference[1]) > 0
    np.testing.assert_array_equal(found.classes, reference[2])
    np.testing.assert_allclose(found.scores, reference[1], rtol=0.02)
    np.testing.assert_allclose(found.boxes, reference[0], atol=0.01)
