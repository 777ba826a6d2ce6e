"""CPU preprocessing against an independent, straightforward float64 reference conversion."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from edgenode.core.colour import encode_rgb
from edgenode.core.geometry import InputGeometry
from edgenode.core.pixels import BGRA, FORMATS, GREY, NV12, RGB, RGBA, UYVY, YUYV, PixelFormat, describe_frame
from edgenode.core.preprocess import CpuPreprocessor, InputEncoding, PreprocessError
from edgenode.core.tensors import TensorSpec

# --- the reference: textbook formulas, float64, one step at a time --------------------------------


def reference_yuv709_to_rgb(y: NDArray[np.float64], u: NDArray[np.float64],
                            v: NDArray[np.float64]) -> NDArray[np.float64]:
    """Limited-range BT.709 (ITU-R BT.709-6 with Kr=0.2126, Kb=0.0722), written from the definition."""
    kr, kb = 0.2126, 0.0722
    luma = (y - 16.0) / 219.0
    pb = (u - 128.0) / 224.0
    pr = (v - 128.0) / 224.0
    r = luma + 2 * (1 - kr) * pr
    b = luma + 2 * (1 - kb) * pb
    g = (luma - kr * r - kb * b) / (1 - kr - kb)
    return np.stack([r, g, b], axis=-1) * 255.0


def reference_planes(data: NDArray[np.uint8], fmt: PixelFormat, width: int, height: int,
                     stride: int) -> list[NDArray[np.float64]]:
    """The frame's channel planes, each at its own resolution (4:2:x chroma subsampled)."""
    rows = [data[r * stride:r * stride + width * max(fmt.bytes_per_pixel, 1)] for r in range(height)]
    image = np.array(rows, dtype=np.float64)
    if fmt in (YUYV, UYVY):
        y0, u0, v0 = (0, 1, 3) if fmt is YUYV else (1, 0, 2)
        return [image[:, y0::2], image[:, u0::4], image[:, v0::4]]
    if fmt is NV12:
        chroma = np.array([data[(height + r) * stride:(height + r) * stride + width] for r in range(height // 2)],
                          dtype=np.float64)
        return [image, chroma[:, 0::2], chroma[:, 1::2]]
    if fmt is RGB:
        return [image[:, c::3] for c in range(3)]
    if fmt in (RGBA, BGRA):
        order = (0, 1, 2) if fmt is RGBA else (2, 1, 0)
        return [image[:, c::4] for c in order]
    return [image]


def reference_bilinear(plane: NDArray[np.float64], out_h: int, out_w: int) -> NDArray[np.float64]:
    """Bilinear resize with pixel centres aligned and edge clamping, one output pixel at a time per axis."""
    in_h, in_w = plane.shape

    def taps(n_out: int, n_in: int) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float64]]:
        pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        lo = np.floor(pos).astype(np.intp)
        return lo, np.minimum(lo + 1, n_in - 1), pos - lo

    r0, r1, wy = taps(out_h, in_h)
    c0, c1, wx = taps(out_w, in_w)
    top = plane[r0][:, c0] * (1 - wx) + plane[r0][:, c1] * wx
    bottom = plane[r1][:, c0] * (1 - wx) + plane[r1][:, c1] * wx
    return top * (1 - wy[:, None]) + bottom * wy[:, None]


def reference_input(data: NDArray[np.uint8], fmt: PixelFormat, width: int, height: int, stride: int,  # noqa: PLR0917
                    geometry: InputGeometry) -> NDArray[np.float64]:
    """The model input (H, W, 3), 0..255 float, padding 114: every plane resized at its own resolution
    (chroma sited at the centre of the pixels sharing it), then converted."""
    planes = [reference_bilinear(p, geometry.height, geometry.width)
              for p in reference_planes(data, fmt, width, height, stride)]
    if fmt.colour == "yuv":
        rgb = reference_yuv709_to_rgb(*planes)
    elif fmt.colour == "grey":
        rgb = np.stack(planes * 3, axis=-1)
    else:
        rgb = np.stack(planes, axis=-1)
    out = np.full((geometry.input_height, geometry.input_width, 3), 114.0)
    rows = slice(geometry.top, geometry.top + geometry.height)
    out[rows, geometry.left:geometry.left + geometry.width] = np.clip(rgb, 0, 255)
    return out


