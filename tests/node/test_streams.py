"""Several cameras through one model, in one process on an in-memory bus: each stream's frames come back on its
own topics with its own boxes and tracks; a silent or misbehaving camera costs the others nothing; a model of
batch 2 serves two streams an invoke. No TFLite: a runtime whose output is each input slice's mean."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from structlog.testing import capture_logs

import edgenode.messages as m
from edgenode.adapters.systemd import SystemdNotifier
from edgenode.config import (
    LogSettings,
    ModelSettings,
    NodeConfig,
    PreprocessSettings,
    TrackSettings,
    VisualSettings,
    parse_camera,
)
from edgenode.core.detections import Detections
from edgenode.core.model_description import ModelDescription
from edgenode.core.pixels import fourcc_code
from edgenode.core.tensors import TensorSpec
from edgenode.node.lifecycle import Node
from edgenode.node.model_loading import LoadedModel
from tests.helpers.bus import MemoryBus
from tests.helpers.frame_producer import Producer
from tests.helpers.memory_node import DMA_BUFFER, MemoryParts, until

SHADES = (0, 60, 120, 180)


class MeanRuntime:
    """A TFLiteRuntime's interface for a model of ``batch`` frames: output row k is input slice k's mean."""

    runtime = "fake"
    delegate = None
    threads = 1

    def __init__(self, batch: int = 1) -> None:
        self.inputs = [TensorSpec("images", (batch, 32, 32, 3), np.dtype(np.uint8))]
        self.outputs = [TensorSpec("means", (batch, 1), np.dtype(np.float32), index=1)]
        self.tensor = np.zeros(self.inputs[0].shape, np.uint8)
        self._output = np.zeros((batch, 1), np.float32)
        self.invokes = 0

    def input_view(self, index: int = 0) -> np.ndarray:
        return self.tensor

    def set_input(self, values: np.ndarray, index: int = 0) -> None:
        np.copyto(self.tensor, values, casting="unsafe")

    def invoke(self) -> None:
        self.invokes += 1
        self._output[:, 0] = self.tensor.reshape(len(self.tensor), -1).mean(axis=1)

    def output_views(self) -> list[np.ndarray]:
        return [self._output]


class MeanDecoder:
    """One box per frame, its left edge at the frame's mean brightness / 512 (so each scene has its own box)."""

    layout: Any = None
    params: Any = None

    def decode(self, outputs: Sequence[np.ndarray]) -> Detections:
        assert outputs[0].shape == (1, 1), "a slice of one frame"
        left = float(outputs[0][0, 0]) / 512
        return Detections(np.array([[left, 0.2, left + 0.2, 0.5]], np.float32), np.array([0.9], np.float32),
                          np.array([0], np.int32))


def mean_model(batch: int = 1) -> LoadedModel:
    runtime = MeanRuntime(batch)
    description = ModelDescription("mean-model", "TFLite", "Detection", tuple(runtime.inputs),
                                   tuple(runtime.outputs), ("thing",))
    return LoadedModel(runtime, MeanDecoder(), description)  # type: ignore[arg-type]


@pytest.fixture
def cameras() -> Iterator[list[Producer]]:
    producers = [Producer(count=3, shade=shade) for shade in SHADES]
    yield producers
    for producer in producers:
        producer.stop()


def frame_message(camera: Producer, index: int, name: str) -> bytes:
    pid, fd, size = camera.frames[index % len(camera.frames)]
    stamp = m.Time.from_nanos(time.time_ns())
    return m.encode(m.DmaBuffer(m.Header(stamp, name), pid, fd, 64, 48, 128, fourcc_code("YUYV"), size))


async def feed(bus: MemoryBus, camera: Producer, name: str, period: float = 0.01) -> None:
    """Camera ``name``: a DmaBuffer on rt/<name>/dma every ``period`` s, its header's frame_id the name."""
    for index in range(1_000_000):
        bus.deliver(f"rt/{name}/dma", frame_message(camera, index, name), DMA_BUFFER)
        await asyncio.sleep(period)


def node_with(bus: MemoryBus, names: Sequence[str], model: LoadedModel, **settings: Any) -> Node:
    config = NodeConfig(ModelSettings(Path("mean.tflite"), engine="cpu", **settings),
                        preprocess=PreprocessSettings(backend="cpu"), track=TrackSettings(enabled=True),
                        log=LogSettings(stats_interval=0.1),
                        cameras=tuple(parse_camera(f"rt/{name}/dma") for name in names))
    release = threading.Event()
    release.set()
    return Node(MemoryParts(config, bus, model, release), SystemdNotifier({}))


