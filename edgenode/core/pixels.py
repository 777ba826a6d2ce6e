"""Camera pixel formats and the byte layout of one frame, validated before any byte is read.

A frame is described by its fourcc (``DmaBuffer.fourcc``, four ASCII characters little-endian)
or its format name (``CameraFrame.tensor.format``), its size, its row stride and the bytes the
producer says it holds. :func:`describe_frame` checks that the described rows fit in the buffer,
so a lying or corrupt message can never make a reader touch memory past the mapping.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_DIMENSION = 16384


class FrameLayoutError(ValueError):
    """A frame description that does not fit its buffer or names an unknown format."""


def fourcc_code(text: str) -> int:
    """The little-endian u32 of a four-character code (``"YUYV"`` → ``0x56595559``)."""
    if len(text) != 4 or not text.isascii():
        raise FrameLayoutError(f"fourcc must be four ASCII characters, got {text!r}")
    return int.from_bytes(text.encode("ascii"), "little")


def fourcc_text(code: int) -> str:
    """The four characters of a fourcc code; unprintable bytes are shown as ``\\xNN``."""
    raw = (code & 0xFFFFFFFF).to_bytes(4, "little")
    return "".join(chr(b) if 32 <= b < 127 else f"\\x{b:02x}" for b in raw)


@dataclass(frozen=True)
class PixelFormat:
    """One supported format.

    ``bytes_per_pixel`` is for packed formats (0 for NV12). ``colour`` is ``yuv`` (converted
    with limited-range BT.709), ``rgb`` (taken as is) or ``grey`` (one value copied to R, G, B).
    """

    name: str
    fourcc: int
    bytes_per_pixel: int
    colour: str
    even_width: bool = False
    even_height: bool = False

    @property
    def planar(self) -> bool:
        return self.bytes_per_pixel == 0


YUYV = PixelFormat("YUYV", fourcc_code("YUYV"), 2, "yuv", even_width=True)
UYVY = PixelFormat("UYVY", fourcc_code("UYVY"), 2, "yuv", even_width=True)
NV12 = PixelFormat("NV12", fourcc_code("NV12"), 0, "yuv", even_width=True, even_height=True)
RGB = PixelFormat("RGB", fourcc_code("RGB3"), 3, "rgb")
RGBA = PixelFormat("RGBA", fourcc_code("RGBA"), 4, "rgb")
BGRA = PixelFormat("BGRA", fourcc_code("BGRA"), 4, "rgb")
GREY = PixelFormat("GREY", fourcc_code("GREY"), 1, "grey")

FORMATS: tuple[PixelFormat, ...] = (YUYV, UYVY, NV12, RGB, RGBA, BGRA, GREY)
# Every fourcc a producer may send for each format (V4L2 names and common aliases).
_BY_FOURCC: dict[int, PixelFormat] = {fmt.fourcc: fmt for fmt in FORMATS}
_BY_FOURCC.update({fourcc_code("YUY2"): YUYV, fourcc_code("RGB "): RGB, fourcc_code("Y800"): GREY,
                   fourcc_code("Y8  "): GREY})
_BY_NAME: dict[str, PixelFormat] = {fmt.name: fmt for fmt in FORMATS}
_BY_NAME.update({"YUY2": YUYV, "RGB3": RGB, "RGB8": RGB, "GRAY": GREY, "GRAY8": GREY, "Y800": GREY, "MONO8": GREY})


def format_by_fourcc(code: int) -> PixelFormat:
    """The format of a DmaBuffer fourcc; FrameLayoutError names it when unsupported."""
    try:
        return _BY_FOURCC[code & 0xFFFFFFFF]
    except KeyError:
        raise FrameLayoutError(
            f"unsupported fourcc {fourcc_text(code)!r} (0x{code & 0xFFFFFFFF:08x}); "
            f"supported: {', '.join(f.name for f in FORMATS)}") from None


def format_by_name(name: str) -> PixelFormat:
    """The format of a CameraFrame format string (case-insensitive, V4L2 aliases accepted)."""
    try:
        return _BY_NAME[name.strip().upper()]
    except KeyError:
        raise FrameLayoutError(
            f"unsupported pixel format {name!r}; supported: {', '.join(f.name for f in FORMATS)}") from None


@dataclass(frozen=True)
class FrameLayout:
    """Where a frame's pixels are inside its buffer, all in bytes from the buffer's start.

    ``stride`` is the first plane's row pitch; for NV12 ``chroma_offset``/``chroma_stride``
    place the interleaved UV plane. ``end`` is one past the last byte any reader touches.
    """

    format: PixelFormat
    width: int
    height: int
    stride: int
    offset: int = 0
    chroma_offset: int = 0
    chroma_stride: int = 0

    @property
    def row_bytes(self) -> int:
        """Bytes of pixels in one row of the first plane."""
        return self.width * (self.format.bytes_per_pixel or 1)

    @property
    def end(self) -> int:
        last = self.offset + self.stride * (self.height - 1) + self.row_bytes
        if self.format.planar:
            last = max(last, self.chroma_offset + self.chroma_stride * (self.height // 2 - 1) + self.width)
        return last


def describe_frame(fmt: PixelFormat, width: int, height: int, stride: int, length: int, *, offset: int = 0,
                   chroma_offset: int | None = None, chroma_stride: int | None = None) -> FrameLayout:
    """Validate a frame description against the ``length`` bytes its buffer holds.

    ``stride`` 0 means dense rows. NV12's UV plane defaults to right after the Y plane with the
    same stride. Raises FrameLayoutError saying which number is wrong.
    """
    if not (0 < width <= MAX_DIMENSION and 0 < height <= MAX_DIMENSION):
        raise FrameLayoutError(f"frame size {width}x{height} is outside 1..{MAX_DIMENSION}")
    if fmt.even_width and width % 2:
        raise FrameLayoutError(f"{fmt.name} needs an even width, got {width}")
    if fmt.even_height and height % 2:
        raise FrameLayoutError(f"{fmt.name} needs an even height, got {height}")
    if offset < 0 or length < 0 or stride < 0:
        raise FrameLayoutError(f"negative offset {offset}, stride {stride} or length {length}")
    row_bytes = width * (fmt.bytes_per_pixel or 1)
    stride = stride or row_bytes
    if stride < row_bytes:
        raise FrameLayoutError(
            f"stride {stride} is shorter than a {fmt.name} row of {width} pixels ({row_bytes} bytes)")
    if fmt.planar:
        chroma_stride = chroma_stride or stride
        if chroma_stride < width:
            raise FrameLayoutError(f"chroma stride {chroma_stride} is shorter than the {width}-byte UV row")
        if chroma_offset is None:
            chroma_offset = offset + stride * height
        if chroma_offset < offset + stride * (height - 1) + row_bytes:
            raise FrameLayoutError(f"chroma plane at byte {chroma_offset} overlaps the luma plane")
    layout = FrameLayout(fmt, width, height, stride, offset, chroma_offset or 0, chroma_stride or 0)
    if layout.end > length:
        raise FrameLayoutError(
            f"{fmt.name} {width}x{height} with stride {stride} needs {layout.end} bytes but the buffer has {length}")
    return layout
