"""Camera frame references: decoded from DmaBuffer or CameraFrame and checked before use.

A :class:`FrameRef` says where another process keeps a frame (its pid and fd) and how the
bytes are laid out. Everything in it has been validated; the fd has not been touched yet.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from edgenode.core.pixels import NV12, FrameLayout, FrameLayoutError, describe_frame, format_by_fourcc, format_by_name
from edgenode.messages import CameraFrame, CdrError, DmaBuffer, Header, Tensor, decode, schema_name

DMA_BUFFER_SCHEMA = schema_name(DmaBuffer)
CAMERA_FRAME_SCHEMA = schema_name(CameraFrame)
MAX_PID = 2**22  # Linux's pid_max ceiling


class FrameRejected(ValueError):
    """A camera message that cannot be used; ``reason`` is a short counter key."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class FrameRef:
    """A validated frame in process ``pid``'s file descriptor ``fd``; ``arrived_ns``: when its message
    arrived here (monotonic ns, 0 when unknown)."""

    pid: int
    fd: int
    layout: FrameLayout
    header: Header
    seq: int | None = None
    message: str = DMA_BUFFER_SCHEMA
    arrived_ns: int = 0

    @property
    def stamp_ns(self) -> int:
        return self.header.stamp.to_nanos()


@dataclass
class IngestStats:
    """Frame counters: received (every sample), dropped (replaced unread), skipped by reason."""

    received: int = 0
    dropped: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())


def _check_process(pid: int, fd: int) -> None:
    if not 0 < pid < MAX_PID:
        raise FrameRejected("pid", f"producer pid {pid} is not a process id")
    if not 0 <= fd < 2**31:
        raise FrameRejected("fd", f"producer fd {fd} is not a file descriptor")


def frame_from_dma_buffer(message: DmaBuffer) -> FrameRef:
    """Validate a DmaBuffer (fourcc, size, stride and length) into a FrameRef."""
    _check_process(message.pid, message.fd)
    try:
        fmt = format_by_fourcc(message.fourcc)
        layout = describe_frame(fmt, message.width, message.height, message.stride, message.length)
    except FrameLayoutError as exc:
        raise FrameRejected("layout", f"DmaBuffer: {exc}") from None
    return FrameRef(message.pid, message.fd, layout, message.header, None, DMA_BUFFER_SCHEMA)


def _camera_layout(tensor: Tensor) -> tuple[int, FrameLayout]:
    planes = tensor.planes
    if not planes:
        raise FrameRejected("layout", "CameraFrame has no planes")
    handle = planes[0].handle
    if any(plane.handle != handle for plane in planes):
        raise FrameRejected("layout", "CameraFrame planes in separate buffers are not supported")
    if handle < 0:
        raise FrameRejected("storage", "CameraFrame carries inline pixels, not a buffer handle")
    fmt = format_by_name(tensor.format)
    shape = list(tensor.shape)
    if len(shape) not in (2, 3):
        raise FrameRejected("layout", f"CameraFrame shape {shape} is not [height, width(, channels)]")
    height, width = int(shape[0]), int(shape[1])
    chroma_offset = chroma_stride = None
    if fmt is NV12 and len(planes) == 1:  # HAL convention: one plane shaped [H * 3 / 2, W]
        if height % 3:
            raise FrameRejected("layout", f"NV12 CameraFrame shape {shape} is not [height * 3 / 2, width]")
        height = height * 2 // 3
    elif fmt is NV12:
        chroma_offset, chroma_stride = int(planes[1].offset), int(planes[1].stride)
    length = max(int(p.offset) + int(p.size) for p in planes)
    layout = describe_frame(fmt, width, height, int(planes[0].stride), length, offset=int(planes[0].offset),
                            chroma_offset=chroma_offset, chroma_stride=chroma_stride)
    return int(handle), layout


def frame_from_camera_frame(message: CameraFrame) -> FrameRef:
    """Validate a CameraFrame (storage, planes, format, shape, strides and sizes) into a FrameRef."""
    tensor = message.tensor
    if tensor.storage_kind not in (Tensor.STORAGE_DMA_BUF, Tensor.STORAGE_SHM):
        raise FrameRejected("storage", f"CameraFrame storage kind {tensor.storage_kind} is not a dma-buf or shm fd")
    try:
        fd, layout = _camera_layout(tensor)
    except FrameLayoutError as exc:
        raise FrameRejected("layout", f"CameraFrame: {exc}") from None
    _check_process(tensor.pid, fd)
    return FrameRef(tensor.pid, fd, layout, message.header, message.seq, CAMERA_FRAME_SCHEMA)


def decode_frame(payload: bytes, encoding: str = "") -> FrameRef:
    """Decode a camera sample, choosing the message by the encoding's schema suffix, else trying both."""
    schema = encoding.partition(";")[2]
    if schema.endswith("CameraFrame"):
        kinds: tuple[type[DmaBuffer] | type[CameraFrame], ...] = (CameraFrame,)
    elif schema.endswith("DmaBuffer"):
        kinds = (DmaBuffer,)
    else:
        kinds = (CameraFrame, DmaBuffer)  # CameraFrame first: a DmaBuffer is too short to pass as one
    errors = []
    for kind in kinds:
        try:
            message = decode(kind, payload)
        except CdrError as exc:
            errors.append(str(exc))
            continue
        if isinstance(message, CameraFrame):
            return frame_from_camera_frame(message)
        return frame_from_dma_buffer(message)
    raise FrameRejected("decode", "; ".join(errors))
