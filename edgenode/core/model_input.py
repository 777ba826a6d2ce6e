"""The model-input contract: what a model's image input tensor wants, whoever fills it.

Every preprocessor (numpy on the CPU, G2D in hardware) writes the same tensor: its size and
channel axis (:class:`InputTarget`), its dtype and quantisation (:class:`InputEncoding`), the
resize mode that places the frame in it (stretch or letterbox, :meth:`ModelInput.geometry_for`),
the letterbox padding, and how an 8-bit RGB pixel becomes a tensor value
(:meth:`ModelInput.write_pixels`: the one switch over uint8, int8, float and table encodings).
How the pixels are produced (resampling, colour conversion) is the preprocessor's business.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from edgenode.core.geometry import LETTERBOX_PAD, InputGeometry
from edgenode.core.pixels import FrameLayout
from edgenode.core.tensors import TensorSpec

RESIZE_MODES = ("stretch", "letterbox")


class PreprocessError(ValueError):
    """A model input or frame the preprocessor cannot handle."""


class FrameBuffer(Protocol):
    """A mapped camera frame: its layout, its bytes (from the buffer's first byte) and, for G2D, its address."""

    @property
    def layout(self) -> FrameLayout: ...

    @property
    def data(self) -> NDArray[np.uint8]: ...

    def physical_address(self) -> int | None: ...


class Preprocessor(Protocol):
    """Fills ``out`` (default: its own ``tensor``; shape and dtype of ``spec``) from one frame.

    ``run`` returns where the frame landed (for mapping boxes back) and writes every element of
    the array, padding included, so callers may rotate several staging arrays.
    """

    name: str
    spec: TensorSpec
    tensor: NDArray[Any]

    def run(self, frame: FrameBuffer, out: NDArray[Any] | None = None) -> InputGeometry: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class InputTarget:
    """Size and channel axis of an image input tensor: ``(1, H, W, 3)`` (NHWC) or ``(1, 3, H, W)`` (NCHW)."""

    height: int
    width: int
    channels_last: bool

    @classmethod
    def from_spec(cls, spec: TensorSpec) -> InputTarget:
        shape = tuple(int(d) for d in spec.shape)
        if len(shape) == 4 and shape[0] == 1 and shape[3] == 3 and shape[1] > 0 and shape[2] > 0:
            return cls(shape[1], shape[2], True)
        if len(shape) == 4 and shape[0] == 1 and shape[1] == 3 and shape[2] > 0 and shape[3] > 0:
            return cls(shape[2], shape[3], False)
        raise PreprocessError(
            f"model input {spec.name!r} has shape {list(shape)}; expected an RGB image [1, H, W, 3] or [1, 3, H, W]")

    def channel(self, tensor: NDArray[Any], index: int) -> NDArray[Any]:
        """The ``(H, W)`` view of channel ``index`` (R, G, B = 0, 1, 2)."""
        return tensor[0, :, :, index] if self.channels_last else tensor[0, index]


@dataclass(frozen=True)
class InputEncoding:
    """How a 0..255 pixel value becomes a tensor value.

    ``kind``: ``float`` (v/255), ``uint8`` (as is), ``int8`` (v-128, the usual 1/255 and -128
    quantisation) or ``table`` (any other per-tensor quantisation, through ``table``).
    """

    kind: str
    dtype: np.dtype[Any]
    table: NDArray[Any] | None = None

    @classmethod
    def from_spec(cls, spec: TensorSpec) -> InputEncoding:
        dtype = np.dtype(spec.dtype)
        if dtype.kind == "f":
            return cls("float", dtype)
        if dtype not in (np.dtype(np.uint8), np.dtype(np.int8)):
            raise PreprocessError(f"model input {spec.name!r} has dtype {dtype}; supported: uint8, int8, float32, "
                                  f"float16")
        unit_scale = not spec.quantized or abs(spec.scale * 255.0 - 1.0) < 1e-3
        if dtype == np.uint8 and unit_scale and spec.zero_point == 0:
            return cls("uint8", dtype)
        if dtype == np.int8 and (not spec.quantized or (unit_scale and spec.zero_point == -128)):
            return cls("int8", dtype)  # unquantised int8 too: the reference feeds v - 128
        if not spec.quantized:
            raise PreprocessError(f"model input {spec.name!r} is {dtype} with zero point {spec.zero_point} "
                                  f"but no scale")
        info = np.iinfo(dtype)
        values = np.rint(np.arange(256) / 255.0 / spec.scale) + spec.zero_point
        return cls("table", dtype, np.clip(values, info.min, info.max).astype(dtype))

    def encode(self, value: int) -> float | int:
        """The tensor value of pixel value ``value`` (0..255)."""
        if self.kind == "float":
            return value / 255.0
        if self.kind == "int8":
            return value - 128
        if self.kind == "table":
            assert self.table is not None
            return int(self.table[value])
        return value


class ModelInput:
    """The input tensor of one model: validated once, then shared by every preprocessor of it."""

    def __init__(self, spec: TensorSpec, resize: str = "stretch") -> None:
        if resize not in RESIZE_MODES:
            raise PreprocessError(f"resize must be one of {', '.join(RESIZE_MODES)}, got {resize!r}")
        self.spec = spec
        self.resize = resize
        self.target = InputTarget.from_spec(spec)
        self.encoding = InputEncoding.from_spec(spec)
        self.shape = tuple(int(d) for d in spec.shape)

    def new_tensor(self) -> NDArray[Any]:
        """A zeroed array of the input's shape and dtype."""
        return np.zeros(self.shape, self.encoding.dtype)

    def check(self, out: NDArray[Any]) -> NDArray[Any]:
        """``out`` itself when it has the input's shape and dtype; PreprocessError otherwise."""
        if out.shape != self.shape or out.dtype != self.encoding.dtype:
            raise PreprocessError(f"output array is {out.shape} {out.dtype}, the model input is "
                                  f"{self.shape} {self.encoding.dtype}")
        return out

    def geometry_for(self, layout: FrameLayout) -> InputGeometry:
        """Where a frame of ``layout`` lands in the input."""
        build = InputGeometry.letterbox if self.resize == "letterbox" else InputGeometry.stretch
        return build(layout.width, layout.height, self.target.width, self.target.height)

    def pad(self, geometry: InputGeometry, tensor: NDArray[Any]) -> None:
        """Fill the letterbox bands around the frame's rectangle with the padding value."""
        if geometry.is_identity:
            return
        value = self.encoding.encode(LETTERBOX_PAD)
        bottom, right = geometry.top + geometry.height, geometry.left + geometry.width
        for channel in range(3):
            plane = self.target.channel(tensor, channel)
            plane[:geometry.top] = value
            plane[bottom:] = value
            plane[geometry.top:bottom, :geometry.left] = value
            plane[geometry.top:bottom, right:] = value

    def write_pixels(self, tensor: NDArray[Any], channel: int, rows: slice, columns: slice,
                     pixels: NDArray[np.uint8]) -> None:
        """Encode 8-bit values ``pixels`` of colour ``channel`` into ``tensor[rows, columns]`` of that channel."""
        kind = self.encoding.kind
        if kind == "int8":  # v - 128 is v with its top bit flipped, read as int8
            np.bitwise_xor(pixels, 0x80, out=self.target.channel(tensor.view(np.uint8), channel)[rows, columns])
            return
        out = self.target.channel(tensor, channel)[rows, columns]
        if kind == "uint8":
            np.copyto(out, pixels)
        elif kind == "float":
            np.multiply(pixels, np.float32(1.0 / 255.0), out=out, casting="unsafe")
        else:
            assert self.encoding.table is not None
            np.take(self.encoding.table, pixels, out=out)

    def direct_region(self, tensor: NDArray[Any], rows: slice, columns: slice) -> NDArray[np.uint8] | None:
        """The ``(h, w, 3)`` region of ``tensor`` when 8-bit RGB can be written there as is (uint8 NHWC)."""
        if self.encoding.kind != "uint8" or not self.target.channels_last:
            return None
        region: NDArray[np.uint8] = tensor[0, rows, columns, :]
        return region

    def write_image(self, tensor: NDArray[Any], rows: slice, columns: slice, rgb: NDArray[np.uint8]) -> None:
        """Encode an ``(h, w, 3)`` 8-bit RGB image into ``tensor[rows, columns]`` (one pass when NHWC)."""
        if not self.target.channels_last:
            for channel in range(3):
                self.write_pixels(tensor, channel, rows, columns, rgb[:, :, channel])
            return
        kind = self.encoding.kind
        if kind == "int8":
            np.bitwise_xor(rgb, 0x80, out=tensor.view(np.uint8)[0, rows, columns, :])
            return
        out = tensor[0, rows, columns, :]
        if kind == "uint8":
            np.copyto(out, rgb)
        elif kind == "float":
            np.multiply(rgb, np.float32(1.0 / 255.0), out=out, casting="unsafe")
        else:
            assert self.encoding.table is not None
            np.take(self.encoding.table, rgb, out=out)
