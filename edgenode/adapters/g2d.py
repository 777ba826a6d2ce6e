"""NXP G2D preprocessing through ctypes on ``libg2d.so.2``: the camera dma-buf, converted and scaled in hardware.

The library's ABI changed in 6.4.11: ``g2d_surface.planes`` became ``unsigned long`` (an
80-byte struct on 64-bit) from ``int`` (60 bytes). The version is read from the library's
``_G2D_VERSION`` string. Colour conversion is set to limited-range BT.709, like the CPU path.
G2D writes RGBA into a physically contiguous destination (CMA dma-buf); the CPU then copies
RGB into the model's input tensor in its dtype. Frames G2D cannot take (no physical address,
a format it lacks, a stride in partial pixels) go through the CPU path instead.
"""

from __future__ import annotations

import ctypes
import re
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from edgenode.adapters.dma_heap import CONTIGUOUS_HEAPS, SharedBuffer
from edgenode.core.geometry import LETTERBOX_PAD, InputGeometry
from edgenode.core.model_input import FrameBuffer, ModelInput, PreprocessError
from edgenode.core.pixels import BGRA, NV12, RGB, RGBA, UYVY, YUYV, FrameLayout, PixelFormat
from edgenode.core.preprocess import CpuPreprocessor
from edgenode.core.tensors import TensorSpec
from edgenode.logs import get_logger

LIBRARY = "libg2d.so.2"
# enum g2d_format
G2D_RGBA8888, G2D_BGRA8888, G2D_RGB888 = 1, 3, 10
G2D_NV12, G2D_YUYV, G2D_UYVY = 20, 24, 26
# enum g2d_cap_mode
G2D_YUV_BT_601, G2D_YUV_BT_709, G2D_YUV_BT_601FR, G2D_YUV_BT_709FR = 5, 6, 7, 8
SOURCE_FORMATS: dict[PixelFormat, int] = {YUYV: G2D_YUYV, UYVY: G2D_UYVY, NV12: G2D_NV12, RGBA: G2D_RGBA8888,
                                          BGRA: G2D_BGRA8888, RGB: G2D_RGB888}
UNSIGNED_LONG_PLANES = (6, 4, 11, 1049711)  # first version whose planes are unsigned long


class G2DUnavailable(RuntimeError):
    """No usable G2D here: library, device or contiguous memory missing."""


# Fields after ``planes``, shared by both layouts.
_SURFACE_TAIL: list[tuple[str, type[ctypes.c_int] | type[ctypes.c_uint]]] = [
    ("left", ctypes.c_int), ("top", ctypes.c_int), ("right", ctypes.c_int), ("bottom", ctypes.c_int),
    ("stride", ctypes.c_int), ("width", ctypes.c_int), ("height", ctypes.c_int), ("blendfunc", ctypes.c_uint),
    ("global_alpha", ctypes.c_int), ("clrcolor", ctypes.c_int), ("rot", ctypes.c_uint)]


class G2DSurface(ctypes.Structure):
    """``struct g2d_surface`` of G2D >= 6.4.11 (planes are unsigned long: 80 bytes on 64-bit)."""

    _fields_ = [("format", ctypes.c_uint), ("planes", ctypes.c_ulong * 3), *_SURFACE_TAIL]


class G2DSurfaceLegacy(ctypes.Structure):
    """``struct g2d_surface`` before 6.4.11 (planes are int: 60 bytes)."""

    _fields_ = [("format", ctypes.c_uint), ("planes", ctypes.c_int * 3), *_SURFACE_TAIL]


@dataclass(frozen=True, order=True)
class G2DVersion:
    """``major.minor.patch:build`` from ``_G2D_VERSION`` (``$VERSION$6.4.11:1049711:abc$``)."""

    major: int
    minor: int
    patch: int
    build: int

    @classmethod
    def parse(cls, text: str) -> G2DVersion | None:
        match = re.search(r"\$VERSION\$(\d+)\.(\d+)\.(\d+)(?::(\d+))?", text)
        if match is None:
            return None
        return cls(*(int(part or 0) for part in match.groups()))

    @property
    def surface(self) -> type[ctypes.Structure]:
        """The ``g2d_surface`` layout this version expects."""
        modern = (self.major, self.minor, self.patch, self.build) >= UNSIGNED_LONG_PLANES
        return G2DSurface if modern else G2DSurfaceLegacy

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}:{self.build}"


