"""CPU preprocessing: a camera frame to the model's input tensor, vectorised with numpy.

The frame is resampled bilinearly (pixel centres aligned, like OpenCV's INTER_LINEAR and
Ultralytics' letterbox) straight from the camera buffer: for each output pixel only the source
samples it needs are gathered, whole packed pixels at a time (a YUYV pair is one uint32), then
4:2:x chroma is taken from the pair a luma sample belongs to (sample repetition, as HAL does),
YUV is converted with limited-range BT.709 (the G2D path's matrix), and the result is written
into the reused input tensor in the model's dtype and quantisation. Nothing here loops over
pixels in Python, and every intermediate array is allocated once per frame geometry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from itertools import pairwise
from typing import Any

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

__all__ = ["RESIZE_MODES", "BandRunner", "CpuPreprocessor", "FrameBuffer", "InputEncoding", "InputTarget",
           "PreprocessError", "Preprocessor", "run_in_turn"]

_MAX_PERIOD = 4  # column patterns up to this period are copied as strided slices, not gathered


# --------------------------------------------------------------------------------------------
# Sampling plan
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AxisTaps:
    """Bilinear taps along one axis: output ``i`` = ``src[first[i]] * (1 - weight[i]) + src[second[i]] * weight[i]``."""

    first: NDArray[np.intp]
    second: NDArray[np.intp]
    weight: NDArray[np.float32]

    @classmethod
    def bilinear(cls, outputs: int, sources: int) -> AxisTaps:
        """Taps with output and source pixel centres aligned, clamped at the edges."""
        position = np.clip((np.arange(outputs) + 0.5) * (sources / outputs) - 0.5, 0, sources - 1)
        first = np.floor(position).astype(np.intp)
        weight = position - first
        snap_up = weight > 1 - 1e-6
        first[snap_up] += 1
        weight[snap_up | (weight < 1e-6)] = 0.0
        second = np.minimum(first + 1, sources - 1)
        return cls(first, second, weight.astype(np.float32))

    @property
    def exact(self) -> bool:
        """Every output falls on a source sample: no blending needed."""
        return not self.weight.any()


def _as_slice(indices: NDArray[np.intp]) -> slice | None:
    """``indices`` as an increasing strided slice, when it is one."""
    if len(indices) == 1:
        return slice(int(indices[0]), int(indices[0]) + 1)
    steps = np.diff(indices)
    if len(steps) and steps[0] > 0 and (steps == steps[0]).all():
        return slice(int(indices[0]), int(indices[-1]) + 1, int(steps[0]))
    return None


@dataclass(frozen=True)
class _Plane:
    """A 2-D typed view of part of the frame buffer: ``bytes_per_item`` bytes per element."""

    offset: int
    stride: int
    rows: int
    columns: int
    dtype: np.dtype[Any]
    row_of: Callable[[NDArray[np.intp]], NDArray[np.intp]]

    def view(self, data: NDArray[np.uint8]) -> NDArray[Any]:
        view: NDArray[Any] = np.ndarray((self.rows, self.columns), self.dtype, buffer=data, offset=self.offset,
                                        strides=(self.stride, self.dtype.itemsize))
        return view


@dataclass(frozen=True)
class _Channel:
    """Where one colour channel comes from: a plane, its column per luma column, and a bit shift."""

    plane: int
    column_of: Callable[[NDArray[np.intp]], NDArray[np.intp]]
    shift_of: Callable[[NDArray[np.intp]], NDArray[np.uint32]]


def _same(luma: NDArray[np.intp]) -> NDArray[np.intp]:
    return luma


def _half(luma: NDArray[np.intp]) -> NDArray[np.intp]:
    return luma // 2


def _shift(bits: int) -> Callable[[NDArray[np.intp]], NDArray[np.uint32]]:
    return lambda luma: np.full(len(luma), bits, np.uint32)


def _odd_shift(even: int, odd: int) -> Callable[[NDArray[np.intp]], NDArray[np.uint32]]:
    return lambda luma: np.where(luma % 2 == 1, odd, even).astype(np.uint32)


def _rgb_column(channel: int) -> Callable[[NDArray[np.intp]], NDArray[np.intp]]:
    return lambda luma: luma * 3 + channel


def _planes_and_channels(layout: FrameLayout) -> tuple[list[_Plane], list[_Channel]]:
    """How to read R, G, B (or Y, U, V, or grey) of ``layout``'s format from its buffer."""
    fmt, w, h = layout.format, layout.width, layout.height
    u32, u16, u8 = np.dtype("<u4"), np.dtype("<u2"), np.dtype(np.uint8)
    if fmt in (YUYV, UYVY):
        plane = _Plane(layout.offset, layout.stride, h, w // 2, u32, _same)
        y_shift = _odd_shift(0, 16) if fmt is YUYV else _odd_shift(8, 24)
        u_bits, v_bits = (8, 24) if fmt is YUYV else (0, 16)
        return [plane], [_Channel(0, _half, y_shift), _Channel(0, _half, _shift(u_bits)),
                         _Channel(0, _half, _shift(v_bits))]
    if fmt is NV12:
        luma = _Plane(layout.offset, layout.stride, h, w, u8, _same)
        chroma = _Plane(layout.chroma_offset, layout.chroma_stride, h // 2, w // 2, u16, _half)
        return [luma, chroma], [_Channel(0, _same, _shift(0)), _Channel(1, _half, _shift(0)),
                                _Channel(1, _half, _shift(8))]
    if fmt in (RGBA, BGRA):
        plane = _Plane(layout.offset, layout.stride, h, w, u32, _same)
        red, blue = (0, 16) if fmt is RGBA else (16, 0)
        return [plane], [_Channel(0, _same, _shift(red)), _Channel(0, _same, _shift(8)),
                         _Channel(0, _same, _shift(blue))]
    if fmt is RGB:
        plane = _Plane(layout.offset, layout.stride, h, w * 3, u8, _same)
        return [plane], [_Channel(0, _rgb_column(c), _shift(0)) for c in range(3)]
    if fmt is GREY:
        return [_Plane(layout.offset, layout.stride, h, w, u8, _same)], [_Channel(0, _same, _shift(0))]
    raise PreprocessError(f"no CPU conversion for {fmt.name}")


class _Rows:
    """The source rows of one plane for one row tap: a strided view when they are evenly spaced, else a copy."""

    def __init__(self, plane: int, source: _Plane, rows: NDArray[np.intp]) -> None:
        self.plane = plane
        self.indices = rows
        self.rows = _as_slice(rows)
        self.copy = None if self.rows is not None else np.empty((len(rows), source.columns), source.dtype)
        self.idle: NDArray[Any] = np.empty((0, source.columns), source.dtype)
        self.current: NDArray[Any] = self.idle

    def load(self, view: NDArray[Any]) -> None:
        if self.rows is not None:
            self.current = view[self.rows]
        else:
            assert self.copy is not None
            np.take(view, self.indices, axis=0, out=self.copy, mode="clip")
            self.current = self.copy

    def release(self) -> None:
        """Drop any view of the frame, so its mapping can be closed."""
        self.current = self.idle


class _Corner:
    """One channel's samples at one (row tap, column tap) corner, extracted to int16.

    When the columns split into a few evenly spaced runs that each read one byte position of
    the plane's elements (the usual case: a fixed resize ratio), each run is one strided copy
    straight out of the rows; otherwise the elements are gathered and shifted and masked.
    """

    def __init__(self, rows: _Rows, itemsize: int, columns: NDArray[np.intp], shifts: NDArray[np.uint32]) -> None:
        self.rows = rows
        self.itemsize = itemsize
        self.columns = columns
        self.values = np.empty((len(rows.indices), len(columns)), np.int16)
        self.runs = self._runs(columns, shifts // 8)
        self.shift: NDArray[np.uint32] = shifts[None, :]
        if self.runs is None:
            self.gathered = np.empty(self.values.shape, rows.current.dtype)
            self.scratch = np.empty(self.values.shape, rows.current.dtype)

    @staticmethod
    def _runs(columns: NDArray[np.intp], byte: NDArray[np.uint32]) -> list[tuple[slice, slice, int]] | None:
        for period in range(1, min(_MAX_PERIOD, len(columns)) + 1):
            runs = []
            for phase in range(period):
                source = _as_slice(columns[phase::period])
                bytes_here = byte[phase::period]
                if source is None or not (bytes_here == bytes_here[0]).all():
                    break
                runs.append((slice(phase, None, period), source, int(bytes_here[0])))
            else:
                return runs
        return None

    def extract(self) -> NDArray[np.int16]:
        source = self.rows.current
        if self.runs is not None:
            as_bytes = source.view(np.uint8).reshape(source.shape[0], source.shape[1], self.itemsize)
            for out_columns, source_columns, byte in self.runs:
                np.copyto(self.values[:, out_columns], as_bytes[:, source_columns, byte], casting="unsafe")
            return self.values
        np.take(source, self.columns, axis=1, out=self.gathered, mode="clip")
        np.right_shift(self.gathered, self.shift.astype(source.dtype), out=self.scratch)
        np.bitwise_and(self.scratch, 0xFF, out=self.values, casting="unsafe")
        return self.values


class _Plan:
    """How to sample the output rows ``band`` (of the content rectangle) from frames of one layout."""

    def __init__(self, layout: FrameLayout, geometry: InputGeometry, band: slice) -> None:
        self.layout = layout
        self.geometry = geometry
        self.band = band
        self.planes, channels = _planes_and_channels(layout)
        self.colour = layout.format.colour
        all_rows = AxisTaps.bilinear(geometry.height, layout.height)
        rows = AxisTaps(all_rows.first[band], all_rows.second[band], all_rows.weight[band])
        columns = AxisTaps.bilinear(geometry.width, layout.width)
        row_taps = [rows.first] + ([] if rows.exact else [rows.second])
        column_taps = [columns.first] + ([] if columns.exact else [columns.second])
        shape = (len(rows.first), geometry.width)
        # Full-size weights: a broadcast (rows, 1) operand defeats numpy's SIMD loops.
        self.row_weight = None if rows.exact else np.ascontiguousarray(np.broadcast_to(rows.weight[:, None], shape))
        self.column_weight = None if columns.exact else np.ascontiguousarray(
            np.broadcast_to(columns.weight[None, :], shape))
        shape = (len(rows.first), geometry.width)
        self.buffers = [(np.empty(shape, np.float32), np.empty(shape, np.float32)) for _ in channels]
        self.scratch = np.empty(shape, np.float32)
        self.rows: list[_Rows] = []
        self.corners: list[list[list[_Corner]]] = []  # [channel][row tap][column tap]
        for channel in channels:
            plane = self.planes[channel.plane]
            per_row = []
            for row_luma in row_taps:
                source_rows = self._rows(channel.plane, plane, plane.row_of(row_luma))
                per_row.append([_Corner(source_rows, plane.dtype.itemsize, channel.column_of(column_luma),
                                        channel.shift_of(column_luma)) for column_luma in column_taps])
            self.corners.append(per_row)

    def _rows(self, plane: int, source: _Plane, rows: NDArray[np.intp]) -> _Rows:
        for existing in self.rows:
            if existing.plane == plane and np.array_equal(existing.indices, rows):
                return existing
        created = _Rows(plane, source, rows)
        self.rows.append(created)
        return created

    def sample(self, data: NDArray[np.uint8]) -> list[NDArray[np.float32]]:
        """Each channel's resampled values (float32, 0..255, unrounded), in reused buffers."""
        views = [plane.view(data) for plane in self.planes]
        values = []
        try:
            for rows in self.rows:
                rows.load(views[rows.plane])
            for per_row, (first, second) in zip(self.corners, self.buffers, strict=True):
                for row_tap, per_column in enumerate(per_row):
                    target = first if row_tap == 0 else second
                    np.copyto(target, per_column[0].extract(), casting="unsafe")
                    if self.column_weight is not None:
                        np.copyto(self.scratch, per_column[1].extract(), casting="unsafe")
                        _blend(target, self.scratch, self.column_weight)
                if self.row_weight is not None:
                    _blend(first, second, self.row_weight)
                values.append(first)
        finally:
            for rows in self.rows:
                rows.release()
        return values


def _blend(first: NDArray[np.float32], second: NDArray[np.float32], weight: NDArray[np.float32]) -> None:
    """``first += (second - first) * weight``, in place (``second`` is overwritten)."""
    np.subtract(second, first, out=second)
    np.multiply(second, weight, out=second)
    np.add(first, second, out=first)


# --------------------------------------------------------------------------------------------
# The preprocessor
# --------------------------------------------------------------------------------------------


class _Band:
    """One horizontal band of the output: its sampling plan and its scratch buffers."""

    def __init__(self, layout: FrameLayout, geometry: InputGeometry, band: slice, model_input: ModelInput) -> None:
        self.plan = _Plan(layout, geometry, band)
        self.input = model_input
        self.encoding = model_input.encoding
        shape = self.plan.scratch.shape
        self.temp = np.empty(shape, np.float32)
        self.pixels = np.empty(shape, np.uint8)
        self.rows = slice(geometry.top + band.start, geometry.top + band.stop)
        self.columns = slice(geometry.left, geometry.left + geometry.width)

    def convert(self, data: NDArray[np.uint8], tensor: NDArray[Any]) -> None:
        """Sample this band of ``data`` and write it into ``tensor``."""
        values = self.plan.sample(data)
        is_float = self.encoding.kind == "float"
        unit = np.float32(1.0 / 255.0 if is_float else 1.0)
        rounding = np.float32(0.0 if is_float else 0.5)
        if self.plan.colour == "yuv":
            luma, blue_diff, red_diff = values
            matrix = (YUV_TO_RGB * unit).astype(np.float32)
            np.multiply(luma, matrix[0, 0], out=luma)
            np.add(luma, np.float32(-16.0 * matrix[0, 0]) + rounding, out=luma)
            np.subtract(blue_diff, np.float32(128.0), out=blue_diff)
            np.subtract(red_diff, np.float32(128.0), out=red_diff)
            np.multiply(red_diff, matrix[0, 2], out=self.temp)
            np.add(self.temp, luma, out=self.temp)
            self._store(tensor, 0, self.temp)
            np.multiply(blue_diff, matrix[2, 1], out=self.temp)
            np.add(self.temp, luma, out=self.temp)
            self._store(tensor, 2, self.temp)
            np.multiply(blue_diff, matrix[1, 1], out=blue_diff)
            np.multiply(red_diff, matrix[1, 2], out=red_diff)
            np.add(blue_diff, red_diff, out=blue_diff)
            np.add(blue_diff, luma, out=blue_diff)
            self._store(tensor, 1, blue_diff)
        else:
            for channel, value in enumerate(values * 3 if self.plan.colour == "grey" else values):
                np.multiply(value, unit, out=self.temp)
                if rounding:
                    np.add(self.temp, rounding, out=self.temp)
                self._store(tensor, channel, self.temp)

    def _store(self, tensor: NDArray[Any], channel: int, value: NDArray[np.float32]) -> None:
        """Clip ``value`` (in the encoding's units, rounding offset added) and write it as channel ``channel``."""
        if self.encoding.kind == "float":  # unrounded: v/255 straight from the resampled value
            np.clip(value, 0.0, 1.0, out=self.input.target.channel(tensor, channel)[self.rows, self.columns])
            return
        np.clip(value, 0.0, 255.0, out=value)
        np.copyto(self.pixels, value, casting="unsafe")  # contiguous float->u8 is fast; the strided write a copy
        self.input.write_pixels(tensor, channel, self.rows, self.columns, self.pixels)


BandRunner = Callable[[list[Callable[[], None]]], None]
"""Runs every job and returns when all are done (e.g. on a thread pool); injected from outside core."""


def run_in_turn(jobs: list[Callable[[], None]]) -> None:
    """The default :data:`BandRunner`: one job after another."""
    for job in jobs:
        job()


class CpuPreprocessor:
    """numpy preprocessing into a reused input tensor; plans are built for the first frame of each layout.

    ``bands`` splits the output into horizontal bands converted independently; with a
    ``runner`` that runs jobs on threads (numpy releases the GIL in its loops) they run in parallel.
    """

    name = "cpu"

    def __init__(self, spec: TensorSpec, resize: str = "stretch", out: NDArray[Any] | None = None, *,
                 bands: int = 1, runner: BandRunner = run_in_turn, release: Callable[[], None] | None = None) -> None:
        self.input = ModelInput(spec, resize)
        if not 1 <= bands <= 64:
            raise PreprocessError(f"bands must be 1..64, got {bands}")
        self.spec = spec
        self.resize = resize
        self.target = self.input.target
        self.encoding = self.input.encoding
        self.tensor: NDArray[Any] = self.input.new_tensor() if out is None else self.input.check(out)
        self.bands = bands
        self.runner = runner
        self._release = release
        self._layout: FrameLayout | None = None
        self._geometry: InputGeometry | None = None
        self._bands: list[_Band] = []

    def _prepare(self, layout: FrameLayout) -> InputGeometry:
        if layout != self._layout or self._geometry is None:
            geometry = self.input.geometry_for(layout)
            edges = np.linspace(0, geometry.height, min(self.bands, geometry.height) + 1).round().astype(int)
            self._bands = [_Band(layout, geometry, slice(int(a), int(b)), self.input) for a, b in pairwise(edges)]
            self._layout, self._geometry = layout, geometry
        return self._geometry

    def run(self, frame: FrameBuffer, out: NDArray[Any] | None = None) -> InputGeometry:
        """Convert ``frame`` into ``out`` (default :attr:`tensor`); returns where the frame landed."""
        tensor = self.tensor if out is None else self.input.check(out)
        geometry = self._prepare(frame.layout)
        data = frame.data
        if data.dtype != np.uint8 or data.ndim != 1 or len(data) < frame.layout.end:
            raise PreprocessError(f"frame buffer of {len(data)} bytes is smaller than its layout "
                                  f"({frame.layout.end} bytes)")
        self.input.pad(geometry, tensor)
        if len(self._bands) == 1:
            self._bands[0].convert(data, tensor)
        else:
            self.runner([partial(band.convert, data, tensor) for band in self._bands])
        return geometry

    def convert_array(self, data: NDArray[np.uint8], layout: FrameLayout,
                      out: NDArray[Any] | None = None) -> InputGeometry:
        """Convert a frame held in a plain array (tests, benchmarks, the simulator's own checks)."""
        return self.run(_ArrayFrame(layout, np.ascontiguousarray(data).reshape(-1)), out)

    def close(self) -> None:
        """Release what the runner holds (its threads), if anything."""
        release, self._release = self._release, None
        if release is not None:
            release()


@dataclass(frozen=True)
class _ArrayFrame:
    layout: FrameLayout
    data: NDArray[np.uint8]

    def physical_address(self) -> int | None:
        return None

