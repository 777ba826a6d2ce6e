"""The camera simulator's fleet status: announced as a node's is (kind ``camera``), so ``edgenode status``
lists cameras beside nodes. A small thread snapshots the simulator's counters twice a second; queries
get the snapshot's bytes, never the publishing loop's time."""

from __future__ import annotations

import os
import threading
import time
from collections import deque

from edgenode import __version__
from edgenode.adapters.zenoh_bus import Announcement, ZenohBus
from edgenode.core.status import Identity, camera_status, encode_status
from edgenode.tools.camera.simulator import CameraSettings, CameraSimulator

REFRESH_SECONDS = 0.5
WINDOW_SECONDS = 2.0  # the frame rate reported is over about this long


class CameraStatus:
    """The simulator's status, announced on ``bus`` until :meth:`close`."""

    def __init__(self, bus: ZenohBus, settings: CameraSettings, simulator: CameraSimulator) -> None:
        self.settings = settings
        self.simulator = simulator
        self.identity = Identity("camera", os.uname().nodename, os.getpid(), __version__, bus.namespace, bus.zid,
                                 time.time())
        self.started = time.monotonic()
        self.stopping = False
        self._seen = (0, self.started)  # (frames published, when that count was first seen)
        self._history: deque[tuple[float, int]] = deque()
        self.payload = b""
        self.announcement: Announcement | None = None
        self.refresh()
        self.announcement = bus.announce("camera", lambda: self.payload)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="edgenode-camera-status", daemon=True)
        self._thread.start()

    def refresh(self) -> None:
        """Snapshot the simulator's counters into :attr:`payload`."""
        now = time.monotonic()
        published, late = self.simulator.published, self.simulator.late
        if published != self._seen[0]:
            self._seen = (published, now)
        self._history.append((now, published))
        while len(self._history) > 2 and now - self._history[1][0] >= WINDOW_SECONDS:
            self._history.popleft()
        first_at, first_count = self._history[0]
        window = (now - first_at, published - first_count) if now > first_at else None
        s, announcement = self.settings, self.announcement
        self.payload = encode_status(camera_status(
            self.identity, stopping=self.stopping, uptime_s=now - self.started, topic=s.topic,
            size=(s.width, s.height), pixel_format=s.format.name, target_fps=s.fps, published=published, late=late,
            silent_s=now - self._seen[1], window=window, answered=announcement.answered if announcement else 0,
            query_limit=announcement.rate if announcement else 0.0))

    def _run(self) -> None:
        while not self._stop.wait(REFRESH_SECONDS):
            self.refresh()

    def close(self) -> None:
        """Report stopping, stop refreshing (the announcement goes with the bus)."""
        self._stop.set()
        self._thread.join(1.0)
        self.stopping = True
        self.refresh()
