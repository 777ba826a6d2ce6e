"""A stand-in camera for tests: holds memfd frames, prints ``pid fd size`` per frame, exits when stdin closes.

Run as ``python tests/frame_producer.py FOURCC WIDTH HEIGHT [COUNT [unsealed]]``; each frame is the
synthetic test pattern of ``tests.test_preprocess_cpu.smooth_rgb`` encoded in FOURCC. Frames are
memfds sealed against resizing, as the camera simulator's (``unsealed``: plain memfds, which the
producer could truncate; sending ``truncate`` on stdin then shrinks them all to zero).
"""

from __future__ import annotations

import fcntl
import mmap
import os
import sys

import numpy as np

from edgenode.core.colour import encode_rgb
from edgenode.core.pixels import format_by_name


def pattern(width: int, height: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), (x + y) % 256], -1).astype(np.uint8)


def main() -> None:
    fmt = format_by_name(sys.argv[1])
    width, height = int(sys.argv[2]), int(sys.argv[3])
    count = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    sealed = sys.argv[5:6] != ["unsealed"]
    data = encode_rgb(pattern(width, height), fmt).reshape(-1)
    keep = []
    for _ in range(count):
        fd = os.memfd_create("frame", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        os.ftruncate(fd, len(data))
        with mmap.mmap(fd, len(data)) as mapping:
            mapping[:] = data.tobytes()
        if sealed:
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW)
        keep.append(fd)
        print(os.getpid(), fd, len(data), flush=True)
    while sys.stdin.readline().strip() == "truncate":
        for fd in keep:
            os.ftruncate(fd, 0)
        print("truncated", flush=True)


if __name__ == "__main__":
    main()
