"""Preprocessing: a 1920x1080 camera frame (YUYV, NV12, RGB) to a 640x640 model input, edgenode vs edgefirst_hal.

One frame of the synthetic scene per format sits in a memfd (as a camera dma-buf would); every
contender converts that same frame, interleaved in one run, for stretch and letterbox and for
uint8, int8 (v-128) and float32 inputs. ``python bench/run.py preprocess [--repeats N]
[--previous REV]``; ``--previous`` also times the CPU preprocessor of git revision REV (e.g. the
numpy resampler of 94d2304) on one thread, loaded from git beside the current one.

Contenders: edgefirst_hal's ImageProcessor (its CPU backend; default threads, then
normalize_to_numpy for int8 and float), edgenode's CPU path on one thread and with the node's
default threads (2 when a core is free).
"""

from __future__ import annotations

import argparse
import importlib.util
import mmap
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from common import cpu_model, header, interleaved, load_average, ms, table

from edgenode.core.pixels import NV12, RGB, YUYV, PixelFormat, describe_frame
from edgenode.core.preprocess import CpuPreprocessor
from edgenode.core.tensors import TensorSpec
from edgenode.node.preprocessing import cpu_preprocessor
from edgenode.tools.camera.scene import SyntheticScene
from edgenode.tools.camera.sources import SceneSource

WIDTH, HEIGHT, SIZE = 1920, 1080, 640
INPUTS = {"uint8": (np.uint8, 0.0, 0), "int8": (np.int8, 1 / 255, -128), "float32": (np.float32, 0.0, 0)}


class MemfdFrame:
    """The test frame in a memfd, mapped read-only: what the node sees after importing a dma-buf."""

    def __init__(self, fmt: PixelFormat) -> None:
        rows = HEIGHT * 3 // 2 if fmt is NV12 else HEIGHT
        row_bytes = WIDTH * (fmt.bytes_per_pixel or 1)
        self.format = fmt
        self.layout = describe_frame(fmt, WIDTH, HEIGHT, row_bytes, rows * row_bytes)
        self.fd = os.memfd_create("bench-frame", os.MFD_CLOEXEC)
        os.ftruncate(self.fd, self.layout.end)
        with mmap.mmap(self.fd, self.layout.end) as writable:
            view = np.frombuffer(writable, np.uint8).reshape(rows, row_bytes)
            SceneSource(SyntheticScene(WIDTH, HEIGHT, seed=7), fmt).write(40, view)
            del view
        self.mapping = mmap.mmap(self.fd, self.layout.end, prot=mmap.PROT_READ)
        self.data = np.frombuffer(self.mapping, np.uint8)

    def physical_address(self) -> int | None:
        return None


