"""Camera simulator: scene, sources, ring, messages, CLI, and frames exchanged with a second process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edgenode.adapters.camera import CameraFrames
from edgenode.adapters.dmabuf import DmaBufImporter
from edgenode.adapters.zenoh_bus import ZenohBus
from edgenode.config import ZenohSettings
from edgenode.core.ingest import decode_frame
from edgenode.core.pixels import FORMATS, GREY, NV12, RGB, YUYV, PixelFormat
from edgenode.core.preprocess import CpuPreprocessor
from edgenode.core.tensors import TensorSpec
from edgenode.tools.camera.cli import main
from edgenode.tools.camera.scene import SyntheticScene
from edgenode.tools.camera.simulator import CameraSettings, CameraSimulator
from edgenode.tools.camera.sources import ImageSource, SceneSource, SourceError, VideoSource, read_image
from tests.helpers.processes import free_port
from tests.helpers.timing import scaled

REPO = Path(__file__).resolve().parents[2]


def rgb_of(data: np.ndarray, layout: object, width: int, height: int) -> np.ndarray:
    """Decode frame bytes back to RGB at full size with the CPU path (exact sampling)."""
    pre = CpuPreprocessor(TensorSpec("x", (1, height, width, 3), np.dtype(np.uint8)))
    pre.convert_array(data, layout)  # type: ignore[arg-type]
    return pre.tensor[0].astype(int)


def test_scene_is_deterministic_moves_and_crosses() -> None:
    first, second = SyntheticScene(640, 480, seed=3), SyntheticScene(640, 480, seed=3)
    assert first.objects(17) == second.objects(17)
    assert first.objects(0) != first.objects(30)
    assert SyntheticScene(640, 480, seed=4).objects(0) != first.objects(0)

    def overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
        return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]

    crossings = sum(overlap(p.box, q.box) for i in range(0, 600, 5)
                    for n, p in enumerate(first.objects(i)) for q in first.objects(i)[n + 1:])
    assert crossings > 0
    for item in first.objects(123):
        x1, y1, x2, y2 = item.box
        assert 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 480 and x1 % 2 == 0 and y2 % 2 == 0
    with pytest.raises(ValueError, match="object count"):
        SyntheticScene(640, 480, count=0)


@pytest.mark.parametrize("fmt", FORMATS, ids=[f.name for f in FORMATS])
def test_scene_drawn_in_every_format_matches_the_rgb_render(fmt: PixelFormat) -> None:
    scene = SyntheticScene(160, 96, seed=1)
    settings = CameraSettings(format=fmt, width=160, height=96)
    layout = settings.layout()
    out = np.zeros((layout.end // layout.stride, layout.stride), np.uint8)
    objects = SceneSource(scene, fmt).write(9, out)
    assert objects == scene.objects(9)
    got = rgb_of(out.reshape(-1), layout, 160, 96)
    expected = scene.render(9).astype(int)
    if fmt is GREY:
        expected = np.repeat(np.rint(expected @ [0.2126, 0.7152, 0.0722])[..., None], 3, axis=2).astype(int)
    error = np.abs(got - expected)
    # Chroma is interpolated between chroma samples (centred siting), so colour edges blur by a pixel.
    assert error.mean() < 1.5 and np.median(error) <= 1
    for item in objects:  # inside each rectangle the colour is exact to YUV rounding
        x1, y1, x2, y2 = item.box
        if fmt is not GREY:
            inside = np.abs(got[y1 + 2:y2 - 2, x1 + 2:x2 - 2] - np.array(item.colour))
            assert inside.max() <= 3


def test_image_sources(tmp_path: Path) -> None:
    image = np.zeros((30, 40, 3), np.uint8)
    image[..., 0] = 200
    ppm = tmp_path / "a.ppm"
    ppm.write_bytes(b"P6\n# comment\n40 30\n255\n" + image.tobytes())
    npy = tmp_path / "b.npy"
    np.save(npy, np.full((10, 10), 77, np.uint8))
    np.testing.assert_array_equal(read_image(ppm), image)
    source = ImageSource([ppm, npy], RGB, 64, 48, hold=2)
    out = np.zeros((48, 64 * 3), np.uint8)
    source.write(1, out)
    assert (out.reshape(48, 64, 3) == [200, 0, 0]).all()
    source.write(2, out)
    assert (out == 77).all()
    with pytest.raises(SourceError, match="cannot read"):
        read_image(tmp_path / "missing.ppm")
    broken = tmp_path / "c.pgm"
    broken.write_bytes(b"P2\n1 1\n255\n0")
    with pytest.raises(SourceError, match="binary 8-bit"):
        read_image(broken)
    with pytest.raises(SourceError, match="no image"):
        ImageSource([], RGB, 64, 48)


def test_video_needs_opencv_or_says_so(tmp_path: Path) -> None:
    try:
        import cv2  # noqa: F401
    except ImportError:
        with pytest.raises(SourceError, match="needs OpenCV"):
            VideoSource(tmp_path / "v.mp4", YUYV, 64, 48)
    else:
        with pytest.raises(SourceError, match="cannot open video"):
            VideoSource(tmp_path / "v.mp4", YUYV, 64, 48)


@pytest.mark.parametrize("camera_frame", [False, True], ids=["DmaBuffer", "CameraFrame"])
@pytest.mark.parametrize("fmt", [YUYV, NV12], ids=["YUYV", "NV12"])
def test_published_messages_import_back(camera_frame: bool, fmt: PixelFormat) -> None:
    sent: list[bytes] = []
    settings = CameraSettings(format=fmt, width=64, height=48, ring=3, camera_frame=camera_frame)
    simulator = CameraSimulator(settings, SceneSource(SyntheticScene(64, 48), fmt), sent.append)
    try:
        importer = DmaBufImporter()
        fds = []
        for index in range(5):
            simulator.step(index, 1_000 + index)
            ref = decode_frame(sent[-1])
            assert ref.pid == os.getpid() and ref.layout == simulator.layout and ref.stamp_ns == 1_000 + index
            assert ref.seq == (index if camera_frame else None)
            fds.append(ref.fd)
            with importer.open(ref) as frame:
                np.testing.assert_array_equal(frame.data, simulator.ring.slot(index).data)
        assert fds[:2] == fds[3:5] and len(set(fds[:3])) == 3  # a buffer is reused only after the ring wraps
    finally:
        simulator.close()


@pytest.mark.parametrize(("fps", "stop_early"), [(50.0, False), (50.0, True), (2.0, True)],
                         ids=["frames-done", "stopped", "slow-and-stopped"])
def test_the_ring_outlives_the_last_frame_by_a_rings_worth_of_periods(fps: float, stop_early: bool) -> None:
    """A reader may still be taking the last frame's buffer after it is published (closed_fd on the last frame)."""
    published: list[float] = []
    settings = CameraSettings(width=64, height=48, fps=fps, frames=0 if stop_early else 3, ring=4)
    simulator = CameraSimulator(settings, SceneSource(SyntheticScene(64, 48), YUYV),
                                lambda payload: published.append(time.monotonic()))
    closed: list[float] = []
    close_ring = simulator.ring.close

    def record_close() -> None:
        closed.append(time.monotonic())
        close_ring()

    simulator.ring.close = record_close  # type: ignore[method-assign]
    simulator.run(lambda: len(published) >= 3)
    simulator.close()
    assert len(published) == 3 and len(closed) == 1
    linger = min(max(4 / fps, CameraSimulator.MIN_LINGER_SECONDS), CameraSimulator.MAX_LINGER_SECONDS)
    assert closed[0] - published[-1] >= linger
    assert CameraSimulator.MAX_LINGER_SECONDS <= 2.0  # a stop stays prompt at any frame rate


