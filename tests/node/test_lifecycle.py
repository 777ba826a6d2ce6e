"""The node's life in one process, on an in-memory bus: the heartbeat while the model loads, then frames
through every stage, the stats line, a clean stop; no Zenoh, no TFLite (a fake model), real frame buffers."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

import edgenode.messages as m
from edgenode.adapters.systemd import SystemdNotifier
from edgenode.config import LogSettings, ModelSettings, NodeConfig, PreprocessSettings, VisualSettings
from edgenode.core.outbound import LOADING_MODEL_NAME
from edgenode.node.lifecycle import Node
from tests.helpers.bus import MemoryBus
from tests.helpers.fake_model import detections, fake_model
from tests.helpers.frame_producer import Producer
from tests.helpers.memory_node import CAMERA, MemoryParts, feed, until

DETECT, INFO = "rt/model/boxes2d", "rt/model/info"
CAMERA_INFO, VISUAL = "rt/camera/info", "rt/model/visualization"
def huge_info() -> m.CameraInfo:
    """A valid CameraInfo of 80 KB: its distortion vector holds 10,000 doubles."""
    return m.CameraInfo(m.Header(m.Time(1, 0), "camera"), height=1080, width=1920, d=[0.0] * 10_000)


def model_names(bus: MemoryBus) -> list[str]:
    return [m.decode(m.ModelInfo, payload).model_name for payload in bus.sent(INFO)]


def test_heartbeat_while_loading_then_frames_through_every_stage_and_a_clean_stop(camera: Producer) -> None:
    bus, release = MemoryBus(), threading.Event()
    config = NodeConfig(ModelSettings(Path("fake.tflite"), engine="cpu"), preprocess=PreprocessSettings(backend="cpu"),
                        log=LogSettings(stats_interval=0.05))
    model = fake_model(detections([[0.1, 0.2, 0.3, 0.4]], [0.9], [0]))
    node = Node(MemoryParts(config, bus, model, release), SystemdNotifier({}))

    async def scenario() -> tuple[int, list[str]]:
        running = asyncio.create_task(node.run())
        await until(lambda: bus.subscribed(CAMERA), "the camera subscription")
        camera_task = asyncio.create_task(feed(bus, camera))
        try:
            await until(lambda: len(bus.sent(INFO)) >= 3, "three heartbeats")
            loading = model_names(bus)
            release.set()
            await until(lambda: model_names(bus).count("fake-model") >= 10, "ten frames of the model")
            await until(lambda: node.running is not None and node.running.counters()["received"] > 0, "stats")
        finally:
            node.stop.set()
            camera_task.cancel()
        return await running, loading

    with capture_logs() as logs:
        code, loading = asyncio.run(scenario())
    assert code == 0 and bus.closed
    assert set(loading) == {LOADING_MODEL_NAME}
    names = model_names(bus)
    first = names.index("fake-model")
    assert set(names[first:]) == {"fake-model"}  # no heartbeat once the model runs
    detects = [m.decode(m.Detect, payload) for payload in bus.sent(DETECT)]
    assert all(d.boxes == [] for d in detects[:first]) and all(len(d.boxes) == 1 for d in detects[first:])
    events = [log["event"] for log in logs]
    assert events[:2] == ["loading model fake.tflite", "running fake-model"]
    assert events[-1] == "stopped" and "first frame decoded: 1 boxes" in events
    stats = [log for log in logs if log["event"] == "stats"]
    assert stats and {"fps", "received", "dropped", "skipped", "prepare_failed", "invoke_failed", "post_failed",
                      "sent_detect", "sent_info"} <= set(stats[-1])
    assert node.running is not None and node.running.pipeline.counters.posted >= 10


def test_stopped_while_loading_returns_0_without_running() -> None:
    bus, release = MemoryBus(), threading.Event()
    config = NodeConfig(ModelSettings(Path("fake.tflite"), engine="cpu"))
    node = Node(MemoryParts(config, bus, fake_model(detections([], [], [])), release), SystemdNotifier({}))

    async def scenario() -> int:
        running = asyncio.create_task(node.run())
        await until(lambda: bus.subscribed(CAMERA), "the camera subscription")
        node.stop.set()
        return await running

    with capture_logs() as logs:
        code = asyncio.run(scenario())
    release.set()  # the loading thread ends
    assert code == 0 and bus.closed and node.running is None
    events: list[Any] = [log["event"] for log in logs]
    assert "stopped while the model was loading" in events and events[-1] == "stopped"


def test_camera_info_is_bounded_like_the_frames(camera: Producer) -> None:
    """A CameraInfo over the camera topics' size limit is skipped, never decoded; a normal one sets the size."""
    bus, release = MemoryBus(), threading.Event()
    release.set()
    config = NodeConfig(ModelSettings(Path("fake.tflite"), engine="cpu"), preprocess=PreprocessSettings(backend="cpu"),
                        visual=VisualSettings(enabled=True))
    node = Node(MemoryParts(config, bus, fake_model(detections([], [], [])), release), SystemdNotifier({}))

    def annotated_widths() -> list[float]:  # the status text sits at 2.5 % of the width
        return [round(m.decode(m.ImageAnnotations, payload).texts[0].position.x / 0.025)
                for payload in bus.sent(VISUAL)]

    async def scenario() -> tuple[list[float], list[float]]:
        running = asyncio.create_task(node.run())
        await until(lambda: bus.subscribed(CAMERA_INFO), "the camera info subscription")
        huge = m.encode(huge_info())
        assert len(huge) > 64 * 1024
        bus.deliver(CAMERA_INFO, huge)
        camera_task = asyncio.create_task(feed(bus, camera))
        try:
            await until(lambda: len(bus.sent(VISUAL)) >= 10, "ten annotated frames")
            before = annotated_widths()
            bus.deliver(CAMERA_INFO, m.encode(m.CameraInfo(height=720, width=1280)))
            await until(lambda: annotated_widths()[-1] == 1280, "annotations in the CameraInfo's size")
        finally:
            node.stop.set()
            camera_task.cancel()
        assert await running == 0
        return before, annotated_widths()

    with capture_logs() as logs:
        before, after = asyncio.run(scenario())
    assert set(before) == {64}  # the frames' own size: the oversize CameraInfo was not used
    assert after[-1] == 1280
    skips = [log for log in logs if log["event"].startswith("skipping CameraInfo")]
    assert [(log["event"], log["reason"]) for log in skips] == [
        (f"skipping CameraInfo on {CAMERA_INFO}: a {len(m.encode(huge_info()))}-byte message is not a CameraInfo "
         "(at most 65536 bytes)", "oversize")]
