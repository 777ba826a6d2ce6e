"""The real int8 model finds the same boxes on every machine: x86 and aarch64 give the same results.

``golden_boxes.json`` holds what the node's CPU path (letterbox preprocessing, XNNPACK int8 invoke,
YOLO decode with NMS) found in ``bus.jpg`` and ``zidane.jpg``, measured on x86-64: class, score and box in
photo pixels (numbers derived from the model, never the model). Every machine must find the same number
of boxes, each matching one golden box of the same class with IoU >= 0.9 and a score within 0.02.

There is one set per TFLite runtime: the two ship different XNNPACK builds, whose int8 kernels round
differently (on the same x86 machine, scores differ by up to 0.034 between tflite-runtime 2.14 and
ai-edge-litert 2.3). The board's aarch64 runs compare with the ``tflite_runtime`` set.

Rewrite the set of the installed runtime (after a deliberate change to preprocessing or decoding, or a
new runtime release; say why in the commit)::

    EDGENODE_TEST_MODELS=/work/shared/models python -m tests.node.test_golden_boxes
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgenode.config import DecodeSettings, ModelSettings
from edgenode.core.pixels import RGB, describe_frame
from edgenode.core.preprocess import CpuPreprocessor
from edgenode.node.model_loading import LoadedModel, load_model
from edgenode.tools.camera.sources import read_image

pytestmark = pytest.mark.models
GOLDEN = Path(__file__).with_name("golden_boxes.json")
MODEL = "yolov8s-fall-int8.tflite"
PHOTOS = ("bus.jpg", "zidane.jpg")
MIN_IOU, MAX_SCORE_DIFFERENCE = 0.9, 0.02


def detect(loaded: LoadedModel, photo: Path) -> list[dict[str, Any]]:
    """The node's CPU path on one photo: boxes in photo pixels, best score first."""
    rgb = read_image(photo)
    height, width = rgb.shape[:2]
    pre = CpuPreprocessor(loaded.runtime.inputs[0], "letterbox")
    geometry = pre.convert_array(rgb.reshape(-1), describe_frame(RGB, width, height, 0, rgb.size))
    loaded.runtime.set_input(pre.tensor)
    loaded.runtime.invoke()
    found = loaded.decoder.decode(loaded.runtime.output_views())
    boxes = geometry.boxes_to_frame(found.boxes) * np.array([width, height] * 2, np.float32)
    rows = [{"label": loaded.description.label_for(int(c)), "score": round(float(s), 4),
             "box": [round(float(v), 1) for v in box]} for box, s, c in zip(boxes, found.scores, found.classes,
                                                                            strict=True)]
    return sorted(rows, key=lambda row: -row["score"])


def load(models: Path) -> LoadedModel:
    return load_model(ModelSettings(models / MODEL, engine="cpu", threads=2), DecodeSettings(threshold=0.25, iou=0.45))


def iou(a: list[float], b: list[float]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def differences(found: list[dict[str, Any]], golden: list[dict[str, Any]]) -> list[str]:
    """What keeps ``found`` from matching ``golden`` one to one (best IoU of the same class first)."""
    if len(found) != len(golden):
        return [f"{len(found)} boxes, golden has {len(golden)}"]
    problems, unmatched = [], list(golden)
    for row in found:
        same_class = [g for g in unmatched if g["label"] == row["label"]]
        if not same_class:
            problems.append(f"no golden {row['label']} box left for {row}")
            continue
        best = max(same_class, key=lambda g: iou(row["box"], g["box"]))
        unmatched.remove(best)
        if iou(row["box"], best["box"]) < MIN_IOU or abs(row["score"] - best["score"]) > MAX_SCORE_DIFFERENCE:
            problems.append(f"{row} against golden {best}: IoU {iou(row['box'], best['box']):.3f}")
    return problems


@pytest.fixture(scope="module")
def loaded(shared_models: Path) -> LoadedModel:
    return load(shared_models)


@pytest.mark.parametrize("photo", PHOTOS)
def test_same_boxes_as_the_golden_file(loaded: LoadedModel, shared_models: Path, photo: str) -> None:
    golden = json.loads(GOLDEN.read_text())
    assert golden["model"] == MODEL
    expected = golden["runtimes"][loaded.runtime.runtime]
    found = detect(loaded, shared_models / photo)
    assert not differences(found, expected["photos"][photo]), (platform.machine(), loaded.runtime.runtime, found,
                                                               f"golden measured on {expected['measured_on']}")


def test_the_comparison_catches_a_moved_box_a_changed_score_and_a_missing_box() -> None:
    golden = [{"label": "Normal", "score": 0.9, "box": [0, 0, 100, 100]},
              {"label": "Fall", "score": 0.5, "box": [200, 0, 300, 100]}]
    assert differences([dict(g) for g in golden], golden) == []
    assert differences(golden[:1], golden) == ["1 boxes, golden has 2"]
    moved = [{**golden[0], "box": [10, 0, 110, 100]}, golden[1]]  # IoU 0.82
    assert "IoU 0.818" in differences(moved, golden)[0]
    assert differences([{**golden[0], "score": 0.87}, golden[1]], golden)  # 0.03 lower
    assert differences([golden[0], {**golden[1], "label": "Normal"}], golden)


def main() -> None:
    import importlib

    from tests.conftest import SHARED_MODELS

    loaded = load(SHARED_MODELS)
    runtime = loaded.runtime.runtime
    version = importlib.import_module(runtime).__version__
    golden = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {"model": MODEL, "threshold": 0.25, "iou": 0.45}
    golden.setdefault("runtimes", {})[runtime] = {
        "measured_on": f"{platform.machine()}, {runtime} {version}, numpy {np.__version__}",
        "photos": {photo: detect(loaded, SHARED_MODELS / photo) for photo in PHOTOS}}
    sets = []
    for name, entry in sorted(golden["runtimes"].items()):  # one line per box
        photos = ",\n".join(f"    {json.dumps(photo)}: [\n" + ",\n".join(f"     {json.dumps(row)}" for row in rows)
                             + "\n    ]" for photo, rows in entry["photos"].items())
        sets.append(f'  {json.dumps(name)}: {{\n   "measured_on": {json.dumps(entry["measured_on"])},\n'
                    f'   "photos": {{\n{photos}\n   }}\n  }}')
    head = json.dumps({key: value for key, value in golden.items() if key != "runtimes"}, indent=1)[:-2]
    GOLDEN.write_text(f'{head},\n "runtimes": {{\n' + ",\n".join(sets) + "\n }\n}\n")
    print(f"wrote the {runtime} set of {GOLDEN}")


if __name__ == "__main__":
    main()