def detects(bus: MemoryBus, name: str) -> list[m.Detect]:
    return [m.decode(m.Detect, payload) for payload in bus.sent(f"rt/model/{name}/boxes2d")]


def run_streams(bus: MemoryBus, node: Node, feeds: dict[str, Producer | None], enough: int, *,
                extra: Any = None, done: Any = None) -> list[dict[str, Any]]:
    """Run ``node`` with a camera per stream of ``feeds`` (None: a silent one) until each fed stream has
    ``enough`` Detects with boxes (and ``done()`` holds); ``extra(bus)``, a coroutine, runs beside. The log
    lines."""
    fed = [name for name, camera in feeds.items() if camera is not None]

    async def scenario() -> int:
        running = asyncio.create_task(node.run())
        await until(lambda: all(bus.subscribed(f"rt/{name}/dma") for name in feeds), "the camera subscriptions")
        tasks = [asyncio.create_task(feed(bus, camera, name)) for name, camera in feeds.items() if camera is not None]
        if extra is not None:
            tasks.append(asyncio.create_task(extra(bus)))
        try:
            await until(lambda: all(sum(1 for d in detects(bus, name) if d.boxes) >= enough for name in fed),
                        f"{enough} frames with boxes on each of {', '.join(fed)}", seconds=30)
            await until(lambda: node.running is not None and node.running.totals_line, "a stats line")
            if done is not None:
                await until(done, "the test's condition")
        finally:
            node.stop.set()
            for task in tasks:
                task.cancel()
        return await running

    with capture_logs() as logs:
        assert asyncio.run(scenario()) == 0
    return logs


@pytest.mark.parametrize("count", [2, 4])
def test_each_stream_gets_its_own_boxes_and_tracks_on_its_own_topics(cameras: list[Producer], count: int) -> None:
    names = [f"cam{index}" for index in range(count)]
    bus = MemoryBus()
    node = node_with(bus, names, mean_model())
    logs = run_streams(bus, node, dict(zip(names, cameras, strict=False)), enough=10)
    lefts, tracks = {}, {}
    for name in names:
        frames = [d for d in detects(bus, name) if d.boxes]
        assert {d.header.frame_id for d in detects(bus, name)} == {name}  # only this camera's frames
        lefts[name] = {round(d.boxes[0].center_x - d.boxes[0].width / 2, 4) for d in frames}
        tracks[name] = {box.track.id for d in frames for box in d.boxes}
        assert len(lefts[name]) == 1 and len(tracks[name]) == 1, (name, lefts[name], tracks[name])
        info = m.decode(m.ModelInfo, bus.sent(f"rt/model/{name}/info")[-1])
        assert info.model_name == "mean-model"
    assert len(set().union(*lefts.values())) == count  # every scene its own box
    assert len(set().union(*tracks.values())) == count  # every stream its own tracker
    assert not bus.sent("rt/model/boxes2d") and not bus.sent("rt/model/info")  # no single-camera topics
    stats = [log for log in logs if log["event"] == "stats"]
    assert {log["stream"] for log in stats} == set(names)
    assert all(log["received"] > 0 for log in stats if log["stream"] == names[0])


