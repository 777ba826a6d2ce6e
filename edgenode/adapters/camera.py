"""Camera ingest: the newest frame from ``--camera-topic``, decoded, validated and imported; the newest
CameraInfo from ``--camera-info-topic``.

Built on :meth:`ZenohBus.subscribe_latest` with a size limit: messages that arrive while the node
is busy replace each other (counted as dropped), and one over MAX_MESSAGE_BYTES is counted and
never copied, so nothing larger is decoded. Bad messages and frames that cannot be imported
(camera restarted, buffer closed, no permission) are skipped, counted by reason and logged without
flooding; the node keeps running. When frames stop, one warning per gap; one line when they return.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import replace
from typing import Any

from edgenode.adapters.dmabuf import DmaBufImporter, FrameImportError, ImportedFrame
from edgenode.adapters.zenoh_bus import LatestSlot, Received, ZenohBus
from edgenode.config import MAX_FRAME_BYTES
from edgenode.core.ingest import FrameRef, FrameRejected, IngestStats, decode_frame
from edgenode.logs import get_logger
from edgenode.messages import CameraInfo, CdrError, decode

REPEAT_EVERY = 100  # after the first, every REPEAT_EVERY-th skip of a reason is logged again
# A DmaBuffer or CameraFrame is a few hundred bytes, a CameraInfo under 1 KiB: anything this big is neither.
MAX_MESSAGE_BYTES = 64 * 1024


class Skips:
    """Messages skipped, counted by reason; the first of each reason is logged, then every REPEAT_EVERY-th."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()  # frames are skipped on the event loop and on a preprocessing thread

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.counts)

    def __call__(self, reason: str, message: str, level: str = "warning") -> None:
        with self._lock:
            self.counts[reason] += 1
            count = self.counts[reason]
        if count == 1 or count % REPEAT_EVERY == 0:
            getattr(get_logger("edgenode.camera"), level)(f"skipping {self.what}: {message}", reason=reason,
                                                          count=count)


