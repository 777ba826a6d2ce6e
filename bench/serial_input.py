"""Serial schedule: a frame prepared into a staging buffer and copied into the model, or straight into it.

``python bench/run.py serial_input [--repeats=N] [--models=DIR]``

In one process, interleaved (A, B, A, B, ...) so the machine's drift hits both alike: the
serial schedule's work on one frame before and after it stopped copying, on the real int8
``yolov8s-fall`` model (a 640x640x3 int8 input) and a 1920x1080 YUYV frame in a memfd, converted
by the node's numpy preprocessor on every core (as serial gives it):

- **staging + copy**: preprocess into a staging array, then ``runtime.set_input`` (before);
- **in place**: preprocess into ``runtime.input_view()`` (after);

each alone, then each followed by the model's invoke, which shows the share of the whole frame.
The end-to-end effect is ``bench/run.py pipeline --baseline=DIR`` (see BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from common import header, interleaved, table
from preprocess import MemfdFrame

from edgenode.adapters.tflite import load_runtime
from edgenode.config import ModelSettings
from edgenode.node.preprocessing import cpu_preprocessor

SHARED = Path(os.environ.get("EDGENODE_TEST_MODELS", Path(__file__).resolve().parents[2] / "shared" / "models"))


def main(argv: list[str]) -> str:
    parser = argparse.ArgumentParser(prog="bench/serial_input.py")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--models", type=Path, default=SHARED)
    args = parser.parse_args(argv)
    path = args.models / "yolov8s-fall-int8.tflite"
    if not path.exists():
        return f"serial_input: {path} not found; set EDGENODE_TEST_MODELS or --models\n"
    runtime = load_runtime(path, ModelSettings(path, engine="cpu"))
    spec = runtime.inputs[0]
    frame = MemfdFrame()
    preprocessor = cpu_preprocessor(spec, "stretch", cores=os.cpu_count())
    staging = np.zeros(spec.shape, spec.dtype)
    model_input = runtime.input_view()

    def copied() -> None:
        preprocessor.run(frame, staging)
        runtime.set_input(staging)

    def in_place() -> None:
        preprocessor.run(frame, model_input)

    def copied_and_invoked() -> None:
        copied()
        runtime.invoke()

    def in_place_and_invoked() -> None:
        in_place()
        runtime.invoke()

    prepare = interleaved({"staging + copy": copied, "in place": in_place}, args.repeats)
    whole = interleaved({"staging + copy, then invoke": copied_and_invoked,
                         "in place, then invoke": in_place_and_invoked}, max(args.repeats // 10, 10))
    preprocessor.close()
    rows = []
    for timings in (prepare, whole):
        before, after = timings.values()
        for timing in timings.values():
            rows.append([timing.name, f"{timing.median * 1e3:.3f}", f"{timing.percentile(90) * 1e3:.3f}",
                         f"{timing.median / before.median:.3f}", len(timing.samples)])
        rows.append(["saved per frame (difference of medians)", f"{(before.median - after.median) * 1e3:.3f}", "",
                     f"{1 - after.median / before.median:.1%}", ""])
    title = "Serial schedule: prepared into a staging buffer and copied, or straight into the model's input"
    return (header(title, ["python", "bench/run.py", "serial_input", *argv]) +
            f"- load average: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}; "
            f"input {spec.shape} {spec.dtype} ({staging.nbytes} bytes); preprocessing in "
            f"{preprocessor.bands} band(s)\n\n" +
            table(["per frame", "median ms", "p90 ms", "of staging + copy", "samples"], rows))


if __name__ == "__main__":
    import sys

    print(main(sys.argv[1:]))