def read_version(library: ctypes.CDLL) -> G2DVersion | None:
    """The version behind ``_G2D_VERSION`` (a ``const char *``; the text may start 2 bytes in)."""
    try:
        pointer = ctypes.c_void_p.in_dll(library, "_G2D_VERSION").value
    except ValueError:
        return None
    if not pointer:
        return None
    for skip in (0, 2):
        found = G2DVersion.parse(ctypes.string_at(pointer + skip).decode("ascii", "replace"))
        if found is not None:
            return found
    return None


class G2D:
    """An open G2D handle: BT.709 colour space, blit and finish."""

    def __init__(self, path: str = LIBRARY) -> None:
        try:
            library = ctypes.CDLL(path)
        except OSError as exc:
            raise G2DUnavailable(f"cannot load {path}: {exc}") from None
        self.library = library
        found = read_version(library)
        # Unknown version: assume the current ABI, as the reference does.
        self.version = found or G2DVersion(*UNSIGNED_LONG_PLANES)
        self.surface_type = self.version.surface
        self._functions: dict[str, Any] = {}
        pointer, surface_pointer = ctypes.c_void_p, ctypes.POINTER(self.surface_type)
        for name, arguments in (("g2d_open", [ctypes.POINTER(pointer)]), ("g2d_close", [pointer]),
                                ("g2d_enable", [pointer, ctypes.c_int]), ("g2d_disable", [pointer, ctypes.c_int]),
                                ("g2d_blit", [pointer, surface_pointer, surface_pointer]),
                                ("g2d_finish", [pointer])):
            try:
                function = getattr(library, name)
            except AttributeError:
                raise G2DUnavailable(f"{path} has no {name}") from None
            function.argtypes = arguments
            function.restype = ctypes.c_int
            self._functions[name] = function
        handle = ctypes.c_void_p()
        if self._functions["g2d_open"](ctypes.byref(handle)) != 0 or not handle.value:
            raise G2DUnavailable(f"g2d_open failed ({path} {self.version}): no G2D device")
        self.handle: ctypes.c_void_p | None = handle
        try:
            for cap in (G2D_YUV_BT_601, G2D_YUV_BT_601FR, G2D_YUV_BT_709FR):
                self._call("g2d_disable", cap)
            self._call("g2d_enable", G2D_YUV_BT_709)
        except G2DUnavailable:
            self.close()
            raise

    def _call(self, name: str, *arguments: Any) -> None:
        if self._functions[name](self.handle, *arguments) != 0:
            raise G2DUnavailable(f"{name} failed")

    def surface(self, fmt: int, planes: tuple[int, ...], rect: tuple[int, int, int, int], stride: int, *,
                size: tuple[int, int]) -> ctypes.Structure:
        """A ``g2d_surface`` in this library's layout (blend, alpha, clear colour and rotation all 0)."""
        surface = self.surface_type()
        surface.format = fmt
        for index, address in enumerate(planes):
            surface.planes[index] = address
        surface.left, surface.top, surface.right, surface.bottom = rect
        surface.stride, (surface.width, surface.height) = stride, size
        surface.blendfunc = surface.global_alpha = surface.clrcolor = surface.rot = 0
        return surface

    def blit(self, source: ctypes.Structure, destination: ctypes.Structure) -> None:
        """Convert and scale ``source`` into ``destination`` and wait for the hardware."""
        if self._functions["g2d_blit"](self.handle, ctypes.byref(source), ctypes.byref(destination)) != 0:
            raise PreprocessError("g2d_blit failed")
        if self._functions["g2d_finish"](self.handle) != 0:
            raise PreprocessError("g2d_finish failed")

    def close(self) -> None:
        """Close the handle (idempotent)."""
        if self.handle is not None:
            self._functions["g2d_close"](self.handle)
            self.handle = None


class Destination(Protocol):
    """Where G2D writes: ``data`` is the mapped RGBA bytes, ``physical_address()`` what G2D is given."""

    data: NDArray[np.uint8]

    def physical_address(self) -> int | None: ...

    def begin_read(self) -> None: ...

    def end_read(self) -> None: ...

    def begin_write(self) -> None: ...

    def end_write(self) -> None: ...

    def close(self) -> None: ...


def contiguous_destination(size: int) -> Destination:
    """A CMA dma-buf G2D can write to; G2DUnavailable when there is none or it has no physical address."""
    try:
        buffer = SharedBuffer(size, CONTIGUOUS_HEAPS, allow_memfd=False, name="g2d-dst")
    except OSError as exc:
        raise G2DUnavailable(f"no contiguous dma-buf for G2D output: {exc}") from None
    if buffer.physical_address() is None:
        buffer.close()
        raise G2DUnavailable("the kernel gives no physical address for dma-bufs (DMA_BUF_IOCTL_PHYS)")
    return buffer