class CameraFrames:
    """Newest-only camera frames with received/dropped/skipped counters (:attr:`stats`)."""

    def __init__(self, slot: LatestSlot[Received], topic: str, *, gap_seconds: float = 1.0,
                 importer: DmaBufImporter | None = None, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        if gap_seconds <= 0:
            raise ValueError(f"gap_seconds must be positive, got {gap_seconds}")
        self.slot = slot
        self.topic = topic
        self.gap_seconds = gap_seconds
        self.importer = importer or DmaBufImporter(max_frame_bytes)
        self._skip = Skips("camera frame")
        self.subscribed_at = time.monotonic()
        self.frame_size: tuple[int, int] | None = None  # width and height of the newest valid frame
        self._last_frame = self.subscribed_at
        self._in_gap = False
        self._log: Any = get_logger("edgenode.camera")

    @classmethod
    def subscribe(cls, bus: ZenohBus, topic: str, loop: asyncio.AbstractEventLoop, **options: Any) -> CameraFrames:
        """Subscribe to ``topic`` on ``bus`` (payloads over MAX_MESSAGE_BYTES are counted and never copied)."""
        return cls(bus.subscribe_latest(topic, loop, max_bytes=MAX_MESSAGE_BYTES), topic, **options)

    @property
    def stats(self) -> IngestStats:
        """A snapshot of the counters."""
        return IngestStats(self.slot.received, self.slot.dropped, self._skip.snapshot())

    def silence(self, now: float) -> tuple[float, bool]:
        """Seconds since the newest camera message arrived (since subscribing when none has), and whether
        one has; read on the event loop."""
        last = self.slot.last_put
        return (now - last, True) if self.slot.received else (now - self.subscribed_at, False)

    @property
    def pending(self) -> bool:
        """Whether a camera message waits unread (:meth:`next` then returns without waiting)."""
        return self.slot.pending

    @property
    def arrived(self) -> float:
        """When the newest camera message arrived (time.monotonic(); 0 before the first)."""
        return self.slot.last_put

    def watch(self, now: float) -> None:
        """Note a gap in the frames (one warning) when nobody waits in :meth:`next` on this stream."""
        self._note_gap(now)

    def _note_gap(self, now: float) -> None:
        if not self._in_gap and now - self._last_frame >= self.gap_seconds:
            self._in_gap = True
            self._log.warning(f"no camera frames on {self.topic} for {self.gap_seconds:g} s; waiting",
                              topic=self.topic)

    def _note_frame(self, now: float) -> None:
        if self._in_gap:
            self._log.info(f"camera frames resumed on {self.topic} after {now - self._last_frame:.1f} s",
                           topic=self.topic)
            self._in_gap = False
        self._last_frame = now

    async def next(self, timeout: float | None = None) -> FrameRef | None:
        """The newest valid frame reference, or None when ``timeout`` seconds pass without one."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            now = time.monotonic()
            wait = self.gap_seconds - (now - self._last_frame) if not self._in_gap else self.gap_seconds
            if deadline is not None:
                wait = min(wait, deadline - now)
            received = await self.slot.get(timeout=max(wait, 0.0))
            now = time.monotonic()
            if received is None:
                self._note_gap(now)
                if deadline is not None and now >= deadline:
                    return None
                continue
            self._note_frame(now)
            if received.oversize:
                self._skip("oversize", f"a {received.oversize}-byte message is not a frame reference "
                                       f"(at most {MAX_MESSAGE_BYTES} bytes)")
                continue
            try:
                ref = replace(decode_frame(received.payload, received.encoding), arrived_ns=received.arrived_ns)
            except FrameRejected as exc:
                self._skip(exc.reason, str(exc))
                continue
            self.frame_size = (ref.layout.width, ref.layout.height)
            return ref

    def open(self, ref: FrameRef) -> ImportedFrame | None:
        """Import ``ref``'s buffer, or count and log why not and return None."""
        try:
            return self.importer.open(ref)
        except FrameImportError as exc:
            self._skip(exc.reason, str(exc), "error" if exc.reason == "permission" else "warning")
            return None

    def release(self, frame: ImportedFrame) -> bool:
        """Release ``frame`` (mapping and fd, whatever happens); False, counted and logged, when its
        end-of-read sync failed (the frame may have been read while the device still wrote it)."""
        try:
            frame.close()
        except FrameImportError as exc:
            self._skip(exc.reason, str(exc))
            return False
        return True

    def importable(self, ref: FrameRef) -> bool:
        """Whether ``ref``'s buffer imports: imported and released in one blocking call (run it off the event
        loop; a caller cancelled meanwhile leaks no fd)."""
        frame = self.open(ref)
        return frame is not None and self.release(frame)

    async def next_imported(self, timeout: float | None = None) -> tuple[FrameRef, ImportedFrame] | None:
        """The newest frame that imports, ready for ``with``; None on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            ref = await self.next(remaining)
            if ref is None:
                return None
            frame = self.open(ref)
            if frame is not None:
                return ref, frame


class CameraInfos:
    """The newest CameraInfo on ``topic`` (the slot's subscription bounded by MAX_MESSAGE_BYTES); an oversize
    or undecodable one is skipped, counted (:attr:`skipped`) and logged. Decoded on the event loop: at most
    MAX_MESSAGE_BYTES, and only the newest of those that came meanwhile."""

    def __init__(self, slot: LatestSlot[Received], topic: str) -> None:
        self.slot = slot
        self.topic = topic
        self._skip = Skips(f"CameraInfo on {topic}")

    @property
    def skipped(self) -> Counter[str]:
        return self._skip.snapshot()

    async def next(self, timeout: float | None = None) -> CameraInfo | None:
        """The newest valid CameraInfo, or None when ``timeout`` seconds pass without one."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            received = await self.slot.get(timeout=remaining)
            if received is None:
                return None
            if received.oversize:
                self._skip("oversize", f"a {received.oversize}-byte message is not a CameraInfo "
                                       f"(at most {MAX_MESSAGE_BYTES} bytes)")
                continue
            try:
                return decode(CameraInfo, received.payload)
            except CdrError as exc:
                self._skip("decode", str(exc))
