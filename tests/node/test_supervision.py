"""Supervision coroutines: the watchdog pings only while the pipeline progresses, the stats line and systemd
STATUS, the stream size followed from CameraInfo with one warning when none comes."""

from __future__ import annotations

import asyncio
from typing import Any

from structlog.testing import capture_logs

import edgenode.messages as m
from edgenode.adapters.camera import CameraInfos
from edgenode.adapters.zenoh_bus import LatestSlot, Received
from edgenode.node import supervision
from edgenode.node.publishing import StreamSize
from tests.helpers.timing import scaled


class Notifier:
    """Records what a SystemdNotifier would send."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def watchdog(self) -> None:
        self.sent.append("WATCHDOG=1")

    def status(self, text: str) -> None:
        self.sent.append(f"STATUS={text}")


async def run_for(coroutine: Any, stop: asyncio.Event, until: Any) -> None:
    task = asyncio.create_task(coroutine)
    deadline = asyncio.get_running_loop().time() + scaled(10)
    while not until() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.005)
    stop.set()
    await asyncio.wait_for(task, scaled(10))


def test_the_watchdog_pings_while_the_pipeline_progresses_and_stops_when_it_stalls() -> None:
    notifier, stalls = Notifier(), iter([False, False, True, True, False])
    limits: list[int] = []

    def stalled(limit_ns: int) -> bool:
        limits.append(limit_ns)
        return next(stalls, False)

    async def scenario() -> None:
        stop = asyncio.Event()
        await run_for(supervision.watchdog(notifier, 0.01, stalled, stop), stop, lambda: len(limits) >= 5)

    with capture_logs() as logs:
        asyncio.run(scenario())
    assert notifier.sent == ["WATCHDOG=1"] * (len(limits) - 2)  # every check but the two stalled ones
    assert set(limits) == {20_000_000}  # two intervals
    assert [log["event"] for log in logs] == ["pipeline made no progress; not pinging the systemd watchdog"] * 2


def test_the_stats_line_and_systemd_status() -> None:
    notifier = Notifier()
    line = {"fps": 12.345, "frames": 5.0, "boxes_per_frame": 2.0, "invoke_ms": 30.04, "received": 7, "skipped": {}}

    async def scenario() -> None:
        stop = asyncio.Event()
        await run_for(supervision.report_stats(lambda: line, 0.01, notifier, stop), stop,
                      lambda: len(notifier.sent) >= 2)

    with capture_logs() as logs:
        asyncio.run(scenario())
    assert logs[0] == {"event": "stats", "log_level": "info", "logger": "edgenode.node", **line}
    assert notifier.sent[0] == "STATUS=12.3 fps, 2.0 boxes/frame, invoke 30.0 ms"


def test_the_stream_size_follows_camera_info_with_one_warning_when_none_comes() -> None:
    size = StreamSize()

    async def until(condition: Any) -> None:
        deadline = asyncio.get_running_loop().time() + scaled(10)
        while not condition() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.005)

    async def scenario(logs: list[dict[str, Any]]) -> None:
        infos = CameraInfos(LatestSlot(), "rt/camera/info")
        task = asyncio.create_task(supervision.follow_camera_info(infos, size, wait=0.05))
        await until(lambda: logs)  # the warning, once the wait is over
        infos.slot.put(Received(m.encode(m.CameraInfo(height=1080, width=1920)), "", 0))
        await until(lambda: size.known is not None)
        task.cancel()

    with capture_logs() as logs:
        asyncio.run(scenario(logs))
    assert size.known == (1920, 1080)
    assert [log["event"] for log in logs] == [
        "no CameraInfo on rt/camera/info after 0.05 s; annotating in the frames' own pixel size"]