def test_a_silent_camera_and_one_sending_bad_frames_cost_the_others_nothing(cameras: list[Producer]) -> None:
    """cam0 and cam1 are fine, cam2 never sends, cam3 sends garbage and frames of a process that does not exist:
    cam0 and cam1 are served; cam3's skips are counted on cam3 alone; the status names the silent stream."""
    bus = MemoryBus()
    names = ["cam0", "cam1", "cam2", "cam3"]
    node = node_with(bus, names, mean_model())
    seen: dict[str, Any] = {}

    async def misbehave(bus: MemoryBus) -> None:
        dead = m.encode(m.DmaBuffer(m.Header(m.Time(1, 0), "cam3"), 2**22 - 1, 5, 64, 48, 128, fourcc_code("YUYV"),
                                    6144))
        for index in range(1_000_000):
            bus.deliver("rt/cam3/dma", b"not a frame" if index % 2 else dead, DMA_BUFFER)
            await asyncio.sleep(0.01)

    def counted() -> bool:
        seen["status"] = status = bus.status()
        return status is not None and status["state"] == "no_camera_frames" and status["cameras"][3]["skipped"]

    run_streams(bus, node, {"cam0": cameras[0], "cam1": cameras[1], "cam2": None}, enough=20, extra=misbehave,
                done=counted)
    assert not [d for d in detects(bus, "cam2") if d.boxes] and not [d for d in detects(bus, "cam3") if d.boxes]
    running = node.running
    assert running is not None
    by_name = {run.name: index for index, run in enumerate(running.runs)}
    for fine in ("cam0", "cam1", "cam2"):
        assert running.stream_counters(by_name[fine])["skipped"] == {}
    bad = running.stream_counters(by_name["cam3"])["skipped"]
    assert bad.get("decode", 0) > 0 and sum(bad.values()) - bad["decode"] > 0, bad
    assert running.counters()["skipped"] == bad
    status = seen["status"]
    assert [camera["stream"] for camera in status["cameras"]] == names
    assert status["cameras"][3]["skipped"] and not status["cameras"][0]["skipped"]
    assert status["cameras"][2]["last_frame_age_s"] is None and "rt/cam2/dma" in status["state_detail"]


def test_a_model_of_batch_two_serves_two_streams_an_invoke(cameras: list[Producer]) -> None:
    names = ["cam0", "cam1", "cam2", "cam3"]
    bus = MemoryBus()
    model = mean_model(batch=2)
    node = node_with(bus, names, model)
    run_streams(bus, node, dict(zip(names, cameras, strict=True)), enough=10)
    lefts = {}
    for name in names:
        frames = [d for d in detects(bus, name) if d.boxes]
        assert {d.header.frame_id for d in frames} == {name}
        lefts[name] = {round(d.boxes[0].center_x - d.boxes[0].width / 2, 4) for d in frames}
        assert len(lefts[name]) == 1, (name, lefts[name])
    assert len(set().union(*lefts.values())) == 4
    running = node.running
    assert running is not None and running.batch == 2
    runtime = model.runtime
    assert isinstance(runtime, MeanRuntime)
    served = sum(1 for name in names for d in detects(bus, name) if d.boxes)
    assert served > 1.5 * runtime.invokes  # mostly two frames an invoke (the first may find one waiting)


def test_batch_one_keeps_a_batched_model_to_one_frame_an_invoke(cameras: list[Producer]) -> None:
    names = ["cam0", "cam1"]
    bus = MemoryBus()
    model = mean_model(batch=2)
    node = node_with(bus, names, model, batch=1)
    run_streams(bus, node, dict(zip(names, cameras, strict=False)), enough=5)
    runtime = model.runtime
    assert isinstance(runtime, MeanRuntime)
    assert sum(1 for name in names for d in detects(bus, name) if d.boxes) == runtime.invokes


def test_each_stream_is_annotated_in_its_own_cameras_size(cameras: list[Producer]) -> None:
    """With --visualization each stream follows its own CameraInfo (rt/<name>/info, derived from its frame topic)."""
    names = ["cam0", "cam1"]
    bus = MemoryBus()
    config = NodeConfig(ModelSettings(Path("mean.tflite"), engine="cpu"), preprocess=PreprocessSettings(backend="cpu"),
                        visual=VisualSettings(enabled=True),
                        cameras=tuple(parse_camera(f"rt/{name}/dma") for name in names))
    release = threading.Event()
    release.set()
    node = Node(MemoryParts(config, bus, mean_model(), release), SystemdNotifier({}))

    def widths(name: str) -> list[int]:  # the status text sits at 2.5 % of the width
        return [round(m.decode(m.ImageAnnotations, payload).texts[0].position.x / 0.025)
                for payload in bus.sent(f"rt/model/{name}/visualization")]

    async def give_info(bus: MemoryBus) -> None:
        await until(lambda: bus.subscribed("rt/cam0/info") and bus.subscribed("rt/cam1/info"), "the info topics")
        bus.deliver("rt/cam0/info", m.encode(m.CameraInfo(height=720, width=1280)))

    run_streams(bus, node, dict(zip(names, cameras, strict=False)), enough=1, extra=give_info,
                done=lambda: widths("cam0") and widths("cam0")[-1] == 1280 and len(widths("cam1")) > 5)
    assert set(widths("cam1")) == {64}  # no CameraInfo of its own: its frames' size
