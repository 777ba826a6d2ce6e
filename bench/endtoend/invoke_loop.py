"""Contender (a): the model's own invoke loop, the most frames per second this machine can run it.

Loads the model as the node does (``edgenode.adapters.tflite.load_runtime``: same runtime,
XNNPACK, same thread count), then invokes back to back for ``--seconds`` and prints one JSON
line: the invoke times in microseconds.

``python bench/endtoend/invoke_loop.py --model M --seconds S [--threads N]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="invoke_loop.py")
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)

    from edgenode.adapters.tflite import load_runtime
    from edgenode.config import ModelSettings
    from edgenode.logs import configure_logging

    configure_logging("warning", "console")
    runtime = load_runtime(args.model, ModelSettings(args.model, engine="cpu", threads=args.threads))
    runtime.input_view()[...] = 0
    for _ in range(3):
        runtime.invoke()
    print(json.dumps({"event": "timing"}), flush=True)
    times = []
    cpu = time.process_time()
    started = time.perf_counter()
    while time.perf_counter() - started < args.seconds:
        begin = time.perf_counter_ns()
        runtime.invoke()
        times.append((time.perf_counter_ns() - begin) // 1000)
    elapsed = time.perf_counter() - started
    print(json.dumps({"event": "invoke_loop", "frames": len(times), "seconds": elapsed,
                      "cpu_seconds": time.process_time() - cpu, "invoke_us": times}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
