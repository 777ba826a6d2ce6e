"""The node's fleet status: a snapshot of its state, model, camera stream and counters, taken on the event
loop a few times a second (and at once on each change of phase) and served to status queries as ready JSON.

A query never reaches into the pipeline: the bus's query callback returns :attr:`StatusBoard.payload`,
the bytes of the last snapshot, so a flood of queries costs the node no more than those replies (which
the bus bounds, :class:`edgenode.adapters.zenoh_bus.Announcement`). The document's layout is
:mod:`edgenode.core.status`'s.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from edgenode import __version__
from edgenode.config import NodeConfig
from edgenode.core.status import (
    LOADING,
    RUNNING,
    STOPPING,
    WAITING_FOR_ROUTER,
    Counters,
    Identity,
    ModelFacts,
    StreamFacts,
    encode_status,
    node_status,
)
from edgenode.logs import last_error

if TYPE_CHECKING:
    from edgenode.node.bus import Announced, Bus
    from edgenode.node.compose import Running, Stream

REFRESH_SECONDS = 0.5
PHASES = (WAITING_FOR_ROUTER, LOADING, RUNNING, STOPPING)


class StatusBoard:
    """The node's status, kept as the bytes of its latest snapshot (:attr:`payload`); loop-side only, except
    :meth:`answer`, which any thread may call."""

    def __init__(self, config: NodeConfig, *, host: str | None = None, pid: int | None = None) -> None:
        self.config = config
        self.host = host or os.uname().nodename
        self.pid = os.getpid() if pid is None else pid
        self.started_at = time.time()
        self.started = time.monotonic()
        self.phase = WAITING_FOR_ROUTER
        self.identity: Identity | None = None
        self.announcement: Announced | None = None
        self.streams: list[Stream] = []
        self.running: Running | None = None
        self.model = ModelFacts(file=str(config.model.path))
        self.window: dict[str, float] | None = None
        self.camera_fps: list[float | None] = []
        self._received_at_window: list[int] = []
        self.payload = b""

    # -- what the lifecycle tells it --------------------------------------------------------------
    def announce(self, bus: Bus, streams: list[Stream]) -> None:
        """Follow ``streams``, take a first snapshot and announce the node on ``bus`` (token and queryable); the
        bus is open, so the node is loading its model next."""
        self.streams = streams
        self.camera_fps = [None] * len(self.streams)
        self._received_at_window = [0] * len(self.streams)
        self.phase = LOADING
        self.identity = Identity("node", self.host, self.pid, __version__, bus.namespace, bus.zid, self.started_at)
        self.refresh()
        self.announcement = bus.announce("node", self.answer)

    def enter(self, phase: str) -> None:
        """The node moved to ``phase`` (one of PHASES): snapshot at once, so queries see it now."""
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}")
        self.phase = phase
        self.refresh()

    def started_running(self, running: Running) -> None:
        """The model is loaded and the stages run: its facts are known."""
        self.running = running
        self._received_at_window = [stream.frames.slot.received for stream in running.streams]  # window starts
        runtime, description = running.model.runtime, running.model.description
        spec = description.inputs[0] if description.inputs else None
        self.model = ModelFacts(
            file=str(self.config.model.path), name=description.name, format=description.model_format,
            types=description.model_types, input_shape=spec.shape if spec else None,
            input_type=str(spec.dtype) if spec else None, runtime=runtime.runtime, delegate=runtime.delegate or "cpu",
            threads=runtime.threads, schedule="overlap" if running.pipeline.overlap else "serial",
            preprocess=running.preprocessor.name, tracking=running.tracking)
        self.enter(RUNNING)

    def record_window(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Keep the stats line's window (the node's throughput, stage times) for the status, and each stream's
        arrival rate over it; returns ``fields``."""
        self.window = {key: float(value) for key, value in fields.items() if isinstance(value, (int, float))}
        seconds = self.window.get("window_s", 0.0)
        for index, stream in enumerate(self.streams):
            received = stream.frames.slot.received
            if seconds > 0:
                self.camera_fps[index] = round((received - self._received_at_window[index]) / seconds, 2)
            self._received_at_window[index] = received
        return fields

    # -- the snapshot -----------------------------------------------------------------------------
    def _stream_facts(self, now: float) -> list[StreamFacts]:
        facts = []
        for stream, fps in zip(self.streams, self.camera_fps, strict=True):
            frames = stream.frames
            stats = frames.stats
            silent, seen = frames.silence(now)
            facts.append(StreamFacts(topic=frames.topic, size=stream.size.known or frames.frame_size, silent_s=silent,
                                     frames_seen=seen, fps=fps, received=stats.received, dropped=stats.dropped,
                                     skipped=dict(stats.skipped),
                                     name=stream.name if len(self.streams) > 1 else None))
        return facts

    def _counters(self) -> Counters:
        if self.running is not None:
            counted = self.running.counters()
            return Counters(
                frames_received=counted["received"], frames_processed=self.running.pipeline.counters.posted,
                dropped=counted["dropped"], skipped=counted["skipped"], prepare_failures=counted["prepare_failed"],
                invoke_failures=counted["invoke_failed"], post_failures=counted["post_failed"],
                publish_errors=self.running.publish_errors + counted.get("mask_failed", 0)
                + counted.get("mask_compressed_failed", 0))
        if self.streams:
            every = [stream.frames.stats for stream in self.streams]
            skipped: Counter[str] = Counter()
            for stats in every:
                skipped.update(stats.skipped)
            return Counters(frames_received=sum(stats.received for stats in every),
                            dropped=sum(stats.dropped for stats in every), skipped=dict(skipped))
        return Counters()

    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        """The status document as of ``now`` (time.monotonic())."""
        now = time.monotonic() if now is None else now
        assert self.identity is not None, "announce() first"
        announcement = self.announcement
        return node_status(self.identity, self.phase, uptime_s=now - self.started, model=self.model,
                           streams=self._stream_facts(now), counters=self._counters(), window=self.window,
                           answered=announcement.answered if announcement else 0,
                           query_limit=announcement.rate if announcement else 0.0, last_error=last_error())

    def refresh(self) -> None:
        """Take a snapshot and keep its bytes for :meth:`answer` (no-op until announced)."""
        if self.identity is not None:
            self.payload = encode_status(self.snapshot())

    def answer(self) -> bytes:
        """The latest snapshot's bytes (called on zenoh's callback thread)."""
        return self.payload