class G2DPreprocessor:
    """G2D conversion into the model input; frames G2D cannot take use the CPU path (logged once)."""

    name = "g2d"

    def __init__(self, spec: TensorSpec, resize: str = "stretch", *, library: str = LIBRARY,
                 destination: Destination | None = None) -> None:
        self.input = ModelInput(spec, resize)  # validates the input
        self.cpu = CpuPreprocessor(spec, resize, self.input.new_tensor())  # frames G2D cannot take
        self.spec = spec
        self.tensor: NDArray[Any] = self.cpu.tensor
        target = self.input.target
        self.g2d = G2D(library)
        try:
            self.destination = destination or contiguous_destination(target.width * target.height * 4)
            address = self.destination.physical_address()
            if not address:
                raise G2DUnavailable("G2D output buffer has no physical address")
        except BaseException:
            self.g2d.close()
            raise
        self._address = address
        self.rgba = self.destination.data[:target.width * target.height * 4].reshape(target.height, target.width, 4)
        self._geometry: InputGeometry | None = None
        self._fallback_logged: set[str] = set()
        self._log: Any = get_logger("edgenode.g2d")
        self._log.info(f"preprocessing with G2D {self.g2d.version}", surface_bytes=ctypes.sizeof(self.g2d.surface_type))

    def _cpu(self, frame: FrameBuffer, out: NDArray[Any] | None, why: str) -> InputGeometry:
        if why not in self._fallback_logged:
            self._fallback_logged.add(why)
            self._log.info(f"converting on the CPU: {why}")
        return self.cpu.run(frame, out)

    def _prepare(self, layout: FrameLayout) -> InputGeometry:
        geometry = self.input.geometry_for(layout)
        if geometry != self._geometry:
            if not geometry.is_identity:  # G2D writes only the frame's rectangle: pad the rest once
                self.destination.begin_write()
                self.rgba[...] = LETTERBOX_PAD
                self.destination.end_write()
            self._geometry = geometry
        return geometry

    def run(self, frame: FrameBuffer, out: NDArray[Any] | None = None) -> InputGeometry:
        """Blit ``frame`` through G2D into ``out`` (default :attr:`tensor`); returns where the frame landed."""
        tensor = self.tensor if out is None else self.input.check(out)
        layout = frame.layout
        fmt = SOURCE_FORMATS.get(layout.format)
        if fmt is None:
            return self._cpu(frame, out, f"G2D has no {layout.format.name} input")
        pixel_bytes = layout.format.bytes_per_pixel or 1
        if layout.stride % pixel_bytes or (layout.format is NV12 and layout.chroma_stride != layout.stride):
            return self._cpu(frame, out, f"{layout.format.name} stride {layout.stride} is not whole pixels")
        base = frame.physical_address()
        if not base:
            return self._cpu(frame, out, "camera buffer has no physical address (not a contiguous dma-buf)")
        geometry = self._prepare(layout)
        planes = (base + layout.offset,) if layout.format is not NV12 else (base + layout.offset,
                                                                             base + layout.chroma_offset)
        source = self.g2d.surface(fmt, planes, (0, 0, layout.width, layout.height), layout.stride // pixel_bytes,
                                  size=(layout.width, layout.height))
        width, height = geometry.input_width, geometry.input_height
        rect = (geometry.left, geometry.top, geometry.left + geometry.width, geometry.top + geometry.height)
        destination = self.g2d.surface(G2D_RGBA8888, (self._address,), rect, width, size=(width, height))
        self.g2d.blit(source, destination)
        self.input.pad(geometry, tensor)
        self.destination.begin_read()
        try:
            self._copy_rgb(geometry, tensor)
        finally:
            self.destination.end_read()
        return geometry

    def _copy_rgb(self, geometry: InputGeometry, tensor: NDArray[Any]) -> None:
        rows = slice(geometry.top, geometry.top + geometry.height)
        columns = slice(geometry.left, geometry.left + geometry.width)
        self.input.write_image(tensor, rows, columns, self.rgba[rows, columns, :3])

    def close(self) -> None:
        """Release the G2D handle and the output buffer."""
        self.g2d.close()
        self.rgba = np.empty((0, 0, 4), np.uint8)
        self.destination.close()