@pytest.mark.parametrize(("argv", "message"), [
    (["--size", "big"], "expected WIDTHxHEIGHT"),
    (["--size", "8x8"], "between 16 and 16384"),
    (["--fourcc", "MJPG"], "unsupported pixel format"),
    (["--fps", "0"], "--fps"),
    (["--ring", "1"], "--ring"),
    (["--fourcc", "NV12", "--size", "65x48"], "even width"),
    (["--images", "x.ppm", "--video", "y.mp4"], "not both"),
    (["--images", "/nonexistent.ppm"], "cannot read"),
    (["--objects", "99"], "object count"),
    (["--mode", "satellite"], "invalid choice"),
])
def test_cli_rejects_bad_values(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def exchange(tmp_path: Path, wanted: int, fps: int, extra: list[str]) -> tuple[list[int], CameraFrames]:
    """Run the simulator in a child process and preprocess what arrives until ``wanted`` frames are done, then
    stop it (SIGTERM): however slow this machine, the reader sees as many frames as the test needs.

    Returns this process's open-fd count every 50 frames while they flow (the first sample is
    taken once everything is warmed up) and the frame source.
    """
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    truth = tmp_path / "truth.jsonl"
    camera = subprocess.Popen([sys.executable, "-m", "edgenode.tools.camera", "--size", "64x48", "--fps", str(fps),
                               "--listen", endpoint, "--no-multicast-scouting", "--ground-truth", str(truth),
                               "--log-level", "warning", *extra],
                              cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    async def read() -> tuple[list[int], CameraFrames]:
        bus = ZenohBus.open(ZenohSettings(connect=(endpoint,), multicast_scouting=False))
        try:
            source = CameraFrames.subscribe(bus, "rt/camera/dma", asyncio.get_running_loop(), gap_seconds=5)
            pre = CpuPreprocessor(TensorSpec("images", (1, 32, 32, 3), np.dtype(np.uint8)), "letterbox")
            processed, samples = 0, []
            while processed < wanted:
                got = await source.next_imported(timeout=scaled(60))
                assert got is not None, f"no frame for {scaled(60):g} s after {processed}"
                with got[1] as frame:
                    pre.run(frame)
                processed += 1
                if processed % 50 == 0:
                    samples.append(open_fds())
            return samples, source
        finally:
            bus.close()

    try:
        result = asyncio.run(read())
    finally:
        camera.send_signal(signal.SIGTERM)
        camera.wait(timeout=scaled(60))
        assert camera.stderr is not None
        errors = camera.stderr.read().decode()
        camera.stderr.close()
    assert camera.returncode == 0, errors
    seqs = [json.loads(line)["seq"] for line in truth.read_text().splitlines()]
    assert seqs == list(range(len(seqs))) and len(seqs) >= wanted  # every frame published is in its ground truth
    return result


@pytest.mark.slow
def test_two_processes_exchange_thousands_of_frames_with_flat_fds(tmp_path: Path) -> None:
    fds, source = exchange(tmp_path, 1000, 1000, [])
    assert max(fds) == fds[0], f"open fds grew while frames flowed: {fds}"
    stats = source.stats
    assert stats.skipped_total == 0 and stats.received >= 1000
    assert source.importer.late_unmaps == 0


def test_two_processes_camera_frame(tmp_path: Path) -> None:
    fds, source = exchange(tmp_path, 100, 200, ["--camera-frame", "--fourcc", "NV12"])
    assert max(fds) == fds[0]
    assert source.stats.skipped_total == 0


def test_pillow_images_when_installed(tmp_path: Path) -> None:
    image_module = pytest.importorskip("PIL.Image")
    path = tmp_path / "frame.png"
    image_module.fromarray(np.full((20, 30, 3), (10, 200, 30), np.uint8)).save(path)
    np.testing.assert_array_equal(read_image(path)[0, 0], [10, 200, 30])


def test_sigterm_stops_the_simulator_cleanly() -> None:
    camera = subprocess.Popen([sys.executable, "-m", "edgenode.tools.camera", "--size", "64x48", "--fps", "50",
                               "--listen", f"tcp/127.0.0.1:{free_port()}", "--no-multicast-scouting"],
                              cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    publishing = threading.Event()  # its first line once running: its SIGTERM handler is in place

    def read() -> None:
        assert camera.stderr is not None
        for line in camera.stderr:
            lines.append(line)
            if "publishing" in line:
                publishing.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert publishing.wait(scaled(60)), "".join(lines)
        camera.send_signal(signal.SIGTERM)
        assert camera.wait(scaled(10)) == 0, "".join(lines)
    finally:
        if camera.poll() is None:
            camera.kill()
            camera.wait()
    reader.join(scaled(10))
    assert any("stopped after" in line for line in lines), "".join(lines)
