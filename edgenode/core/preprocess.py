"""CPU preprocessing: a camera frame to the model's input tensor, resampled with OpenCV.

Each plane of the frame is read in place from the camera buffer (numpy views with the frame's
stride, no copy) and resized bilinearly at its own resolution with pixel centres aligned (Ultralytics'
letterbox interpolation, in OpenCV's bit-exact variant ``cv2.INTER_LINEAR_EXACT``): luma at full resolution, the 4:2:x
chroma of YUYV, UYVY and NV12 at chroma resolution (chroma sited at the centre of the pixels
sharing it). YUV is converted with limited-range BT.709 (the G2D path's matrix) by one
``cv2.transform``, and the 8-bit RGB result is written into the reused input tensor in the
model's dtype and quantisation (:class:`~edgenode.core.model_input.ModelInput`).

Why OpenCV and not numpy (BENCHMARKS.md, Preprocessing): a numpy resampler makes some 40 passes
over full-size intermediate arrays that do not fit in L2, so it is bound by memory bandwidth
and its speed against a native converter changed with the machine (0.8x edgefirst_hal's time
on one AMD VM, 1.7x on an Intel one). OpenCV resizes and converts row by row in registers and
L1 with SIMD fixed-point code, one pass per step: 0.1-0.65x HAL's time on one thread.

Why ``INTER_LINEAR_EXACT`` and not ``INTER_LINEAR``: OpenCV's aarch64 wheels hand ``INTER_LINEAR`` to an
ARM HAL whose lower-precision arithmetic was up to 2 levels off the exact bilinear result for RGB and
5 for YUV (x86: under 1 and 3), so the int8 model found a different number of people in bus.jpg on
aarch64 than on x86. The exact variant gives the same bytes on x86 and aarch64 (measured under qemu,
issue 14), at about twice the x86 resize time of ``INTER_LINEAR``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from edgenode.core.colour import YUV_TO_RGB
from edgenode.core.geometry import InputGeometry
from edgenode.core.model_input import (
    RESIZE_MODES,
    FrameBuffer,
    InputEncoding,
    InputTarget,
    ModelInput,
    PreprocessError,
    Preprocessor,
)
from edgenode.core.pixels import BGRA, GREY, NV12, RGB, RGBA, UYVY, YUYV, FrameLayout
from edgenode.core.tensors import TensorSpec

__all__ = ["RESIZE_MODES", "CpuPreprocessor", "FrameBuffer", "InputEncoding", "InputTarget", "PreprocessError",
           "Preprocessor", "yuv_matrix"]

MAX_THREADS = 64


def yuv_matrix() -> NDArray[np.float32]:
    """The 3 x 4 ``cv2.transform`` matrix of limited-range BT.709: RGB = M @ (Y, U, V, 1)."""
    matrix = np.zeros((3, 4), np.float32)
    matrix[:, :3] = YUV_TO_RGB
    matrix[:, 3] = -(YUV_TO_RGB @ np.array([16.0, 128.0, 128.0]))
    return matrix


@dataclass(frozen=True)
class _Plane:
    """A ``rows x columns x channels`` uint8 view of part of the frame buffer, resized to ``(height, width)``."""

    offset: int
    stride: int
    rows: int
    columns: int
    channels: int

    def view(self, data: NDArray[np.uint8]) -> NDArray[np.uint8]:
        view: NDArray[np.uint8] = np.ndarray((self.rows, self.columns, self.channels), np.uint8, buffer=data,
                                             offset=self.offset, strides=(self.stride, self.channels, 1))
        return view


def _planes(layout: FrameLayout) -> tuple[list[_Plane], list[tuple[int, int]]]:
    """The planes of ``layout``'s format and, for each output channel (Y, U, V or R, G, B), its (plane, channel)."""
    fmt, w, h = layout.format, layout.width, layout.height
    if fmt in (YUYV, UYVY):
        luma = _Plane(layout.offset, layout.stride, h, w, 2)  # [Y, C] per pixel
        pairs = _Plane(layout.offset, layout.stride, h, w // 2, 4)  # [Y0 U Y1 V] or [U Y0 V Y1] per pair
        return [luma, pairs], ([(0, 0), (1, 1), (1, 3)] if fmt is YUYV else [(0, 1), (1, 0), (1, 2)])
    if fmt is NV12:
        luma = _Plane(layout.offset, layout.stride, h, w, 1)
        chroma = _Plane(layout.chroma_offset, layout.chroma_stride, h // 2, w // 2, 2)
        return [luma, chroma], [(0, 0), (1, 0), (1, 1)]
    if fmt is RGB:
        return [_Plane(layout.offset, layout.stride, h, w, 3)], [(0, 0), (0, 1), (0, 2)]
    if fmt in (RGBA, BGRA):
        order = [(0, 0), (0, 1), (0, 2)] if fmt is RGBA else [(0, 2), (0, 1), (0, 0)]
        return [_Plane(layout.offset, layout.stride, h, w, 4)], order
    if fmt is GREY:
        return [_Plane(layout.offset, layout.stride, h, w, 1)], [(0, 0)] * 3
    raise PreprocessError(f"no CPU conversion for {fmt.name}")


def _written_in_place(result: NDArray[Any], destination: NDArray[Any]) -> bool:
    return bool(result.ctypes.data == destination.ctypes.data and result.shape == destination.shape)


class _Plan:
    """How frames of one layout become the tensor's content rectangle: resize, gather channels, convert."""

    def __init__(self, layout: FrameLayout, geometry: InputGeometry, model_input: ModelInput) -> None:
        self.input = model_input
        self.geometry = geometry
        self.rows = slice(geometry.top, geometry.top + geometry.height)
        self.columns = slice(geometry.left, geometry.left + geometry.width)
        self.planes, sources = _planes(layout)
        self.size = (geometry.width, geometry.height)  # OpenCV's (width, height)
        self.resized = [np.empty((geometry.height, geometry.width, plane.channels), np.uint8)
                        for plane in self.planes]
        self.yuv = layout.format.colour == "yuv"
        self.matrix = yuv_matrix() if self.yuv else None
        # The channels the conversion reads, gathered into one image (none when one resize already gives it).
        direct = len(self.planes) == 1 and sources == [(0, 0), (0, 1), (0, 2)] and self.planes[0].channels == 3
        self.gathered = None if direct else np.empty((geometry.height, geometry.width, 3), np.uint8)
        offsets = np.cumsum([0] + [plane.channels for plane in self.planes])
        self.mix = [int(index) for (plane, channel), out in zip(sources, range(3), strict=True)
                    for index in (offsets[plane] + channel, out)]
        self.rgb = np.empty((geometry.height, geometry.width, 3), np.uint8)

    def convert(self, data: NDArray[np.uint8], tensor: NDArray[Any]) -> None:
        """Resample ``data`` and write the result into ``tensor``'s content rectangle."""
        target = self.input.direct_region(tensor, self.rows, self.columns)
        rgb = self.rgb if target is None else target
        last = self.gathered is None and not self.yuv
        for plane, resized in zip(self.planes, self.resized, strict=True):
            destination = rgb if last else resized
            result = cv2.resize(plane.view(data), self.size, dst=destination, interpolation=cv2.INTER_LINEAR_EXACT)
            if not _written_in_place(result, destination):
                np.copyto(destination, result.reshape(destination.shape))
        if self.gathered is not None:
            mixed = self.gathered if self.yuv else rgb
            cv2.mixChannels(self.resized, [mixed], self.mix)
        if self.matrix is not None:
            source = self.gathered if self.gathered is not None else self.resized[0]
            result = cv2.transform(source, self.matrix, dst=rgb)
            if not _written_in_place(result, rgb):
                np.copyto(rgb, result)
        if target is None:
            self.input.write_image(tensor, self.rows, self.columns, self.rgb)


class CpuPreprocessor:
    """OpenCV preprocessing into a reused input tensor; plans are built for the first frame of each layout.

    ``threads`` is how many threads OpenCV may use for one frame (its own pool; 1 runs it on the
    calling thread). OpenCV's thread count is process-wide: each run sets it when it differs.
    """

    name = "cpu"

    def __init__(self, spec: TensorSpec, resize: str = "stretch", out: NDArray[Any] | None = None, *,
                 threads: int = 1) -> None:
        self.input = ModelInput(spec, resize)
        if not 1 <= threads <= MAX_THREADS:
            raise PreprocessError(f"threads must be 1..{MAX_THREADS}, got {threads}")
        self.spec = spec
        self.resize = resize
        self.target = self.input.target
        self.encoding = self.input.encoding
        self.tensor: NDArray[Any] = self.input.new_tensor() if out is None else self.input.check(out)
        self.threads = threads
        self._layout: FrameLayout | None = None
        self._plan: _Plan | None = None

    def _prepare(self, layout: FrameLayout) -> _Plan:
        if layout != self._layout or self._plan is None:
            self._plan = _Plan(layout, self.input.geometry_for(layout), self.input)
            self._layout = layout
        return self._plan

    def run(self, frame: FrameBuffer, out: NDArray[Any] | None = None) -> InputGeometry:
        """Convert ``frame`` into ``out`` (default :attr:`tensor`); returns where the frame landed."""
        tensor = self.tensor if out is None else self.input.check(out)
        plan = self._prepare(frame.layout)
        data = frame.data
        if data.dtype != np.uint8 or data.ndim != 1 or len(data) < frame.layout.end:
            raise PreprocessError(f"frame buffer of {len(data)} bytes is smaller than its layout "
                                  f"({frame.layout.end} bytes)")
        if cv2.getNumThreads() != self.threads:
            cv2.setNumThreads(self.threads)
        self.input.pad(plan.geometry, tensor)
        plan.convert(data, tensor)
        return plan.geometry

    def convert_array(self, data: NDArray[np.uint8], layout: FrameLayout,
                      out: NDArray[Any] | None = None) -> InputGeometry:
        """Convert a frame held in a plain array (tests, benchmarks, the simulator's own checks)."""
        return self.run(_ArrayFrame(layout, np.ascontiguousarray(data).reshape(-1)), out)

    def close(self) -> None:
        """Nothing to release: OpenCV's threads belong to the process."""


@dataclass(frozen=True)
class _ArrayFrame:
    layout: FrameLayout
    data: NDArray[np.uint8]

    def physical_address(self) -> int | None:
        return None

