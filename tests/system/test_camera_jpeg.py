"""The camera simulator's JPEG frames: rate, content, size and stamp, in process and from a real process."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import simplejpeg

from edgenode.core.pixels import RGB, YUYV
from edgenode.messages import CompressedImage, decode
from edgenode.tools.camera.cli import main
from edgenode.tools.camera.scene import SyntheticScene
from edgenode.tools.camera.simulator import CameraSettings, CameraSimulator, jpeg_message
from edgenode.tools.camera.sources import ImageSource, SceneSource
from tests.helpers.processes import Listener, camera_args, free_port, processes
from tests.helpers.timing import scaled


def wait_until(condition: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + scaled(seconds)
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_jpeg_rate_is_spread_over_the_frames() -> None:
    def due(**kwargs: object) -> list[int]:
        settings = CameraSettings(**kwargs)  # type: ignore[arg-type]
        return [index for index in range(30) if settings.jpeg_due(index)]

    assert due(fps=30, jpeg_fps=10) == list(range(0, 30, 3))
    assert len(due(fps=30, jpeg_fps=7)) == 7
    assert due(fps=15, jpeg_fps=30) == list(range(30))
    assert due(jpeg_fps=0) == [] and due(jpeg_topic="") == []


@pytest.mark.parametrize("source_kind", ["scene", "images"])
def test_jpeg_is_the_frame_at_full_size(source_kind: str, tmp_path: Path) -> None:
    width, height = 320, 240
    scene = SyntheticScene(width, height, seed=2)
    if source_kind == "scene":
        source: SceneSource | ImageSource = SceneSource(scene, YUYV)
        expected = scene.render(7)
    else:
        path = tmp_path / "still.npy"
        np.save(path, scene.render(0))
        source = ImageSource([path], RGB, width, height)
        expected = scene.render(0)
    payload = jpeg_message(source.rgb(7), 1_800_000_000_123_456_789, "camera", 90)
    image = decode(CompressedImage, payload)
    assert image.format == "jpeg" and image.header.frame_id == "camera"
    assert image.header.stamp.to_nanos() == 1_800_000_000_123_456_789
    assert image.data[:2] == b"\xff\xd8" and image.data[-2:] == b"\xff\xd9"
    pixels = simplejpeg.decode_jpeg(image.data)
    assert pixels.shape == (height, width, 3)
    assert np.abs(pixels.astype(int) - expected.astype(int)).mean() < 4


def test_simulator_publishes_jpeg_frames_with_their_frame_stamps() -> None:
    frames: list[bytes] = []
    jpegs: list[bytes] = []
    settings = CameraSettings(format=YUYV, width=64, height=48, fps=30, jpeg_fps=10)
    simulator = CameraSimulator(settings, SceneSource(SyntheticScene(64, 48), YUYV), frames.append,
                                publish_jpeg=jpegs.append)
    try:
        expected = 0
        for index in range(7):
            simulator.step(index, 1_000_000 + index)
            if settings.jpeg_due(index):  # wait for each, so none replaces another
                expected += 1
                wait_until(lambda n=expected: len(jpegs) == n, 10, "a JPEG")
    finally:
        simulator.close()
    assert len(frames) == 7
    assert [decode(CompressedImage, j).header.stamp.to_nanos() for j in jpegs] == [1_000_000, 1_000_003, 1_000_006]


def test_a_slow_encoder_keeps_only_the_newest_frame() -> None:
    release, started, published = [False], [], []

    def slow(payload: bytes) -> None:
        started.append(payload)
        wait_until(lambda: release[0], 10, "release")
        published.append(payload)

    settings = CameraSettings(format=RGB, width=32, height=32, fps=10, jpeg_fps=10)
    simulator = CameraSimulator(settings, SceneSource(SyntheticScene(32, 32), RGB), lambda _: None, publish_jpeg=slow)
    try:
        simulator.step(0, 1)
        wait_until(lambda: started, 10, "the first JPEG")  # the encoder is busy with frame 0 from now on
        for index in range(1, 6):
            simulator.step(index, index + 1)
        release[0] = True
        wait_until(lambda: len(published) == 2, 10, "two JPEGs")
        assert simulator.jpeg is not None and simulator.jpeg.dropped == 4 and simulator.jpeg.done == 2
        assert [decode(CompressedImage, p).header.stamp.to_nanos() for p in published] == [1, 6]
    finally:
        simulator.close()


@pytest.mark.parametrize(("argv", "message"), [
    (["--jpeg-fps", "-1"], "--jpeg-fps"),
    (["--jpeg-quality", "0"], "--jpeg-quality"),
    (["--jpeg-quality", "101"], "--jpeg-quality"),
])
def test_cli_rejects_bad_jpeg_values(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_a_running_simulator_publishes_jpeg_as_the_edgefirst_camera_does(tmp_path: Path) -> None:
    port = free_port()
    with processes(tmp_path) as start:
        start("camera", *camera_args(port, "--size", "320x180", "--fps", "20", "--jpeg-fps", "5"))
        listener = Listener(["rt/camera/jpeg", "rt/camera/info"], [port])
        try:
            listener.wait_for(lambda: listener.count("rt/camera/jpeg") >= 3 and listener.count("rt/camera/info") >= 1,
                              scaled(20), "JPEG frames")
            jpegs, infos = listener.received("rt/camera/jpeg"), listener.received("rt/camera/info")
        finally:
            listener.close()
    payload, encoding = jpegs[-1]
    assert encoding == "application/cdr;sensor_msgs/msg/CompressedImage"
    reference = pytest.importorskip("edgefirst.schemas.sensor_msgs")
    image = reference.CompressedImage.from_cdr(payload)
    assert image.format == "jpeg" and bytes(image.data)[:2] == b"\xff\xd8"
    assert simplejpeg.decode_jpeg_header(bytes(image.data))[:2] == (180, 320)
    info = reference.CameraInfo.from_cdr(infos[-1][0])
    assert (info.width, info.height) == (320, 180)
