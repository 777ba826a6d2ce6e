"""The node's fleet status through its life on an in-memory bus: loading, running, a silent camera, stopping;
answered from the snapshot, never from the pipeline."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from edgenode.adapters.systemd import SystemdNotifier
from edgenode.config import LogSettings, ModelSettings, NodeConfig, PreprocessSettings
from edgenode.core.status import SCHEMA_VERSION
from edgenode.node.lifecycle import Node
from tests.helpers.bus import MemoryBus
from tests.helpers.fake_model import detections, fake_model
from tests.helpers.frame_producer import Producer
from tests.helpers.memory_node import CAMERA, MemoryParts, feed, until


def status(bus: MemoryBus) -> dict[str, Any]:
    document = bus.status()
    assert document is not None, "no status announced"
    return document


def test_status_follows_the_node_from_loading_to_stopping(camera: Producer) -> None:
    bus, release = MemoryBus(), threading.Event()
    config = NodeConfig(ModelSettings(Path("models/fake.tflite"), engine="cpu"),
                        preprocess=PreprocessSettings(backend="cpu"), log=LogSettings(stats_interval=0.2))
    node = Node(MemoryParts(config, bus, fake_model(detections([[0.1, 0.2, 0.3, 0.4]], [0.9], [0])), release),
                SystemdNotifier({}))
    seen: dict[str, dict[str, Any]] = {}

    async def scenario() -> int:
        running = asyncio.create_task(node.run())
        await until(lambda: bus.announcements, "the status announcement")
        seen["loading"] = status(bus)
        camera_task = asyncio.create_task(feed(bus, camera))
        try:
            await until(lambda: status(bus)["cameras"][0]["received"] >= 3, "frames counted while loading")
            release.set()
            await until(lambda: status(bus)["state"] == "running" and status(bus)["window"] is not None
                        and status(bus)["counters"]["frames_processed"] >= 5, "a running status with a window")
            seen["running"] = status(bus)
        finally:
            camera_task.cancel()
        await until(lambda: status(bus)["state"] == "no_camera_frames", "the silent camera noticed", 5)
        seen["silent"] = status(bus)
        node.stop.set()
        return await running

    with capture_logs():
        code = asyncio.run(scenario())
    assert code == 0 and bus.closed and bus.status() is None  # the announcement went with the bus

    loading = seen["loading"]
    assert loading["version"] == SCHEMA_VERSION and loading["kind"] == "node" and loading["state"] == "loading"
    assert loading["state_detail"] == "loading models/fake.tflite"
    assert loading["identity"]["zid"] == bus.zid and loading["identity"]["namespace"] == ""
    assert loading["model"]["file"] == "models/fake.tflite" and loading["model"]["name"] is None
    assert loading["cameras"] == [{"topic": CAMERA, "size": None, "last_frame_age_s": None, "fps": None,
                                   "received": 0, "dropped": 0, "skipped": {}}]
    assert loading["window"] is None and loading["last_error"] is None

    run = seen["running"]
    assert run["state_detail"] == "running fake-model"
    assert {key: run["model"][key] for key in ("name", "runtime", "delegate", "threads", "tracking")} == {
        "name": "fake-model", "runtime": "fake", "delegate": "cpu", "threads": 1, "tracking": False}
    assert run["model"]["schedule"] in ("overlap", "serial") and run["model"]["preprocess"]
    stream = run["cameras"][0]
    assert stream["size"] == [64, 48] and 0 <= stream["last_frame_age_s"] < 1.0
    counters = run["counters"]
    assert counters["frames_received"] >= counters["frames_processed"] >= 5
    assert counters["invoke_failures"] == counters["publish_errors"] == 0
    window = run["window"]
    assert window["fps"] > 0 and window["frames"] >= 1 and window["seconds"] > 0
    assert {"mean", "p99", "max"} == set(window["stages_ms"]["invoke"]) and window["latency_ms"]["p99"] >= 0
    assert run["uptime_s"] >= loading["uptime_s"]

    assert seen["silent"]["state_detail"].startswith(f"no camera frames on {CAMERA} for ")
    assert json.loads(node.status.payload)["state"] == "stopping"


def test_a_query_gets_the_snapshot_bytes_without_work(camera: Producer) -> None:
    bus, release = MemoryBus(), threading.Event()
    release.set()
    config = NodeConfig(ModelSettings(Path("fake.tflite"), engine="cpu"), preprocess=PreprocessSettings(backend="cpu"))
    node = Node(MemoryParts(config, bus, fake_model(detections([], [], [])), release), SystemdNotifier({}))

    async def scenario() -> list[bytes]:
        running = asyncio.create_task(node.run())
        await until(lambda: node.running is not None, "the model running")
        answers = [bus.announcements["node"].query() for _ in range(1000)]
        node.stop.set()
        await running
        return answers

    with capture_logs():
        answers = asyncio.run(scenario())
    assert len({id(answer) for answer in answers}) <= 2  # the same bytes object, refreshed at most once meanwhile
