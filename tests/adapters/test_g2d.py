"""G2D through a C double of libg2d.so.2 (both ABIs) that records every call and every g2d_surface field."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from structlog.testing import capture_logs

import edgenode.adapters.g2d as g2d_module
from edgenode.adapters.dma_heap import SharedBuffer
from edgenode.adapters.g2d import (
    G2D,
    G2DPreprocessor,
    G2DSurface,
    G2DSurfaceLegacy,
    G2DUnavailable,
    G2DVersion,
)
from edgenode.config import PreprocessSettings
from edgenode.core.pixels import GREY, NV12, RGB, YUYV, FrameLayout, describe_frame
from edgenode.core.preprocess import CpuPreprocessor, PreprocessError
from edgenode.core.tensors import TensorSpec
from edgenode.node.preprocessing import build_preprocessor
from tests.helpers.native import source

SOURCE = source("fake_g2d.c")
PHYS = 0x4000_0000  # the camera buffer's "physical address" (never dereferenced by the double)


class FakeLibrary:
    """The compiled double: its path and its recording."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.lib = ctypes.CDLL(self.path)
        self.lib.fake_log.restype = ctypes.c_char_p

    def log(self) -> list[str]:
        return (self.lib.fake_log() or b"").decode().splitlines()

    def reset(self) -> None:
        self.lib.fake_reset()
        self.lib.fake_fail_open(0)
        self.lib.fake_draw(1)


def compile_double(directory: Path, name: str, *flags: str) -> FakeLibrary:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the libg2d test double")
    output = directory / name
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-Wall", "-Werror", *flags, "-o", str(output), str(SOURCE)],
                   check=True, capture_output=True)
    return FakeLibrary(output)


@pytest.fixture(scope="module")
def libraries(tmp_path_factory: pytest.TempPathFactory) -> dict[str, FakeLibrary]:
    directory = tmp_path_factory.mktemp("g2d")
    return {"modern": compile_double(directory, "libg2d-modern.so.2"),
            "legacy": compile_double(directory, "libg2d-legacy.so.2", "-DLEGACY_PLANES")}


@pytest.fixture
def modern(libraries: dict[str, FakeLibrary]) -> Iterator[FakeLibrary]:
    libraries["modern"].reset()
    yield libraries["modern"]


@pytest.fixture
def legacy(libraries: dict[str, FakeLibrary]) -> Iterator[FakeLibrary]:
    libraries["legacy"].reset()
    yield libraries["legacy"]


class ArrayDestination:
    """A destination in ordinary memory whose 'physical address' is its virtual address (the double writes there)."""

    def __init__(self, size: int, address: int | None = None) -> None:
        self.data: NDArray[np.uint8] = np.zeros(size, np.uint8)
        self.address = address if address is not None else self.data.ctypes.data
        self.calls: list[str] = []

    def physical_address(self) -> int | None:
        return self.address

    def begin_read(self) -> None:
        self.calls.append("begin_read")

    def end_read(self) -> None:
        self.calls.append("end_read")

    def begin_write(self) -> None:
        self.calls.append("begin_write")

    def end_write(self) -> None:
        self.calls.append("end_write")

    def close(self) -> None:
        self.calls.append("close")


@dataclass
class Frame:
    layout: FrameLayout
    data: NDArray[np.uint8]
    phys: int | None = PHYS

    def physical_address(self) -> int | None:
        return self.phys


def yuyv_frame(width: int = 1920, height: int = 1080, stride: int = 0) -> Frame:
    layout = describe_frame(YUYV, width, height, stride, (stride or width * 2) * height)
    return Frame(layout, np.full(layout.end, 128, np.uint8))


def spec(dtype: type = np.uint8, scale: float = 0.0, zero_point: int = 0, size: int = 640) -> TensorSpec:
    return TensorSpec("images", (1, size, size, 3), np.dtype(dtype), scale, zero_point)


