"""The node on an in-memory bus (tests/helpers/bus.py) with a fake model: its parts, a camera feeding real
frame buffers, and a wait on the event loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import edgenode.messages as m
from edgenode.config import NodeConfig
from edgenode.core.pixels import fourcc_code
from edgenode.node.compose import NodeParts
from edgenode.node.model_loading import LoadedModel
from tests.helpers.bus import MemoryBus
from tests.helpers.frame_producer import Producer
from tests.helpers.timing import scaled, wait_until_async

CAMERA = "rt/camera/dma"
DMA_BUFFER = "application/cdr;edgefirst_msgs/msg/DmaBuffer"


class MemoryParts(NodeParts):
    """The node's parts on ``bus``, with a fake model handed over once ``release`` is set."""

    def __init__(self, config: NodeConfig, bus: MemoryBus, model: LoadedModel, release: threading.Event) -> None:
        super().__init__(config)
        self.bus, self.model, self.release = bus, model, release

    def open_bus(self, stopping: Callable[[], bool], waiting: Callable[[str], None]) -> MemoryBus:
        return self.bus

    def load_model(self) -> LoadedModel:
        assert self.release.wait(scaled(30)), "the test never released the model"
        return self.model


async def until(condition: Callable[[], object], what: str, seconds: float = 10) -> None:
    """Wait on the event loop until ``condition()`` holds (``seconds`` scaled), failing with ``what``."""
    await wait_until_async(condition, seconds, what)


async def feed(bus: MemoryBus, camera: Producer) -> None:
    """The camera: a DmaBuffer every 10 ms, cycling through the producer's buffers."""
    for index in range(1_000_000):
        pid, fd, size = camera.frames[index % len(camera.frames)]
        stamp = m.Time.from_nanos(time.time_ns())
        message = m.DmaBuffer(m.Header(stamp, "camera"), pid, fd, 64, 48, 128, fourcc_code("YUYV"), size)
        bus.deliver(CAMERA, m.encode(message), DMA_BUFFER)
        await asyncio.sleep(0.01)
