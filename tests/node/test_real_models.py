"""Real models (../shared/models) through the whole CPU path: preprocess, invoke, decode; HAL parity
on their real outputs. Each model is invoked once per photo for the whole module (XNNPACK ~200 ms)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from edgenode.config import DecodeSettings, ModelSettings
from edgenode.core.detections import Detections
from edgenode.node.model_loading import LoadedModel, load_model
from tests.helpers.hal_reference import Output, assert_same, hal_decode, ours

pytestmark = pytest.mark.models
Image = pytest.importorskip("PIL.Image")
pytest.importorskip("edgefirst_hal")

FALL = {"f32": "yolov8s-fall-f32.tflite", "int8": "yolov8s-fall-int8.tflite"}
BUS_PEOPLE = [[216, 394, 344, 892], [34, 388, 225, 908], [688, 347, 810, 885]]  # image pixels (models README)


@dataclass
class Letterbox:
    """A photo letterboxed to the model input (pad 114), and how to map boxes back to the photo."""

    pixels: np.ndarray
    scale: float
    pad: tuple[int, int]

    def to_photo(self, boxes: np.ndarray, size: int) -> np.ndarray:
        x = (boxes[:, [0, 2]] * size - self.pad[0]) / self.scale
        y = (boxes[:, [1, 3]] * size - self.pad[1]) / self.scale
        return np.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], axis=1)


def letterbox(path: Path, size: int = 640) -> Letterbox:
    photo = Image.open(path).convert("RGB")
    scale = min(size / photo.width, size / photo.height)
    width, height = round(photo.width * scale), round(photo.height * scale)
    canvas = np.full((size, size, 3), 114, np.uint8)
    left, top = (size - width) // 2, (size - height) // 2
    canvas[top:top + height, left:left + width] = np.asarray(photo.resize((width, height), Image.BILINEAR))
    return Letterbox(canvas, scale, (left, top))


def fill_input(loaded: LoadedModel, pixels: np.ndarray) -> None:
    """CPU preprocessing into the runtime's input view: float 0..1, or int8 ``pixel - 128``."""
    view = loaded.runtime.input_view()
    spec = loaded.runtime.inputs[0]
    if spec.dtype == np.float32:
        np.multiply(pixels[None], np.float32(1 / 255), out=view)
    else:
        np.subtract(pixels[None].astype(np.int16), 128, out=view, casting="unsafe")


@dataclass
class Run:
    loaded: LoadedModel
    photo: Letterbox
    outputs: list[np.ndarray]
    found: Detections


@pytest.fixture(scope="module")
def runs(shared_models: Path) -> dict[tuple[str, str], Run]:
    results = {}
    for kind, file_name in FALL.items():
        loaded = load_model(ModelSettings(shared_models / file_name, engine="cpu", threads=2),
                            DecodeSettings(threshold=0.25, iou=0.45))
        for photo_name in ("bus", "zidane"):
            photo = letterbox(shared_models / f"{photo_name}.jpg")
            fill_input(loaded, photo.pixels)
            loaded.runtime.invoke()
            views = loaded.runtime.output_views()
            found = loaded.decoder.decode(views)
            results[kind, photo_name] = Run(loaded, photo, [v.copy() for v in views], found)
    return results


def iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return float(inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter))


@pytest.mark.parametrize("kind", list(FALL))
def test_finds_the_people_in_bus_jpg(runs: dict[tuple[str, str], Run], kind: str) -> None:
    run = runs[kind, "bus"]
    labels = [run.loaded.description.label_for(c) for c in run.found.classes]
    boxes = run.photo.to_photo(run.found.boxes, 640)
    for person in BUS_PEOPLE:
        assert any(label == "Normal" and iou(box, np.array(person)) > 0.6 for box, label in zip(boxes, labels,
                                                                                             strict=True)), person


@pytest.mark.parametrize("kind", list(FALL))
def test_finds_the_two_people_in_zidane_jpg(runs: dict[tuple[str, str], Run], kind: str) -> None:
    run = runs[kind, "zidane"]
    people = [box for box, c in zip(run.photo.to_photo(run.found.boxes, 640), run.found.classes, strict=True)
              if run.loaded.description.label_for(c) == "Normal"]
    centres = sorted(float(box[0] + box[2]) / 2 for box in people)
    assert len(people) == 2 and centres[0] < 640 < centres[1]   # one on each side of the 1280-pixel photo


@pytest.mark.parametrize("aware", [False, True])
@pytest.mark.parametrize("threshold", [0.05, 0.25])
@pytest.mark.parametrize("key", [("f32", "bus"), ("f32", "zidane"), ("int8", "bus"), ("int8", "zidane")],
                         ids="-".join)
def test_parity_with_hal_on_real_outputs(runs: dict[tuple[str, str], Run], key: tuple[str, str], threshold: float,
                                         aware: bool) -> None:
    run = runs[key]
    spec = run.loaded.runtime.outputs[0]
    outputs = [Output(run.outputs[0], "detection", spec.scale, spec.zero_point)]
    assert_same(ours(outputs, threshold, 0.45, aware), hal_decode(outputs, threshold, 0.45, aware))


def test_segmentation_model_outputs_in_surprising_order(shared_models: Path) -> None:
    """yolov8n-seg lists protos first: bound by shape. Its weights are random, so plant detections in a
    real output and compare masks over the real prototypes with HAL."""
    loaded = load_model(ModelSettings(shared_models / "yolov8n-seg-untrained-int8.tflite", engine="cpu", threads=2),
                        DecodeSettings(threshold=0.25))
    assert loaded.layout.kind == "yolo_segdet" and loaded.layout.num_classes == 80
    assert (loaded.layout.get("protos").index, loaded.layout.get("detection").index) == (0, 1)
    assert loaded.description.model_types == "Segmentation;Detection"
    fill_input(loaded, letterbox(shared_models / "bus.jpg").pixels)
    loaded.runtime.invoke()
    protos, head = (v.copy() for v in loaded.runtime.output_views())
    protos_spec, head_spec = loaded.runtime.outputs
    rng = np.random.default_rng(2)
    for anchor in rng.choice(8400, 12, replace=False):
        cx, cy, w, h = rng.uniform(0.2, 0.8, 2).tolist() + rng.uniform(0.05, 0.3, 2).tolist()
        q = np.round(np.array([cx, cy, w, h]) / head_spec.scale) + head_spec.zero_point
        head[0, :4, anchor] = np.clip(q, -128, 127)
        head[0, 4 + rng.integers(80), anchor] = 127
    outputs = [Output(protos, "protos", protos_spec.scale, protos_spec.zero_point),
               Output(head, "detection", head_spec.scale, head_spec.zero_point)]
    found = loaded.decoder.decode([protos, head])
    assert len(found) > 0 and found.instance_masks is not None
    assert_same(found, hal_decode(outputs, 0.25, 0.45), box_atol=1e-6, mask_atol=1)
