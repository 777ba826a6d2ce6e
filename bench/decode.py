"""Decode + NMS of YOLOv8 outputs: edgenode's decoder (one native call per frame) against EdgeFirst HAL's.

``python bench/run.py decode [--repeats N] [--models DIR]``. Scenes: synthetic ``[1, 84, 8400]``
heads with a few planted objects (7 objects x 3 duplicates) or a crowd (250 candidates, 3
classes), in float32 and int8, and the real ``yolov8s-fall`` outputs on ``bus.jpg`` when the shared
models are there. Contenders run interleaved; the ratio is HAL's median over edgenode's (above 1:
edgenode is faster). HAL needs its own tensor: "HAL decode" times the decode alone, "HAL copy +
decode" adds the ``from_numpy`` copy a TFLite pipeline pays every frame.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from common import cpu_model, header, interleaved, load_average, ms, numpy_call, table

from edgenode.core.decoder_factory import build_decoder
from edgenode.core.tensors import TensorSpec

ANCHORS = 8400
THRESHOLD, IOU = 0.25, 0.45
INT8 = (1 / 255, -128)
IMAGE = TensorSpec("images", (1, 640, 640, 3), np.dtype(np.uint8), index=0)
SHARED = Path(os.environ.get("EDGENODE_TEST_MODELS", Path(__file__).resolve().parents[2] / "shared" / "models"))


def planted(classes: int = 80, objects: int = 7, duplicates: int = 3, seed: int = 0) -> np.ndarray:
    """Background scores U(0, 0.1) and a few objects, each found by several neighbouring anchors."""
    rng = np.random.default_rng(seed)
    head = np.zeros((1, 4 + classes, ANCHORS), np.float32)
    head[0, 4:] = rng.uniform(0, 0.1, (classes, ANCHORS))
    head[0, :2] = rng.uniform(0.05, 0.95, (2, ANCHORS))
    head[0, 2:4] = rng.uniform(0.01, 0.2, (2, ANCHORS))
    anchors = rng.choice(ANCHORS, objects * duplicates, replace=False)
    for k in range(objects):
        centre, size, cls = rng.uniform(0.15, 0.85, 2), rng.uniform(0.05, 0.3, 2), int(rng.integers(classes))
        for d in range(duplicates):
            a = anchors[k * duplicates + d]
            head[0, :4, a] = [*(centre + rng.normal(0, 0.01, 2)), *(size * rng.uniform(0.9, 1.1, 2))]
            head[0, 4 + cls, a] = rng.uniform(0.5, 0.95)
    return head


def crowd(count: int = 250, classes: int = 80, seed: int = 1) -> np.ndarray:
    """Many candidates (below HAL's 300 cap, so both keep the same ones), overlapping often."""
    rng = np.random.default_rng(seed)
    head = planted(classes, objects=0, seed=seed)
    anchors = rng.choice(ANCHORS, count, replace=False)
    head[0, :2, anchors] = rng.uniform(0.1, 0.9, (count, 2))
    head[0, 2:4, anchors] = rng.uniform(0.05, 0.25, (count, 2))
    head[0, 4 + rng.integers(3, size=count), anchors] = rng.uniform(0.3, 1.0, count)
    return head


def quantized(head: np.ndarray) -> np.ndarray:
    scale, zero_point = INT8
    real = head.copy()
    real[0, :4] *= 0.5  # boxes share the tensor's scale
    return np.clip(np.round(real / scale) + zero_point, -128, 127).astype(np.int8)


def real_outputs(folder: Path) -> dict[str, tuple[np.ndarray, float, int]]:
    """yolov8s-fall outputs on bus.jpg (stretched to 640x640), float32 and int8; empty without the models."""
    if not (folder / "bus.jpg").exists():
        return {}
    from PIL import Image

    from edgenode.adapters.tflite import load_runtime
    from edgenode.config import ModelSettings

    pixels = np.asarray(Image.open(folder / "bus.jpg").convert("RGB").resize((640, 640), Image.BILINEAR))
    found = {}
    for kind in ("f32", "int8"):
        path = folder / f"yolov8s-fall-{kind}.tflite"
        runtime = load_runtime(path, ModelSettings(path, engine="cpu", threads=2))
        view = runtime.input_view()
        if view.dtype == np.float32:
            np.multiply(pixels[None], np.float32(1 / 255), out=view)
        else:
            np.subtract(pixels[None].astype(np.int16), 128, out=view, casting="unsafe")
        runtime.invoke()
        spec = runtime.outputs[0]
        found[kind] = (runtime.output_views()[0].copy(), spec.scale, spec.zero_point)
    return found


def contenders(head: np.ndarray, scale: float, zero_point: int, aware: bool) -> dict[str, Callable[[], object]]:
    import edgefirst_hal as hal

    spec = TensorSpec("out", head.shape, head.dtype, scale, zero_point, 0)
    ours = build_decoder(None, [IMAGE], [spec], threshold=THRESHOLD, iou=IOU, nms="aware" if aware else "agnostic")
    output = hal.Output.detection(shape=list(head.shape))
    if scale:
        output = output.with_quantization(scale, zero_point)
    theirs = hal.Decoder.new_from_outputs([output], score_threshold=THRESHOLD, iou_threshold=IOU,
                                          nms=hal.Nms.ClassAware if aware else hal.Nms.ClassAgnostic,
                                          decoder_version=hal.DecoderVersion.Yolov8)
    tensor = hal.Tensor(list(head.shape), dtype=str(head.dtype), mem=hal.TensorMemory.MEM)
    tensor.from_numpy(head)
    found, reference = ours.decode([head]), theirs.decode([tensor], max_boxes=100)
    if len(found) != len(reference[1]) or not np.allclose(found.boxes, reference[0], atol=1e-5):
        raise AssertionError("edgenode and HAL disagree on this scene; the timing would compare different work")

    def copy_and_decode() -> object:
        tensor.from_numpy(head)
        return theirs.decode([tensor], max_boxes=100)

    return {"edgenode": lambda: ours.decode([head]), "HAL decode": lambda: theirs.decode([tensor], max_boxes=100),
            "HAL copy + decode": copy_and_decode, "numpy call": numpy_call()}


def main(argv: list[str]) -> str:
    from edgenode.logs import configure_logging

    configure_logging("warning", "console")  # keep model-loading lines out of the markdown on stdout
    repeats = 200
    folder = SHARED
    for arg in argv:
        if arg.startswith("--repeats="):
            repeats = int(arg.split("=", 1)[1])
        elif arg.startswith("--models="):
            folder = Path(arg.split("=", 1)[1])
    scenes: list[tuple[str, np.ndarray, float, int, bool]] = []
    for name, head in (("planted, few candidates", planted()), ("crowd, 250 candidates", crowd())):
        scenes.append((f"float32 {name}", head, 0.0, 0, False))
        scenes.append((f"int8 {name}", quantized(head), *INT8, False))
    scenes.append(("float32 crowd, class-aware", crowd(), 0.0, 0, True))
    for kind, (output, scale, zero_point) in real_outputs(folder).items():
        scenes.append((f"{kind} real yolov8s-fall on bus.jpg", output, scale, zero_point, False))
    rows = []
    cpu = cpu_model()
    load_before = load_average()
    for label, head, scale, zero_point, aware in scenes:
        timings = interleaved(contenders(head, scale, zero_point, aware), repeats=repeats, warmup=10)
        mine, hal_only, hal_copy, call = (timings[k].median for k in ("edgenode", "HAL decode", "HAL copy + decode",
                                                                      "numpy call"))
        rows.append([f"{label} `{list(head.shape)}`", ms(mine), ms(hal_only), ms(hal_copy),
                     f"{hal_only / mine:.2f}", f"{hal_copy / mine:.2f}", f"{mine / call:.0f} / {hal_only / call:.0f}",
                     cpu])
    return (header("Decode + NMS: edgenode vs edgefirst_hal.Decoder (YOLOv8)") +
            f"\nthreshold {THRESHOLD}, IoU {IOU}, max 100 boxes; median of {repeats} interleaved runs each; load "
            f"average before: {load_before}, after: {load_average()}.\n"
            "Ratio = HAL time / edgenode time (above 1: edgenode faster). The last column but one states both "
            "decodes in small numpy calls (one 10-element add, timed in the same rounds).\n\n" +
            table(["scene", "edgenode ms", "HAL decode ms", "HAL copy + decode ms", "ratio (decode)",
                   "ratio (copy + decode)", "edgenode / HAL decode in numpy calls", "CPU"], rows))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    print(main(sys.argv[1:]))