def pattern(width: int, height: int) -> NDArray[np.uint8]:
    """What the double draws: R = x, G = y, B = x + y (mod 256)."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x % 256, y % 256, (x + y) % 256], -1).astype(np.uint8)


def fields(line: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in line.split()[1:])


def test_struct_layouts_match_both_abis(libraries: dict[str, FakeLibrary]) -> None:
    assert ctypes.sizeof(G2DSurface) == libraries["modern"].lib.fake_surface_size() == 80
    assert ctypes.sizeof(G2DSurfaceLegacy) == libraries["legacy"].lib.fake_surface_size() == 60
    assert G2DSurface.planes.offset == 8 and G2DSurfaceLegacy.planes.offset == 4
    assert G2DSurface.rot.offset == 72 and G2DSurfaceLegacy.rot.offset == 56


def test_version_selects_the_layout(modern: FakeLibrary, legacy: FakeLibrary) -> None:
    new, old = G2D(modern.path), G2D(legacy.path)
    assert (new.version, new.surface_type) == (G2DVersion(6, 4, 11, 1049711), G2DSurface)
    assert (old.version, old.surface_type) == (G2DVersion(6, 4, 3, 398061), G2DSurfaceLegacy)
    new.close()
    old.close()
    assert G2DVersion.parse("$VERSION$6.4.10:2000000:x$").surface is G2DSurfaceLegacy  # type: ignore[union-attr]
    assert G2DVersion.parse("$VERSION$6.5.0:1:x$").surface is G2DSurface  # type: ignore[union-attr]
    assert G2DVersion.parse("no version here") is None


def test_open_sets_bt709_and_close_releases(modern: FakeLibrary) -> None:
    g2d = G2D(modern.path)
    g2d.close()
    g2d.close()
    assert modern.log() == ["open", "disable 5", "disable 7", "disable 8", "enable 6", "close"]


@pytest.mark.parametrize("resize", ["stretch", "letterbox"])
def test_yuyv_blit_every_field_and_the_copy(modern: FakeLibrary, resize: str) -> None:
    destination = ArrayDestination(640 * 640 * 4)
    pre = G2DPreprocessor(spec(), resize, library=modern.path, destination=destination)
    modern.reset()
    geometry = pre.run(yuyv_frame())
    log = modern.log()
    assert [line.split()[0] for line in log] == ["blit", "src", "dst", "finish"]
    src, dst = fields(log[1]), fields(log[2])
    assert src == {"format": "24", "planes": f"{PHYS},0,0", "rect": "0,0,1920,1080", "stride": "1920",
                   "size": "1920x1080", "blend": "0", "alpha": "0", "clear": "0", "rot": "0"}
    top, bottom = (0, 640) if resize == "stretch" else (140, 500)
    assert dst == {"format": "1", "planes": f"{destination.address},0,0", "rect": f"0,{top},640,{bottom}",
                   "stride": "640", "size": "640x640", "blend": "0", "alpha": "0", "clear": "0", "rot": "0"}
    assert (geometry.top, geometry.height) == (top, bottom - top)
    content = pre.tensor[0, top:bottom]
    np.testing.assert_array_equal(content, pattern(640, 640)[top:bottom])
    if resize == "letterbox":
        assert (pre.tensor[0, :140] == 114).all() and (pre.tensor[0, 500:] == 114).all()
        assert destination.calls[:2] == ["begin_write", "end_write"]
    assert destination.calls[-2:] == ["begin_read", "end_read"]
    pre.close()
    assert modern.log()[-1] == "close" and destination.calls[-1] == "close"


def test_nv12_uses_two_planes_and_byte_stride(modern: FakeLibrary) -> None:
    layout = describe_frame(NV12, 1280, 720, 1536, 1536 * 720 * 2, chroma_offset=1536 * 736)
    pre = G2DPreprocessor(spec(size=320), library=modern.path, destination=ArrayDestination(320 * 320 * 4))
    modern.reset()
    pre.run(Frame(layout, np.zeros(layout.end, np.uint8)))
    src = fields(modern.log()[1])
    assert src["format"] == "20" and src["planes"] == f"{PHYS},{PHYS + 1536 * 736},0"
    assert src["stride"] == "1536" and src["size"] == "1280x720"


@pytest.mark.parametrize(("dtype", "scale", "zero_point"), [(np.int8, 1 / 255, -128), (np.float32, 0.0, 0),
                                                            (np.uint8, 2 / 255, 3)])
def test_quantisation_of_the_g2d_output(modern: FakeLibrary, dtype: type, scale: float, zero_point: int) -> None:
    pre = G2DPreprocessor(spec(dtype, scale, zero_point, 64), library=modern.path,
                          destination=ArrayDestination(64 * 64 * 4))
    pre.run(yuyv_frame(128, 64))
    expected = pattern(64, 64).astype(np.float64)
    if dtype is np.int8:
        np.testing.assert_array_equal(pre.tensor[0], expected - 128)
    elif dtype is np.float32:
        np.testing.assert_allclose(pre.tensor[0], expected / 255, atol=1e-6)
    else:
        np.testing.assert_array_equal(pre.tensor[0], np.clip(np.rint(expected / 2) + 3, 0, 255))


def test_legacy_abi_receives_every_field(legacy: FakeLibrary) -> None:
    legacy.lib.fake_draw(0)  # 32-bit planes cannot hold a test pointer: check the fields only
    pre = G2DPreprocessor(spec(size=320), "letterbox", library=legacy.path,
                          destination=ArrayDestination(320 * 320 * 4, address=0x2000_0000))
    pre.run(yuyv_frame(1280, 720, stride=2688))
    log = legacy.log()
    assert log[:5] == ["open", "disable 5", "disable 7", "disable 8", "enable 6"]
    assert [line.split()[0] for line in log[5:]] == ["blit", "src", "dst", "finish"]
    assert fields(log[6]) == {"format": "24", "planes": f"{PHYS},0,0", "rect": "0,0,1280,720", "stride": "1344",
                              "size": "1280x720", "blend": "0", "alpha": "0", "clear": "0", "rot": "0"}
    assert fields(log[7]) == {"format": "1", "planes": f"{0x2000_0000},0,0", "rect": "0,70,320,250",
                              "stride": "320", "size": "320x320", "blend": "0", "alpha": "0", "clear": "0",
                              "rot": "0"}
    pre.close()


def test_frames_g2d_cannot_take_use_the_cpu_once_logged(modern: FakeLibrary) -> None:
    pre = G2DPreprocessor(spec(size=64), library=modern.path, destination=ArrayDestination(64 * 64 * 4))
    modern.reset()
    grey = describe_frame(GREY, 64, 48, 0, 64 * 48)
    rgb = describe_frame(RGB, 64, 48, 0, 64 * 48 * 3)
    with capture_logs() as logs:
        for _ in range(3):
            pre.run(Frame(grey, np.full(grey.end, 200, np.uint8)))
            pre.run(Frame(rgb, np.full(rgb.end, 100, np.uint8), phys=None))
    assert modern.log() == []  # nothing reached G2D
    assert [log["event"] for log in logs] == ["converting on the CPU: G2D has no GREY input",
                                              "converting on the CPU: camera buffer has no physical address "
                                              "(not a contiguous dma-buf)"]
    assert (pre.tensor == 100).all()
    pre.close()


def test_missing_library_or_device_falls_back_with_one_line(modern: FakeLibrary, tmp_path: Path) -> None:
    with pytest.raises(G2DUnavailable, match="cannot load"):
        G2D(str(tmp_path / "libg2d.so.2"))
    with capture_logs() as logs:
        chosen = build_preprocessor(PreprocessSettings(backend="auto"), spec(), library=str(tmp_path / "nope.so"))
    assert isinstance(chosen, CpuPreprocessor)
    assert len(logs) == 1 and "G2D unavailable" in logs[0]["event"] and "CPU" in logs[0]["event"]
    modern.lib.fake_fail_open(1)
    with pytest.raises(G2DUnavailable, match="g2d_open failed"):
        G2D(modern.path)
    with pytest.raises(PreprocessError, match="--preprocess g2d: g2d_open failed"):
        build_preprocessor(PreprocessSettings(backend="g2d"), spec(), library=modern.path)
    assert isinstance(build_preprocessor(PreprocessSettings(backend="cpu"), spec(), library=modern.path),
                      CpuPreprocessor)


def test_auto_without_contiguous_memory_falls_back(modern: FakeLibrary, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """G2D opens, but no dma heap can give its output buffer (an empty heap folder, on any machine): auto means
    the CPU, with one line saying why; g2d fails with that reason."""
    def no_heaps(size: int, heaps: tuple[str, ...], **options: object) -> SharedBuffer:
        return SharedBuffer(size, heaps, **{**options, "heap_dir": tmp_path})  # type: ignore[arg-type]

    monkeypatch.setattr(g2d_module, "SharedBuffer", no_heaps)
    with capture_logs() as logs:
        chosen = build_preprocessor(PreprocessSettings(backend="auto"), spec(), library=modern.path)
    assert isinstance(chosen, CpuPreprocessor)
    assert [log["event"] for log in logs] == [
        f"G2D unavailable (no contiguous dma-buf for G2D output: no dma heap of linux,cma, reserved under {tmp_path} "
        f"could allocate {640 * 640 * 4} bytes); preprocessing on the CPU"]
    calls = modern.log()
    assert calls[0] == "open" and calls[-1] == "close"  # the G2D handle opened for the attempt is closed
    chosen.close()
    with pytest.raises(PreprocessError, match="--preprocess g2d: no contiguous dma-buf for G2D output"):
        build_preprocessor(PreprocessSettings(backend="g2d"), spec(), library=modern.path)


@pytest.mark.device
def test_g2d_agrees_with_the_cpu_on_the_board() -> None:
    """On an i.MX8M Plus: a YUYV frame in a CMA dma-buf converts the same through G2D and numpy."""
    from edgenode.adapters.dma_heap import CONTIGUOUS_HEAPS, SharedBuffer
    from edgenode.core.colour import encode_rgb

    rgb = pattern(640, 480)
    frame_bytes = encode_rgb(rgb, YUYV).reshape(-1)
    source = SharedBuffer(len(frame_bytes), CONTIGUOUS_HEAPS, allow_memfd=False)
    source.begin_write()
    source.data[:] = frame_bytes
    source.end_write()
    layout = describe_frame(YUYV, 640, 480, 0, len(frame_bytes))
    g2d = G2DPreprocessor(spec(size=320), "letterbox")
    g2d.run(Frame(layout, source.data, source.physical_address()))
    cpu = CpuPreprocessor(spec(size=320), "letterbox")
    cpu.run(Frame(layout, source.data, None))
    assert np.abs(g2d.tensor.astype(int) - cpu.tensor.astype(int)).mean() < 2.0
    g2d.close()
    source.close()


def test_cpu_path_uses_a_second_thread_when_a_core_is_free() -> None:
    from edgenode.node.preprocessing import cpu_preprocessor

    frame = yuyv_frame(320, 240)
    frame.data[:] = np.random.default_rng(1).integers(16, 236, frame.data.size, dtype=np.uint8)
    threaded = cpu_preprocessor(spec(size=96), "stretch", cores=2)
    single = cpu_preprocessor(spec(size=96), "stretch", cores=1)
    assert (threaded.threads, single.threads) == (2, 1)
    threaded.run(frame)
    single.run(frame)
    np.testing.assert_array_equal(threaded.tensor, single.tensor)
    threaded.close()
    threaded.close()


def test_g2d_fills_caller_staging_arrays_including_padding(modern: FakeLibrary) -> None:
    pre = G2DPreprocessor(spec(size=64), "letterbox", library=modern.path, destination=ArrayDestination(64 * 64 * 4))
    staging = [np.full((1, 64, 64, 3), 9, np.uint8) for _ in range(2)]
    for array in staging:
        geometry = pre.run(yuyv_frame(128, 64), array)
        assert (geometry.top, geometry.height) == (16, 32)
        assert (array[0, :16] == 114).all() and (array[0, 48:] == 114).all()
        np.testing.assert_array_equal(array[0, 16:48], pattern(64, 64)[16:48])
    grey = describe_frame(GREY, 64, 48, 0, 64 * 48)
    pre.run(Frame(grey, np.full(grey.end, 50, np.uint8)), staging[0])  # CPU fallback writes the caller's array
    assert (staging[0][0, 8:56] == 50).all() and (staging[0][0, :8] == 114).all()
    pre.close()
