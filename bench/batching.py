"""Does a batched invoke pay on this machine's runtime? ``python bench/run.py batching [--repeats=N]
[--threads=N] [--models=DIR]``

In one process, on XNNPACK (the installed runtime, every core unless ``--threads``): the model's invoke at one
frame and at several, interleaved, per frame. The demo detector is built with a batch of 1, 2 and 4 (its
graph reshapes to fixed shapes, so a batch must be built in); the real ``yolov8s-fall`` models are tried with
their input resized to 2 frames the way the node's ``--batch`` does (``resize_tensor_input`` +
``allocate_tensors``); the small fully convolutional test model resizes. Each row says what ``--batch
auto``'s rule (a frame of the batch under 90 % of a frame alone) would choose.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from common import cpu_model, header, interleaved, load_average, save, table

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
SHARED = Path(os.environ.get("EDGENODE_TEST_MODELS", HERE.parent.parent / "shared" / "models"))


def main(argv: list[str]) -> str:
    from edgenode.adapters.tflite import load_runtime
    from edgenode.config import ModelSettings
    from edgenode.core.fairness import batch_pays
    from edgenode.core.model_config import ModelError
    from edgenode.tools.demo.shapes_model import build_shapes_model
    from tests.helpers.models import conv_model

    parser = argparse.ArgumentParser(prog="bench/batching.py")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--models", type=Path, default=SHARED)
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="edgenode-bench-batching-"))
    models: dict[str, list[tuple[int, Path]]] = {"demo detector (320x320 float)": []}
    for batch in (1, 2, 4):
        path = folder / f"shapes{batch}.tflite"
        path.write_bytes(build_shapes_model(batch=batch))
        models["demo detector (320x320 float)"].append((batch, path))
    models["conv test model (32x32 float, resized)"] = [(1, conv_model(folder / "conv.tflite"))]
    for kind in ("int8", "f32"):
        path = args.models / f"yolov8s-fall-{kind}.tflite"
        if path.exists():
            models[f"yolov8s-fall {kind} (640x640, resized)"] = [(1, path)]
    rows, notes = [], []
    for label, variants in models.items():
        runs: dict[str, Callable[[], object]] = {}
        frames: dict[str, int] = {}
        for batch, path in variants:
            runtime = load_runtime(path, ModelSettings(path, engine="cpu", threads=args.threads))
            runs[f"{batch}"], frames[f"{batch}"] = runtime.invoke, batch
            if len(variants) == 1:  # one file: resized to 2 frames, in a second interpreter
                resized = load_runtime(path, ModelSettings(path, engine="cpu", threads=args.threads))
                try:
                    resized.resize_batch(2)
                except ModelError as exc:
                    notes.append(f"- {label}: {exc}")
                    continue
                runs["2"], frames["2"] = resized.invoke, 2
        if len(runs) == 1:
            rows.append([label, "1 (cannot batch)", "-", "-", "-", "1"])
            continue
        repeats = args.repeats if "yolov8s" not in label else max(3, args.repeats // 3)
        timings = interleaved(runs, repeats, warmup=2)
        single = timings["1"].median
        for name, timing in timings.items():
            per_frame = timing.median / frames[name]
            choice = "-" if name == "1" else (name if batch_pays(single, timing.median, frames[name]) else "1")
            rows.append([label, name, f"{timing.median * 1e3:.2f}", f"{per_frame * 1e3:.2f}",
                         f"{per_frame / single:.0%}", choice])
    shown = ["python", "bench/run.py", "batching", *argv]
    markdown = "\n".join([
        header("Batched invoke on XNNPACK: one frame against several per invoke", shown),
        f"- CPU: {cpu_model()}; load average {load_average()}; TFLite threads: {args.threads or 'all cores'}; "
        f"median of {args.repeats} interleaved invokes (yolov8s: {max(3, args.repeats // 3)})\n",
        table(["model", "frames an invoke", "ms an invoke", "ms a frame", "of one frame alone", "auto chooses"],
              rows),
        *notes,
    ])
    save("batching", markdown, rows)
    return markdown + "\n"


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    print(main(sys.argv[1:]))
