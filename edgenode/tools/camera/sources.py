"""What the simulator shows: the synthetic scene, still images, or a video, written straight into frame bytes.

Every source writes the next frame, already in the output pixel format, into a ring slot and
returns the frame's ground-truth objects when it knows them. Still images are converted once;
the synthetic scene draws its rectangles directly in the encoded bytes, so even 1080p YUYV at
30 fps costs little more than a memory copy per frame. ``rgb`` gives the same frame as RGB
(for the JPEG the simulator also publishes), without a colour conversion back from the frame.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from edgenode.core.colour import encode_rgb
from edgenode.core.pixels import NV12, PixelFormat
from edgenode.tools.camera.scene import SceneObject, SyntheticScene

IMAGE_SUFFIXES = (".ppm", ".pgm", ".npy", ".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class SourceError(ValueError):
    """An image or video the simulator cannot use."""


class FrameSource(Protocol):
    def write(self, index: int, out: NDArray[np.uint8]) -> list[SceneObject] | None:
        """Write frame ``index`` (encoded) into ``out`` (``(rows, row_bytes)``); its objects, if known."""
        ...

    def rgb(self, index: int) -> NDArray[np.uint8]:
        """Frame ``index`` as RGB ``(height, width, 3)``; called right after ``write(index, ...)``."""
        ...

    def close(self) -> None: ...


def fit(image: NDArray[np.uint8], width: int, height: int) -> NDArray[np.uint8]:
    """``image`` as RGB ``(height, width, 3)``: grey expanded, alpha dropped, resized by nearest pixel."""
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise SourceError(f"image of shape {image.shape} is not grey, RGB or RGBA")
    image = image[..., :3]
    rows = (np.arange(height) * image.shape[0] // height).clip(0, image.shape[0] - 1)
    columns = (np.arange(width) * image.shape[1] // width).clip(0, image.shape[1] - 1)
    return np.ascontiguousarray(image[rows][:, columns]).astype(np.uint8)


def _read_netpbm(data: bytes, path: Path) -> NDArray[np.uint8]:
    fields: list[bytes] = []
    position = 0
    while len(fields) < 4:
        while position < len(data) and data[position:position + 1].isspace():
            position += 1
        if data[position:position + 1] == b"#":
            position = data.index(b"\n", position) + 1
            continue
        end = position
        while end < len(data) and not data[end:end + 1].isspace():
            end += 1
        fields.append(data[position:end])
        position = end
    magic, width, height, maximum = fields[0], int(fields[1]), int(fields[2]), int(fields[3])
    if magic not in (b"P5", b"P6") or maximum != 255:
        raise SourceError(f"{path}: only binary 8-bit PGM (P5) and PPM (P6) are read without Pillow")
    channels = 3 if magic == b"P6" else 1
    pixels = np.frombuffer(data, np.uint8, count=width * height * channels, offset=position + 1)
    return pixels.reshape(height, width, channels) if channels == 3 else pixels.reshape(height, width)


def read_image(path: Path) -> NDArray[np.uint8]:
    """An image file as uint8 pixels: PPM/PGM and .npy always, anything else through Pillow if installed."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".ppm", ".pgm"):
            return _read_netpbm(path.read_bytes(), path)
        if suffix == ".npy":
            array = np.load(path, allow_pickle=False)
            return np.asarray(array, np.uint8)
    except (OSError, ValueError, IndexError) as exc:
        raise SourceError(f"cannot read {path}: {exc}") from None
    try:
        pil: Any = importlib.import_module("PIL.Image")
    except ImportError:
        raise SourceError(f"{path}: reading {suffix} needs Pillow (pip install pillow); "
                          "PPM, PGM and .npy work without it") from None
    try:
        with pil.open(path) as image:
            return np.asarray(image.convert("RGB"), np.uint8)
    except (OSError, ValueError) as exc:
        raise SourceError(f"cannot read {path}: {exc}") from None


