"""The project's own demo detector: decoded by the normal model path, exact on clean rectangles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgenode.config import DecodeSettings, ModelSettings
from edgenode.node.model_loading import load_model
from edgenode.tools.demo.shapes_model import (
    LABELS,
    MODEL_NAME,
    SIZE,
    build_shapes_model,
    build_shapes_segmentation_model,
)

BACKGROUND = (85, 95, 110)
OBJECTS = {"red": ((220, 40, 40), (40, 30, 100, 90)), "green": ((40, 200, 60), (150, 40, 190, 130)),
           "blue": ((40, 80, 230), (60, 200, 160, 260)), "yellow": ((235, 220, 40), (220, 180, 300, 300))}


def iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    return float(inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter))


@pytest.fixture(scope="module")
def demo_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "shapes.tflite"
    path.write_bytes(build_shapes_model())
    return path


def test_demo_model_finds_each_rectangle(demo_model: Path) -> None:
    model = load_model(ModelSettings(path=demo_model, engine="cpu", threads=1), DecodeSettings(threshold=0.45))
    assert model.description.name == MODEL_NAME
    assert [model.description.label_for(i) for i in range(4)] == list(LABELS)
    image = np.empty((SIZE, SIZE, 3), np.float32)
    image[...] = np.array(BACKGROUND) / 255
    for colour, (x1, y1, x2, y2) in OBJECTS.values():
        image[y1:y2, x1:x2] = np.array(colour) / 255
    model.runtime.set_input(image[None])
    model.runtime.invoke()
    detections = model.decoder.decode(model.runtime.output_views())
    found = {model.description.label_for(int(c)): box for c, box in zip(detections.classes, detections.boxes,
                                                                         strict=True)}
    assert sorted(found) == sorted(OBJECTS)
    for label, (_, box) in OBJECTS.items():
        assert iou(found[label], np.array(box, np.float32) / SIZE) > 0.95, label
    assert (detections.scores > 0.8).all()


def test_demo_model_sees_nothing_on_an_empty_scene(demo_model: Path) -> None:
    model = load_model(ModelSettings(path=demo_model, engine="cpu", threads=1), DecodeSettings(threshold=0.45))
    gradient = np.linspace(0.2, 0.6, SIZE, dtype=np.float32)
    model.runtime.set_input(np.broadcast_to(gradient[None, :, None, None], (1, SIZE, SIZE, 3)).copy())
    model.runtime.invoke()
    assert len(model.decoder.decode(model.runtime.output_views())) == 0


def test_segmentation_twin_labels_each_rectangle(tmp_path: Path) -> None:
    path = tmp_path / "shapes-seg.tflite"
    path.write_bytes(build_shapes_segmentation_model())
    model = load_model(ModelSettings(path=path, engine="cpu", threads=1), DecodeSettings())
    assert model.description.model_types == "Segmentation"
    image = np.empty((SIZE, SIZE, 3), np.float32)
    image[...] = np.array(BACKGROUND) / 255
    for colour, (x1, y1, x2, y2) in OBJECTS.values():
        image[y1:y2, x1:x2] = np.array(colour) / 255
    model.runtime.set_input(image[None])
    model.runtime.invoke()
    mask = model.decoder.decode(model.runtime.output_views()).semantic_mask
    assert mask is not None and mask.shape == (SIZE // 2, SIZE // 2, 5) and mask.dtype == np.uint8
    winners = mask.argmax(axis=2)
    for index, (_, (x1, y1, x2, y2)) in enumerate(OBJECTS.values(), start=1):
        assert (winners[y1 // 2 + 2:y2 // 2 - 2, x1 // 2 + 2:x2 // 2 - 2] == index).all()
    assert winners[0, SIZE // 2 - 1] == 0


def test_an_unwritable_cache_directory_falls_back_to_a_scratch_folder(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from edgenode.tools.demo.cli import DEMO_MODEL_FILE, demo_model

    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache directory should be")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    path = demo_model(blocker, scratch)
    assert path == scratch / DEMO_MODEL_FILE and path.stat().st_size > 1000
    assert f"cannot write the model to {blocker}" in capsys.readouterr().err
    assert demo_model(tmp_path / "fresh") == tmp_path / "fresh" / DEMO_MODEL_FILE  # a usable one is used