# --- frames -------------------------------------------------------------------------------------


def smooth_rgb(width: int, height: int, seed: int = 0) -> NDArray[np.uint8]:
    """A colourful image with edges and gradients (in gamut, so clipping does not hide errors)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([x * 255 / max(width - 1, 1), y * 255 / max(height - 1, 1),
                      (x + y) % 97 * 2.6], axis=-1)
    for _ in range(6):
        x0, y0 = rng.integers(0, width), rng.integers(0, height)
        image[y0:y0 + height // 4, x0:x0 + width // 5] = rng.integers(0, 256, 3)
    return image.astype(np.uint8)


def make_frame(fmt: PixelFormat, width: int, height: int, pad: int = 0) -> tuple[NDArray[np.uint8], int]:
    """Frame bytes of ``fmt`` with ``pad`` spare bytes per row; returns (flat bytes, stride)."""
    dense = encode_rgb(smooth_rgb(width, height), fmt)
    stride = dense.shape[1] + pad
    framed = np.full((dense.shape[0], stride), 0xEE, np.uint8)
    framed[:, :dense.shape[1]] = dense
    return framed.reshape(-1), stride


def spec(dtype: type, shape: tuple[int, ...] = (1, 64, 96, 3), scale: float = 0.0, zero_point: int = 0) -> TensorSpec:
    return TensorSpec("images", shape, np.dtype(dtype), scale, zero_point)


def as_pixels(tensor: NDArray[np.generic], encoding: InputEncoding) -> NDArray[np.float64]:
    """Undo the input encoding: back to 0..255 (channels last)."""
    values = tensor[0].astype(np.float64)
    if values.shape[0] == 3 and values.shape[-1] != 3:
        values = np.moveaxis(values, 0, -1)
    if encoding.kind == "float":
        return values * 255.0
    if encoding.kind == "int8":
        return values + 128.0
    return values


# --- tests --------------------------------------------------------------------------------------

# Largest and mean error against the float64 reference, in 0..255 levels. RGB and grey are rounded
# once (resize); YUV planes are rounded to 8 bits after the resize and again after the colour
# matrix, which scales the chroma rounding by up to 2.1 (B = ... + 2.11 (U - 128)).
# Worst and mean error against the float reference. RGB: 0.5 of rounding plus what INTER_LINEAR_EXACT's 8-bit
# fixed-point weights add (1.02 when upscaling 64x48 to 120x160, the same bytes on x86 and aarch64).
TOLERANCE = {"rgb": (1.05, 0.3), "grey": (1.05, 0.3), "yuv": (3.0, 0.6)}

SIZES = [
    ((1920, 1080), (1, 640, 640, 3)),   # the camera case: 3:1 columns, 27:16 rows
    ((320, 240), (1, 64, 96, 3)),       # irregular ratios: the gather fallback
    ((64, 48), (1, 160, 120, 3)),       # upscaling: repeated source samples
]


@pytest.mark.parametrize("fmt", FORMATS, ids=[f.name for f in FORMATS])
@pytest.mark.parametrize("resize", ["stretch", "letterbox"])
@pytest.mark.parametrize(("frame_size", "shape"), SIZES, ids=["1080p", "qvga", "up"])
def test_every_format_matches_the_reference(fmt: PixelFormat, resize: str, frame_size: tuple[int, int],
                                            shape: tuple[int, ...]) -> None:
    width, height = frame_size
    data, stride = make_frame(fmt, width, height, pad=8)
    layout = describe_frame(fmt, width, height, stride, len(data))
    pre = CpuPreprocessor(spec(np.uint8, shape), resize)
    geometry = pre.convert_array(data, layout)
    expected = reference_input(data, fmt, width, height, stride, geometry)
    diff = np.abs(pre.tensor[0].astype(np.float64) - expected)
    worst, mean = TOLERANCE[fmt.colour]
    assert diff.max() <= worst, f"max error {diff.max():.2f} at {np.unravel_index(diff.argmax(), diff.shape)}"
    assert diff.mean() < mean


@pytest.mark.parametrize(("dtype", "scale", "zero_point", "kind"), [
    (np.uint8, 0.0, 0, "uint8"),
    (np.uint8, 1 / 255, 0, "uint8"),
    (np.int8, 1 / 255, -128, "int8"),
    (np.float32, 0.0, 0, "float"),
    (np.float16, 0.0, 0, "float"),
    (np.uint8, 2 / 255, 10, "table"),
    (np.int8, 0.0078125, -1, "table"),
])
@pytest.mark.parametrize("resize", ["stretch", "letterbox"])
def test_input_dtypes_and_quantisation(dtype: type, scale: float, zero_point: int, kind: str, resize: str) -> None:
    data, stride = make_frame(YUYV, 320, 240)
    layout = describe_frame(YUYV, 320, 240, stride, len(data))
    pre = CpuPreprocessor(spec(dtype, scale=scale, zero_point=zero_point), resize)
    assert pre.encoding.kind == kind
    geometry = pre.convert_array(data, layout)
    assert pre.tensor.dtype == np.dtype(dtype) and pre.tensor.shape == (1, 64, 96, 3)
    expected = reference_input(data, YUYV, 320, 240, stride, geometry)
    if kind == "table":
        quantised = np.clip(np.rint(np.rint(expected) / 255 / scale) + zero_point,
                            np.iinfo(dtype).min, np.iinfo(dtype).max)
        worst = np.ceil(TOLERANCE["yuv"][0] / 255 / scale) + 1
        assert np.abs(pre.tensor[0].astype(np.float64) - quantised).max() <= worst
    else:
        got = as_pixels(pre.tensor, pre.encoding)
        assert np.abs(got - expected).max() <= TOLERANCE["yuv"][0]
    if kind == "int8":  # the documented v-128
        assert pre.encoding.encode(114) == -14


def test_nchw_input_gets_channel_planes() -> None:
    data, stride = make_frame(NV12, 320, 240)
    layout = describe_frame(NV12, 320, 240, stride, len(data))
    nhwc = CpuPreprocessor(spec(np.uint8, (1, 64, 96, 3)))
    nchw = CpuPreprocessor(spec(np.uint8, (1, 3, 64, 96)))
    nhwc.convert_array(data, layout)
    nchw.convert_array(data, layout)
    np.testing.assert_array_equal(np.moveaxis(nchw.tensor[0], 0, -1), nhwc.tensor[0])


def test_letterbox_pads_114_and_geometry_maps_back() -> None:
    data, stride = make_frame(GREY, 1920, 1080)
    pre = CpuPreprocessor(spec(np.float32, (1, 640, 640, 3)), "letterbox")
    geometry = pre.convert_array(data, describe_frame(GREY, 1920, 1080, stride, len(data)))
    assert (geometry.left, geometry.top, geometry.width, geometry.height) == (0, 140, 640, 360)
    np.testing.assert_allclose(pre.tensor[0, :140], 114 / 255)
    np.testing.assert_allclose(pre.tensor[0, 500:], 114 / 255)
    # the box around the whole content maps to the whole frame
    content = np.array([[0, 140 / 640, 1, 500 / 640]], np.float32)
    np.testing.assert_allclose(geometry.boxes_to_frame(content), [[0, 0, 1, 1]], atol=1e-6)


def test_reused_output_buffer_and_plan() -> None:
    data, stride = make_frame(YUYV, 320, 240)
    layout = describe_frame(YUYV, 320, 240, stride, len(data))
    out = np.zeros((1, 64, 96, 3), np.uint8)
    pre = CpuPreprocessor(spec(np.uint8), out=out)
    pre.convert_array(data, layout)
    first = out.copy()
    pre.convert_array(data, layout)
    assert pre.tensor is out
    np.testing.assert_array_equal(out, first)
    assert out.any()


def test_frame_size_change_rebuilds_the_plan() -> None:
    pre = CpuPreprocessor(spec(np.uint8), "letterbox")
    for width, height in ((320, 240), (96, 200), (320, 240)):
        data, stride = make_frame(RGB, width, height)
        geometry = pre.convert_array(data, describe_frame(RGB, width, height, stride, len(data)))
        expected = reference_input(data, RGB, width, height, stride, geometry)
        assert np.abs(pre.tensor[0] - expected).max() <= 1.5


@pytest.mark.parametrize(("shape", "dtype", "message"), [
    ((1, 640, 640), np.uint8, "expected an RGB image"),
    ((2, 640, 640, 3), np.uint8, "expected an RGB image"),
    ((1, 640, 640, 4), np.uint8, "expected an RGB image"),
    ((1, 640, 640, 3), np.int16, "supported: uint8, int8"),
])
def test_unsupported_inputs_are_refused_clearly(shape: tuple[int, ...], dtype: type, message: str) -> None:
    with pytest.raises(PreprocessError, match=message):
        CpuPreprocessor(spec(dtype, shape))


def test_bad_resize_and_output_array() -> None:
    with pytest.raises(PreprocessError, match="resize"):
        CpuPreprocessor(spec(np.uint8), "crop")
    with pytest.raises(PreprocessError, match="output array"):
        CpuPreprocessor(spec(np.uint8), out=np.zeros((1, 64, 96, 3), np.int8))


def test_short_buffer_is_refused_before_reading() -> None:
    data, stride = make_frame(YUYV, 320, 240)
    layout = describe_frame(YUYV, 320, 240, stride, len(data))
    with pytest.raises(PreprocessError, match="smaller than its layout"):
        CpuPreprocessor(spec(np.uint8)).convert_array(data[:-1], layout)


@pytest.mark.parametrize("fmt", [YUYV, NV12, RGBA], ids=["YUYV", "NV12", "RGBA"])
@pytest.mark.parametrize("threads", [2, 3])
def test_threads_give_the_same_tensor(fmt: PixelFormat, threads: int) -> None:
    data, stride = make_frame(fmt, 1920, 1080)
    layout = describe_frame(fmt, 1920, 1080, stride, len(data))
    int8 = spec(np.int8, (1, 640, 640, 3), scale=1 / 255, zero_point=-128)
    whole = CpuPreprocessor(int8, "letterbox")
    split = CpuPreprocessor(int8, "letterbox", threads=threads)
    split.convert_array(data, layout)
    whole.convert_array(data, layout)
    np.testing.assert_array_equal(split.tensor, whole.tensor)
    with pytest.raises(PreprocessError, match="threads"):
        CpuPreprocessor(spec(np.uint8), threads=0)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.float32])
def test_rotating_staging_arrays_are_fully_written(dtype: type) -> None:
    data, stride = make_frame(YUYV, 320, 180)
    layout = describe_frame(YUYV, 320, 180, stride, len(data))
    pre = CpuPreprocessor(spec(dtype, (1, 96, 96, 3), scale=1 / 255 if dtype is np.int8 else 0.0,
                               zero_point=-128 if dtype is np.int8 else 0), "letterbox")
    pre.convert_array(data, layout)
    staging = [np.full((1, 96, 96, 3), 7, dtype) for _ in range(3)]
    for array in staging * 2:
        assert pre.convert_array(data, layout, out=array).top == 21
        np.testing.assert_array_equal(array, pre.tensor)
    with pytest.raises(PreprocessError, match="output array"):
        pre.convert_array(data, layout, out=np.zeros((1, 96, 96, 3), np.float64))
