"""A stand-in camera for tests: holds memfd frames, prints ``pid fd size`` per frame, exits when stdin closes.

Run as ``python tests/helpers/frame_producer.py FOURCC WIDTH HEIGHT [COUNT [unsealed [SHADE]]]``; each frame
is the synthetic test pattern of ``pattern`` (its red channel SHADE brighter, up to 255) encoded in FOURCC. Frames are
memfds sealed against resizing, as the camera simulator's (``unsealed``: plain memfds, which the
producer could truncate; sending ``truncate`` on stdin then shrinks them all to zero).
"""

from __future__ import annotations

import fcntl
import mmap
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from edgenode.core.colour import encode_rgb
from edgenode.core.ingest import FrameRef
from edgenode.core.pixels import YUYV, describe_frame, format_by_name
from edgenode.messages import Header

REPO = Path(__file__).resolve().parents[2]


def pattern(width: int, height: int, shade: int = 0) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    red = np.minimum(x * 255 // max(width - 1, 1) + shade, 255)
    return np.stack([red, y * 255 // max(height - 1, 1), (x + y) % 256], -1).astype(np.uint8)


class Producer:
    """A child process holding memfd frames (the camera's side)."""

    def __init__(self, fourcc: str = "YUYV", width: int = 64, height: int = 48, count: int = 1,
                 sealed: bool = True, *, shade: int = 0) -> None:
        self.process = subprocess.Popen([sys.executable, str(Path(__file__)), fourcc, str(width),
                                         str(height), str(count), "sealed" if sealed else "unsealed", str(shade)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
        assert self.process.stdout is not None
        self.frames = [tuple(int(v) for v in self.process.stdout.readline().split()) for _ in range(count)]
        self.width, self.height = width, height

    def ref(self, index: int = 0, **changes: int) -> FrameRef:
        pid, fd, size = self.frames[index]
        layout = describe_frame(YUYV, changes.get("width", self.width), changes.get("height", self.height),
                                0, changes.get("length", size))
        return FrameRef(changes.get("pid", pid), changes.get("fd", fd), layout, Header())

    def truncate(self) -> None:
        """Shrink every frame to zero bytes (only an unsealed producer can)."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("truncate\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline().strip() == "truncated"

    def stop(self) -> None:
        from tests.helpers.timing import scaled  # not at the top: this file also runs as the producer script

        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            self.process.wait(timeout=scaled(10))
        if self.process.stdout is not None:
            self.process.stdout.close()


def main() -> None:
    fmt = format_by_name(sys.argv[1])
    width, height = int(sys.argv[2]), int(sys.argv[3])
    count = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    sealed = sys.argv[5:6] != ["unsealed"]
    shade = int(sys.argv[6]) if len(sys.argv) > 6 else 0
    data = encode_rgb(pattern(width, height, shade), fmt).reshape(-1)
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