def hal_contender(frame: MemfdFrame, letterbox: bool, dtype: type) -> tuple[Callable[[], object], Callable[[], Any]]:
    """edgefirst_hal's ImageProcessor on the same fd; returns (run, read the RGB result)."""
    import edgefirst_hal as hal

    if frame.format is YUYV:
        source = hal.Tensor.from_fd(frame.fd, [HEIGHT, WIDTH, 2], dtype="uint8")
        source.set_format(hal.PixelFormat.Yuyv)
    elif frame.format is NV12:
        source = hal.Tensor.from_fd(frame.fd, [HEIGHT * 3 // 2, WIDTH], dtype="uint8")
        source.set_format(hal.PixelFormat.Nv12)
    else:
        source = hal.Tensor.from_fd(frame.fd, [HEIGHT, WIDTH, 3], dtype="uint8")
        source.set_format(hal.PixelFormat.Rgb)
    processor = hal.ImageProcessor()
    destination = processor.create_image(SIZE, SIZE, hal.PixelFormat.Rgb, access="read")
    pad = [114, 114, 114, 255] if letterbox else None
    tensor = np.zeros((SIZE, SIZE, 3), dtype)
    normalization = {np.int8: hal.Normalization.SIGNED, np.float32: hal.Normalization.UNSIGNED}.get(dtype)

    def run() -> None:
        processor.convert(source, destination, letterbox=pad)
        if normalization is not None:
            destination.normalize_to_numpy(tensor, normalization)

    def result() -> Any:
        with destination.map() as mapped:
            return np.asarray(memoryview(mapped)).reshape(SIZE, SIZE, 3).copy()

    return run, result


def previous_preprocessor(revision: str) -> Any:
    """``edgenode/core/preprocess.py`` of git ``revision``, imported as its own module."""
    root = Path(__file__).resolve().parents[1]
    source = subprocess.run(["git", "show", f"{revision}:edgenode/core/preprocess.py"], cwd=root, check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / f"preprocess_{revision}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> str:
    parser = argparse.ArgumentParser(prog="bench/preprocess.py")
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--previous", default="", help="also time the CPU preprocessor of this git revision")
    args = parser.parse_args(argv)
    load_before = load_average()
    previous = previous_preprocessor(args.previous) if args.previous else None
    cpu = cpu_model()
    rows = []
    agreement = []
    for fmt in (YUYV, NV12, RGB):
        frame = MemfdFrame(fmt)
        for mode in ("stretch", "letterbox"):
            for label, (dtype, scale, zero_point) in INPUTS.items():
                spec = TensorSpec("images", (1, SIZE, SIZE, 3), np.dtype(dtype), scale, zero_point)
                single = CpuPreprocessor(spec, mode)
                default = cpu_preprocessor(spec, mode, cores=os.cpu_count())
                hal_run, hal_result = hal_contender(frame, mode == "letterbox", dtype)
                contenders: dict[str, Callable[[], object]] = {
                    "edgefirst_hal (default threads)": hal_run,
                    "edgenode, 1 thread": lambda p=single, f=frame: p.run(f),  # type: ignore[misc]
                    f"edgenode, default ({default.threads} threads)": lambda p=default, f=frame: p.run(f),  # type: ignore[misc]
                }
                if previous is not None:
                    old = previous.CpuPreprocessor(spec, mode)
                    contenders[f"{args.previous}, 1 thread"] = lambda p=old, f=frame: p.run(f)  # type: ignore[misc]
                timings = interleaved(contenders, args.repeats)
                reference = timings["edgefirst_hal (default threads)"].median
                for name, timing in timings.items():
                    rows.append([fmt.name, mode, label, name, ms(timing.median), ms(timing.percentile(90)),
                                 f"{timing.median / reference:.2f}", cpu])
                if dtype is np.uint8:
                    single.run(frame)
                    difference = np.abs(single.tensor[0].astype(int) - hal_result().astype(int))
                    agreement.append([fmt.name, mode, f"{difference.mean():.2f}",
                                      f"{np.percentile(difference, 99):.0f}"])
                default.close()
    command = ["python", "bench/run.py", "preprocess", *argv]
    sections = [header("Preprocessing: a 1920x1080 camera frame to a 640x640 RGB model input", command),
                f"- load average before: {load_before}; after: {load_average()}\n",
                table(["source", "resize", "input", "contender", "median ms", "p90 ms", "time / HAL", "CPU"], rows),
                "Agreement with HAL on the same frame (uint8 RGB, |edgenode - HAL| in 0..255 levels; HAL's "
                "downscale filters over a wider, antialiasing support; edgenode's is 2-tap bilinear, OpenCV "
                "INTER_LINEAR_EXACT, the bit-exact variant of the INTER_LINEAR Ultralytics' letterbox uses):\n\n"
                + table(["source", "resize", "mean", "p99"], agreement),
                "`time / HAL` below 1 means faster than edgefirst_hal's CPU ImageProcessor on the same frame, "
                "measured interleaved in this run. `edgenode, 1 thread` is the single-core cost (the other "
                "core busy with the model); `default` is what the node runs with a core free."]
    return "\n".join(sections)


if __name__ == "__main__":
    print(main(sys.argv[1:]))
