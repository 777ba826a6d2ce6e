"""A stand-in camera for tests: holds memfd frames, prints ``pid fd size`` per frame, exits when stdin closes.

Run as ``python tests/frame_producer.py FOURCC WIDTH HEIGHT [COUNT]``; each frame is the
synthetic test pattern of ``tests.test_preprocess_cpu.smooth_rgb`` encoded in FOURCC.
"""

from __future__ import annotations

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
    data = encode_rgb(pattern(width, height), fmt).reshape(-1)
    keep = []
    for _ in range(count):
        fd = os.memfd_create("frame", os.MFD_CLOEXEC)
        os.ftruncate(fd, len(data))
        with mmap.mmap(fd, len(data)) as mapping:
            mapping[:] = data.tobytes()
        keep.append(fd)
        print(os.getpid(), fd, len(data), flush=True)
    sys.stdin.readline()


if __name__ == "__main__":
    main()
