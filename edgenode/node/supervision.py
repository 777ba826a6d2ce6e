"""Supervision: the coroutines that run beside the pipeline, one small one each, all on the event loop.

- :func:`heartbeat`: while the model loads, placeholders for every camera frame whose buffer imports;
- :func:`report_stats`: every ``--stats-interval`` seconds, the stats line and systemd's STATUS;
- :func:`watchdog`: systemd's watchdog pinged while the pipeline makes progress (or waits for frames);
- :func:`follow_camera_info`: the stream's size from CameraInfo, one warning when none comes;
- :func:`refresh_status`: the fleet status snapshot, a few times a second.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from edgenode.adapters.camera import CameraFrames, CameraInfos
from edgenode.adapters.systemd import SystemdNotifier
from edgenode.logs import get_logger
from edgenode.node.publishing import Publishers, StreamSize

CAMERA_INFO_WAIT_SECONDS = 10.0


def _log() -> Any:
    """The node's logger, looked up when used (so tests can capture it)."""
    return get_logger("edgenode.node")


async def sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds``, or less once ``stop`` is set."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        pass


async def heartbeat(frames: CameraFrames, publishers: Publishers, until: asyncio.Event) -> None:
    """Until ``until`` is set (the model loaded): the heartbeat's placeholders for each frame that imports."""
    while not until.is_set():
        ref = await frames.next(0.1)
        if ref is not None and await asyncio.to_thread(frames.importable, ref):
            publishers.heartbeat(ref)


async def report_stats(line: Callable[[], Mapping[str, Any]], interval: float, notifier: SystemdNotifier,
                       stop: asyncio.Event, *, lines: Callable[[], Sequence[Mapping[str, Any]]] | None = None) -> None:
    """Every ``interval`` seconds: the stats line ``line()`` gives (throughput, stage times, counters), or
    the lines ``lines()`` gives after it (one per camera stream); the line's gist as systemd's STATUS."""
    while not stop.is_set():
        await sleep_unless(stop, interval)
        fields = line()
        for each in lines() if lines is not None else (fields,):
            _log().info("stats", **each)
        notifier.status(f"{fields['fps']:.1f} fps, {fields.get('boxes_per_frame', 0):.1f} boxes/frame, "
                        f"invoke {fields.get('invoke_ms', 0):.1f} ms")


async def watchdog(notifier: SystemdNotifier, interval: float, stalled: Callable[[int], bool],
                   stop: asyncio.Event) -> None:
    """Ping systemd every ``interval`` seconds unless ``stalled(limit_ns)``: no progress for two intervals."""
    limit_ns = int(interval * 2 * 1e9)
    while not stop.is_set():
        if stalled(limit_ns):
            _log().error("pipeline made no progress; not pinging the systemd watchdog")
        else:
            notifier.watchdog()
        await sleep_unless(stop, interval)


async def follow_camera_info(infos: CameraInfos, size: StreamSize, wait: float = CAMERA_INFO_WAIT_SECONDS) -> None:
    """Keep ``size`` to the newest CameraInfo's; one warning when none has given it after ``wait`` seconds."""
    warn_at: float | None = time.monotonic() + wait
    while True:
        timeout = None if warn_at is None else max(warn_at - time.monotonic(), 0.0)
        info = await infos.next(timeout)
        if info is not None:
            size.update(info.width, info.height)
        elif warn_at is not None:
            warn_at = None
            if size.known is None:
                _log().warning(f"no CameraInfo on {infos.topic} after {wait:g} s; annotating in the frames' own "
                               "pixel size")


async def refresh_status(refresh: Callable[[], None], period: float) -> None:
    """Call ``refresh`` (the status snapshot) every ``period`` seconds until cancelled."""
    while True:
        await asyncio.sleep(period)
        refresh()
