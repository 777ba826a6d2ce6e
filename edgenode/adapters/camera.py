"""Camera ingest: the newest frame from ``--camera-topic``, decoded, validated and imported.

Built on :meth:`ZenohBus.subscribe_latest`: frames that arrive while the node is busy replace
each other (counted as dropped). Bad messages and frames that cannot be imported (camera
restarted, buffer closed, no permission) are skipped, counted by reason and logged without
flooding; the node keeps running. When frames stop, one warning per gap; one line when they return.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from typing import Any

from numpy.typing import NDArray

from edgenode.adapters.dmabuf import DmaBufImporter, FrameImportError, ImportedFrame
from edgenode.adapters.zenoh_bus import LatestSlot, Received, ZenohBus
from edgenode.config import MAX_FRAME_BYTES
from edgenode.core.geometry import InputGeometry
from edgenode.core.ingest import FrameRef, FrameRejected, IngestStats, decode_frame
from edgenode.core.preprocess import Preprocessor
from edgenode.logs import get_logger

REPEAT_EVERY = 100  # after the first, every REPEAT_EVERY-th skip of a reason is logged again
MAX_MESSAGE_BYTES = 64 * 1024  # a DmaBuffer or CameraFrame is a few hundred bytes: anything this big is not one


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
        self._skipped = IngestStats()
        self._last_frame = time.monotonic()
        self._in_gap = False
        self._logged: Counter[str] = Counter()
        self._lock = threading.Lock()  # skips are counted from the loop and from a preprocessing thread
        self._log: Any = get_logger("edgenode.camera")

    @classmethod
    def subscribe(cls, bus: ZenohBus, topic: str, loop: asyncio.AbstractEventLoop, **options: Any) -> CameraFrames:
        """Subscribe to ``topic`` on ``bus`` (payloads over MAX_MESSAGE_BYTES are counted and never copied)."""
        return cls(bus.subscribe_latest(topic, loop, max_bytes=MAX_MESSAGE_BYTES), topic, **options)

    @property
    def stats(self) -> IngestStats:
        """A snapshot of the counters."""
        with self._lock:
            return IngestStats(self.slot.received, self.slot.dropped, Counter(self._skipped.skipped))

    def _skip(self, reason: str, message: str, level: str = "warning") -> None:
        with self._lock:
            self._skipped.skip(reason)
            count = self._logged[reason] = self._logged[reason] + 1
        if count == 1 or count % REPEAT_EVERY == 0:
            getattr(self._log, level)(f"skipping camera frame: {message}", reason=reason, count=count)

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
                return decode_frame(received.payload, received.encoding)
            except FrameRejected as exc:
                self._skip(exc.reason, str(exc))

    def open(self, ref: FrameRef) -> ImportedFrame | None:
        """Import ``ref``'s buffer, or count and log why not and return None."""
        try:
            return self.importer.open(ref)
        except FrameImportError as exc:
            self._skip(exc.reason, str(exc), "error" if exc.reason == "permission" else "warning")
            return None

    def convert(self, ref: FrameRef, preprocessor: Preprocessor, out: NDArray[Any] | None = None) -> InputGeometry:
        """Import ``ref``, preprocess it into ``out`` and release the buffer before returning.

        Blocking (pidfd, mmap, conversion): run it off the event loop, e.g. as the pipeline's
        prepare stage. An import failure (or an end-of-read sync failure on release) is counted
        and logged here, then re-raised as FrameImportError so the caller skips the frame.
        """
        try:
            frame = self.importer.open(ref)
            with frame:
                return preprocessor.run(frame, out)
        except FrameImportError as exc:
            self._skip(exc.reason, str(exc), "error" if exc.reason == "permission" else "warning")
            raise

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