class SceneSource:
    """The synthetic scene, drawn in encoded bytes over a pre-encoded background."""

    def __init__(self, scene: SyntheticScene, fmt: PixelFormat) -> None:
        self.scene, self.fmt = scene, fmt
        self.background_rgb = scene.background()
        self.background = encode_rgb(self.background_rgb, fmt)
        self._patches: dict[tuple[int, int, int], NDArray[np.uint8]] = {}

    def _patch(self, colour: tuple[int, int, int]) -> NDArray[np.uint8]:
        patch = self._patches.get(colour)
        if patch is None:
            patch = self._patches[colour] = encode_rgb(np.full((2, 2, 3), colour, np.uint8), self.fmt)
        return patch

    def write(self, index: int, out: NDArray[np.uint8]) -> list[SceneObject] | None:
        np.copyto(out, self.background)
        objects = self.scene.objects(index)
        height = self.scene.height
        for item in objects:
            x1, y1, x2, y2 = item.box
            if x2 <= x1 or y2 <= y1:
                continue
            patch = self._patch(item.colour)
            if self.fmt is NV12:
                out[y1:y2, x1:x2] = patch[0, 0]
                chroma = out[height + y1 // 2:height + y2 // 2, x1:x2]
                chroma.reshape(chroma.shape[0], -1, 2)[:] = patch[2]
            else:
                group = patch.shape[1]  # bytes of two pixels
                region = out[y1:y2, x1 * group // 2:x2 * group // 2]
                region.reshape(region.shape[0], -1, group)[:] = patch[0]
        return objects

    def rgb(self, index: int) -> NDArray[np.uint8]:
        image: NDArray[np.uint8] = self.background_rgb.copy()
        for item in self.scene.objects(index):
            x1, y1, x2, y2 = item.box
            image[y1:y2, x1:x2] = item.colour
        return image

    def close(self) -> None:
        """Nothing to release."""


class ImageSource:
    """Still images, converted once, shown in turn (``hold`` frames each)."""

    def __init__(self, paths: list[Path], fmt: PixelFormat, width: int, height: int, hold: int = 1) -> None:
        if not paths:
            raise SourceError("no image files given")
        self.images = [fit(read_image(path), width, height) for path in paths]
        self.frames = [encode_rgb(image, fmt) for image in self.images]
        self.hold = max(1, hold)

    def write(self, index: int, out: NDArray[np.uint8]) -> list[SceneObject] | None:
        np.copyto(out, self.frames[index // self.hold % len(self.frames)])
        return None

    def rgb(self, index: int) -> NDArray[np.uint8]:
        return self.images[index // self.hold % len(self.images)]

    def close(self) -> None:
        """Nothing to release."""


class VideoSource:
    """A video file through OpenCV (optional: ``pip install opencv-python-headless``), looped."""

    def __init__(self, path: Path, fmt: PixelFormat, width: int, height: int) -> None:
        try:
            self._cv2: Any = importlib.import_module("cv2")
        except ImportError:
            raise SourceError("video input needs OpenCV (pip install opencv-python-headless); "
                              "use the synthetic scene or image files without it") from None
        self.capture = self._cv2.VideoCapture(str(path))
        if not self.capture.isOpened():
            raise SourceError(f"cannot open video {path}")
        self.path, self.fmt, self.width, self.height = path, fmt, width, height
        self.last_rgb = np.zeros((height, width, 3), np.uint8)

    def write(self, index: int, out: NDArray[np.uint8]) -> list[SceneObject] | None:
        ok, image = self.capture.read()
        if not ok:
            self.capture.set(self._cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = self.capture.read()
            if not ok:
                raise SourceError(f"cannot read frames from {self.path}")
        self.last_rgb = np.ascontiguousarray(self._cv2.resize(image, (self.width, self.height))[..., ::-1])
        np.copyto(out, encode_rgb(self.last_rgb, self.fmt))
        return None

    def rgb(self, index: int) -> NDArray[np.uint8]:
        return self.last_rgb

    def close(self) -> None:
        self.capture.release()
