"""The simulator's loop: fill the next ring buffer, publish its reference, keep the frame rate.

Frames live in a ring of ``ring`` shared buffers (memfd, or a dma-buf from ``/dev/dma_heap``),
written round-robin: a published buffer is rewritten only after ``ring - 1`` newer frames, so a
reader that finishes with a frame within that time never sees it torn. Likewise the ring is closed
only a ring's worth of frame periods (1 to 2 s) after the last publish, so a reader still taking
the last frames finds their buffers open.

Like the EdgeFirst camera, it also publishes frames as JPEG (``sensor_msgs/CompressedImage``,
format "jpeg", full frame size, the frame's own header) at a rate of their own, so viewers such as
Foxglove Studio have a picture under the node's annotations. A thread of its own encodes them,
newest frame first, so encoding never delays the frame clock.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np
import simplejpeg
from numpy.typing import NDArray

from edgenode.adapters.dma_heap import SharedBuffer
from edgenode.core.pixels import NV12, YUYV, FrameLayout, PixelFormat, describe_frame
from edgenode.logs import get_logger
from edgenode.messages import (
    CameraFrame,
    CameraInfo,
    CompressedImage,
    DmaBuffer,
    Header,
    Tensor,
    TensorPlane,
    Time,
    encode,
)
from edgenode.node.background import NewestWorker
from edgenode.tools.camera.scene import SceneObject
from edgenode.tools.camera.sources import FrameSource


@dataclass(frozen=True)
class CameraSettings:
    """What to publish and how fast."""

    topic: str = "rt/camera/dma"
    info_topic: str = "rt/camera/info"
    format: PixelFormat = YUYV
    width: int = 1920
    height: int = 1080
    fps: float = 30.0
    frames: int = 0
    ring: int = 4
    camera_frame: bool = False
    frame_id: str = "camera"
    info_interval: float = 1.0
    heap: str = "system"
    jpeg_topic: str = "rt/camera/jpeg"
    jpeg_fps: float = 10.0
    jpeg_quality: int = 80

    def __post_init__(self) -> None:
        if not 0 < self.fps <= 10000:
            raise ValueError(f"--fps must be in (0, 10000], got {self.fps:g}")
        if not 2 <= self.ring <= 64:
            raise ValueError(f"--ring must be 2..64 buffers, got {self.ring}")
        if self.frames < 0:
            raise ValueError(f"--frames must be 0 (forever) or more, got {self.frames}")
        if not self.topic:
            raise ValueError("--topic must not be empty")
        if not 0 <= self.jpeg_fps <= 10000:
            raise ValueError(f"--jpeg-fps must be 0 (off) to 10000, got {self.jpeg_fps:g}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"--jpeg-quality must be 1..100, got {self.jpeg_quality}")

    def jpeg_due(self, index: int) -> bool:
        """Whether frame ``index`` also goes out as JPEG: ``jpeg_fps`` of every ``fps`` frames, evenly spread."""
        if not self.jpeg_topic or self.jpeg_fps <= 0:
            return False
        if self.jpeg_fps >= self.fps:
            return True
        ratio = self.jpeg_fps / self.fps
        return index == 0 or int(index * ratio) != int((index - 1) * ratio)

    def layout(self) -> FrameLayout:
        """Dense frames of the chosen format and size (raises FrameLayoutError when they cannot be)."""
        rows = self.height * 3 // 2 if self.format is NV12 else self.height
        row_bytes = self.width * (self.format.bytes_per_pixel or 1)
        return describe_frame(self.format, self.width, self.height, row_bytes, rows * row_bytes)


class FrameRing:
    """``count`` buffers of ``size`` bytes, handed out round-robin."""

    def __init__(self, count: int, size: int, heap: str) -> None:
        self.buffers: list[SharedBuffer] = []
        try:
            for _ in range(count):
                self.buffers.append(SharedBuffer(size, (heap,), name="edgenode-camera"))
        except BaseException:
            self.close()
            raise

    @property
    def kind(self) -> str:
        return self.buffers[0].kind

    def slot(self, index: int) -> SharedBuffer:
        return self.buffers[index % len(self.buffers)]

    def close(self) -> None:
        for buffer in self.buffers:
            buffer.close()


def jpeg_message(rgb: NDArray[np.uint8], stamp_ns: int, frame_id: str, quality: int) -> bytes:
    """``rgb`` as a CDR ``sensor_msgs/CompressedImage`` (format "jpeg", 4:2:0 chroma)."""
    data = simplejpeg.encode_jpeg(np.ascontiguousarray(rgb), quality=quality, colorspace="RGB",
                                  colorsubsampling="420", fastdct=True)
    return encode(CompressedImage(Header(Time.from_nanos(stamp_ns), frame_id), "jpeg", bytes(data)))


class CameraSimulator:
    """Publishes ``source``'s frames through ``publish_frame`` / ``publish_info`` / ``publish_jpeg`` (CDR bytes)."""

    # The ring outlives the last publish by a ring's worth of frame periods, at least MIN_LINGER_SECONDS (at a
    # high rate a loaded reader gets to the last frame later than that) and at most MAX_LINGER_SECONDS (a
    # stop stays prompt at a low rate).
    MIN_LINGER_SECONDS = 1.0
    MAX_LINGER_SECONDS = 2.0

    def __init__(self, settings: CameraSettings, source: FrameSource, publish_frame: Callable[[bytes], None],
                 publish_info: Callable[[bytes], None] | None = None, ground_truth: TextIO | None = None, *,
                 publish_jpeg: Callable[[bytes], None] | None = None) -> None:
        self.settings = settings
        self.layout = settings.layout()
        self.source = source
        self.publish_frame = publish_frame
        self.publish_info = publish_info
        self.ground_truth = ground_truth
        self.ring = FrameRing(settings.ring, self.layout.end, settings.heap)
        self.pid = os.getpid()
        self.published = 0
        self.late = 0
        self._ring_free_at = 0.0  # monotonic time after which no reader can still be taking a published frame
        self._log: Any = get_logger("edgenode.camera")
        self.jpeg: NewestWorker[tuple[NDArray[np.uint8], int]] | None = None
        if publish_jpeg is not None and settings.jpeg_fps > 0:
            def encode_and_publish(item: tuple[NDArray[np.uint8], int]) -> None:
                publish_jpeg(jpeg_message(item[0], item[1], settings.frame_id, settings.jpeg_quality))
            self.jpeg = NewestWorker("jpeg", encode_and_publish)  # newest frame first: never delays the frames

    def frame_message(self, slot: SharedBuffer, index: int, stamp_ns: int) -> bytes:
        """The DmaBuffer (or CameraFrame) naming ``slot``."""
        s, layout = self.settings, self.layout
        header = Header(Time.from_nanos(stamp_ns), s.frame_id)
        if not s.camera_frame:
            return encode(DmaBuffer(header, self.pid, slot.fd, s.width, s.height, layout.stride, s.format.fourcc,
                                    layout.end))
        storage = Tensor.STORAGE_DMA_BUF if slot.kind.startswith("dma_heap") else Tensor.STORAGE_SHM
        if s.format is NV12:
            shape = [s.height * 3 // 2, s.width]
        elif s.format.bytes_per_pixel > 1:
            shape = [s.height, s.width, s.format.bytes_per_pixel]
        else:
            shape = [s.height, s.width]
        plane = TensorPlane(handle=slot.fd, offset=0, stride=layout.stride, size=layout.end, used=layout.end)
        tensor = Tensor(storage_kind=storage, pid=self.pid, dtype=0, shape=shape, format=s.format.name,
                        planes=[plane])
        return encode(CameraFrame(header, index, tensor))

    def info_message(self, stamp_ns: int) -> bytes:
        return encode(CameraInfo(Header(Time.from_nanos(stamp_ns), self.settings.frame_id), self.settings.height,
                                 self.settings.width))

    def step(self, index: int, stamp_ns: int) -> list[SceneObject] | None:
        """Write frame ``index`` into its ring slot and publish it."""
        slot = self.ring.slot(index)
        slot.begin_write()
        try:
            rows = slot.data.reshape(-1, self.layout.stride)
            objects = self.source.write(index, rows)
        finally:
            slot.end_write()
        self.publish_frame(self.frame_message(slot, index, stamp_ns))
        self.published += 1
        linger = min(max(self.settings.ring / self.settings.fps, self.MIN_LINGER_SECONDS), self.MAX_LINGER_SECONDS)
        self._ring_free_at = time.monotonic() + linger
        if self.jpeg is not None and self.settings.jpeg_due(index):
            self.jpeg.submit((self.source.rgb(index), stamp_ns))
        if self.ground_truth is not None and objects is not None:
            record = {"seq": index, "stamp_ns": stamp_ns, "width": self.settings.width,
                      "height": self.settings.height,
                      "objects": [{"id": o.id, "label": o.label,
                                   "box": o.normalized(self.settings.width, self.settings.height)} for o in objects]}
            self.ground_truth.write(json.dumps(record) + "\n")
            self.ground_truth.flush()
        return objects

    def run(self, stopping: Callable[[], bool]) -> int:
        """Publish at the frame rate until ``stopping()`` or ``frames`` are out; returns frames published."""
        s = self.settings
        period = 1.0 / s.fps
        self._log.info(f"publishing {s.format.name} {s.width}x{s.height} at {s.fps:g} fps on {s.topic} "
                       f"({'CameraFrame' if s.camera_frame else 'DmaBuffer'}, {s.ring} {self.ring.kind} buffers)"
                       + (f", JPEG at {min(s.jpeg_fps, s.fps):g} fps on {s.jpeg_topic}" if self.jpeg else ""))
        next_tick = time.monotonic()
        last_info = -float("inf")
        index = 0
        while not stopping() and (s.frames == 0 or index < s.frames):
            now = time.monotonic()
            if self.publish_info is not None and now - last_info >= s.info_interval:
                self.publish_info(self.info_message(time.time_ns()))
                last_info = now
            self.step(index, time.time_ns())
            index += 1
            next_tick += period
            delay = next_tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -period:  # fell behind: drop the backlog rather than burst
                self.late += 1
                next_tick = time.monotonic()
        return self.published

    def close(self) -> None:
        """Close the source, then the ring once no reader can still be taking the last frames."""
        if self.jpeg is not None:
            self.jpeg.close()
        self.source.close()
        remaining = self._ring_free_at - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)
        self.ring.close()
