"""The composition root: every part of the node built from one :class:`NodeConfig`, each once, and the
decisions the config implies (decoder and tracker thresholds, the schedule) made here and nowhere else.

The parts come in the order the node's life needs them (:mod:`edgenode.node.lifecycle` runs it):

1. :meth:`NodeParts.open_bus`: the Zenoh session, waiting for a router in client mode;
2. :meth:`NodeParts.streams`: each camera stream's parts, before the model loads (the heartbeat uses them):
   its frames, its size, its publishers;
3. :meth:`NodeParts.load_model`: the model, on its own thread;
4. :meth:`NodeParts.running`: once it is loaded, the schedule, preprocessor, and each stream's tracker and
   stages.

A frame's path through them: ``CameraFrames.next`` (newest reference; with several streams,
``FairFrames.next`` picks whose) -> ``PrepareStage`` (import, preprocess) -> ``InvokeStage`` (the model)
-> ``PostStage`` (decode, track) -> ``FramePublisher``.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from edgenode.adapters.camera import MAX_MESSAGE_BYTES, CameraFrames, CameraInfos
from edgenode.adapters.systemd import SystemdNotifier
from edgenode.adapters.tflite import available_cores
from edgenode.adapters.zenoh_bus import ZenohBus
from edgenode.config import DecodeSettings, NodeConfig, StreamTopics, TrackSettings
from edgenode.core.bytetrack import NS_PER_SECOND, ByteTracker
from edgenode.core.preprocess import Preprocessor
from edgenode.core.tensors import one_frame
from edgenode.node.bus import Bus
from edgenode.node.lifecycle import Node
from edgenode.node.model_loading import LoadedModel, load_model
from edgenode.node.preprocessing import build_preprocessor
from edgenode.node.publishing import Publishers, StreamSize
from edgenode.node.scheduler import Pipeline, Stages
from edgenode.node.stages import InvokeStage, PostStage, PrepareStage, SharedFrameStats
from edgenode.node.status import StatusBoard
from edgenode.node.streams import Batch, BatchStages, FairFrames, Slice, StreamRun


@dataclass(frozen=True)
class TrackThresholds:
    """Score thresholds of a tracking pipeline.

    ``decoder``: the decoder keeps boxes at or above it; ``high_conf``: pass 1 and new tracks;
    ``low_score``: the least score pass 2 considers.
    """

    decoder: float
    high_conf: float
    low_score: float


def track_thresholds(track: TrackSettings, decode: DecodeSettings) -> TrackThresholds:
    """Decoder and tracker thresholds for both EdgeFirst flag generations.

    Without tracking the decoder runs at ``--threshold``. With tracking it runs at
    ``min(--threshold, --track-score)`` so boxes from ``--track-score`` up reach pass 2 (2.8's
    intent; 2.7 cut them at ``--threshold``); the high threshold, which starts tracks, is
    ``--track-high-conf`` (2.7's flag, 0.7) and the low one ``--track-score`` (capped at the high
    one). 2.8 used ``--threshold`` as the high threshold: set ``--track-high-conf`` to it for that.
    BENCHMARKS.md compares the three on ground truth.
    """
    low = min(track.score, track.high_conf)
    if not track.enabled:
        return TrackThresholds(decode.threshold, track.high_conf, low)
    return TrackThresholds(min(decode.threshold, track.score), track.high_conf, low)


def choose_schedule(schedule: str, delegate: str | None, model_threads: int, cores: int) -> tuple[bool, int]:
    """``--schedule`` resolved: (overlap the stages?, cores the CPU preprocessing may use).

    ``auto`` overlaps unless the model runs on the CPU with every core. While the stages overlap,
    preprocessing keeps off the cores the model's CPU threads use (sharing one slows both).
    """
    on_cpu = delegate is None
    overlap = schedule == "overlap" or (schedule == "auto" and not (on_cpu and model_threads >= cores))
    busy = model_threads if overlap and on_cpu else 0
    return overlap, max(1, cores - busy)


@dataclass
class Stream:
    """One camera stream's parts: its name, frames in, the stream's pixel size, its publications."""

    name: str
    frames: CameraFrames
    size: StreamSize
    publishers: Publishers
    camera_info: CameraInfos | None  # None when the size is not followed (no --visualization)

    def close(self) -> None:
        """Let mask work in hand finish (the subscriptions and publications close with the bus)."""
        self.publishers.close()


@dataclass
class Running:
    """The node once its model is loaded: every stream's stages on one schedule, ``batch`` frames an invoke."""

    streams: list[Stream]
    runs: list[StreamRun]
    model: LoadedModel
    preprocessor: Preprocessor
    tracking: bool
    pipeline: Pipeline[Batch, tuple[Slice, ...]]
    batch: int = 1
    totals: SharedFrameStats | None = None  # every stream's frames (several streams; one: its own stats)
    totals_line: dict[str, Any] = field(default_factory=dict)  # the node's last stats line (every stream's)

    @property
    def stream(self) -> Stream:
        """The first (with one camera, the only) stream."""
        return self.streams[0]

    @property
    def post(self) -> PostStage:
        """The first stream's post stage."""
        return self.runs[0].post

    @property
    def publish_errors(self) -> int:
        return sum(run.post.publish_errors for run in self.runs)

    def stream_counters(self, index: int) -> dict[str, Any]:
        """Stream ``index``'s counters since start: frames received, dropped, skipped; its failures; messages
        (with several streams, ``invoke_failed`` and ``post_failed`` beyond its own are the node's)."""
        stream, run = self.streams[index], self.runs[index]
        ingest = stream.frames.stats
        counters = self.pipeline.counters
        return {"received": ingest.received, "dropped": ingest.dropped, "skipped": dict(ingest.skipped),
                "prepare_failed": counters.prepare_failed + run.prepare_failed,
                "invoke_failed": counters.invoke_failed, "post_failed": counters.post_failed + run.post_failed,
                **stream.publishers.counters()}

    def counters(self) -> dict[str, Any]:
        """Every counter since start, read at once, summed over the streams: frames received, dropped,
        skipped; stage failures; messages."""
        if len(self.streams) == 1:
            return self.stream_counters(0)
        total: dict[str, Any] = {"skipped": Counter()}
        for index in range(len(self.streams)):
            for key, value in self.stream_counters(index).items():
                if key == "skipped":
                    total["skipped"].update(value)
                elif key in ("invoke_failed", "post_failed", "prepare_failed"):
                    continue
                else:
                    total[key] = total.get(key, 0) + value
        counters = self.pipeline.counters
        total["skipped"] = dict(total["skipped"])
        total["prepare_failed"] = counters.prepare_failed + sum(run.prepare_failed for run in self.runs)
        total["invoke_failed"] = counters.invoke_failed
        total["post_failed"] = counters.post_failed + sum(run.post_failed for run in self.runs)
        return total

    def stats_lines(self) -> list[dict[str, Any]]:
        """One stats line per stream since the last call (each with its ``stream`` name); with several streams
        the node's totals are kept in :attr:`totals_line`."""
        now = time.monotonic_ns()
        if self.totals is not None:
            self.totals_line = {**self.totals.report(now), "streams": len(self.streams), **self.counters()}
        lines = [{**run.post.stats.report(now), **self.stream_counters(index), "stream": run.name}
                 for index, run in enumerate(self.runs)]
        if self.totals is None:
            self.totals_line = lines[0]
        return lines

    def stalled(self, limit_ns: int) -> bool:
        return self.pipeline.stalled(limit_ns)

    def close(self, wait: bool = True) -> None:
        """Stop the stage threads (waiting for work in hand unless ``wait`` is False), then the preprocessor."""
        self.pipeline.close(wait=wait)
        if wait:  # a stage thread that would not stop may still be using it
            self.preprocessor.close()


class NodeParts:
    """Builds the node's parts from ``config``."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.thresholds = track_thresholds(config.track, config.decode)

    def open_bus(self, stopping: Callable[[], bool], waiting: Callable[[str], None]) -> Bus | None:
        """The Zenoh session (blocking: run it off the event loop); None once ``stopping()``."""
        return ZenohBus.open_when_reachable(self.config.zenoh, stopping, waiting)

    def streams(self, bus: Bus, loop: asyncio.AbstractEventLoop) -> list[Stream]:
        """Every camera stream's subscriptions and publications on ``bus``."""
        return [self.stream(bus, loop, stream) for stream in self.config.streams()]

    def stream(self, bus: Bus, loop: asyncio.AbstractEventLoop, named: StreamTopics) -> Stream:
        """Camera stream ``named``'s subscriptions and publications on ``bus``."""
        config, keys = self.config, named.topics
        size = StreamSize()
        publishers = Publishers(bus, keys, config.mask, config.visual, size=size,
                                model_path=str(config.model.path))
        frames = CameraFrames(bus.subscribe_latest(keys.camera, loop, max_bytes=MAX_MESSAGE_BYTES), keys.camera,
                              max_frame_bytes=self.config.preprocess.max_frame_bytes)
        infos = None
        if config.visual.enabled and keys.camera_info:
            infos = CameraInfos(bus.subscribe_latest(keys.camera_info, loop, max_bytes=MAX_MESSAGE_BYTES),
                                keys.camera_info)
        return Stream(named.name, frames, size, publishers, infos)

    def status_board(self) -> StatusBoard:
        """The node's fleet status, announced once the bus opens."""
        return StatusBoard(self.config)

    def load_model(self) -> LoadedModel:
        """The model, its decoder keeping boxes from the decoder threshold up (blocking; raises ModelError)."""
        streams = len(self.config.streams())
        return load_model(self.config.model, replace(self.config.decode, threshold=self.thresholds.decoder),
                          self.config.mask.classes, **({"streams": streams} if streams > 1 else {}))

    def tracker(self) -> ByteTracker | None:
        """A tracker for one stream with ``--track``, configured from the ``--track-*`` flags."""
        track = self.config.track
        if not track.enabled:
            return None
        return ByteTracker(high_conf=self.thresholds.high_conf, low_score=self.thresholds.low_score, iou=track.iou,
                           update=track.update, lifespan_ns=round(track.extra_lifespan * NS_PER_SECOND))

    def running(self, model: LoadedModel, streams: list[Stream]) -> Running:
        """The stages of ``streams`` on the schedule the model's placement calls for (raises PreprocessError)."""
        config, runtime = self.config, model.runtime
        overlap, preprocess_cores = choose_schedule(config.model.schedule, runtime.delegate, runtime.threads,
                                                    available_cores())
        spec = runtime.inputs[0]
        batch = max(1, spec.shape[0]) if spec.shape else 1
        preprocessor = build_preprocessor(config.preprocess, one_frame(spec), cores=preprocess_cores)
        try:
            totals = SharedFrameStats(time.monotonic_ns()) if len(streams) > 1 else None
            runs = []
            for stream in streams:
                publisher = stream.publishers.for_model(model.description, status=config.model.path.name)
                post = PostStage(model, publisher, tracker=self.tracker(), threshold=config.decode.threshold,
                                 profile=config.log.profile, totals=totals)
                runs.append(StreamRun(stream.name, stream.frames, PrepareStage(stream.frames, preprocessor), post))
            invoke = InvokeStage(runtime)
            batches = BatchStages(batch)
            frames = FairFrames(runs, min(batch, len(runs), config.model.batch or batch))
            stages: Stages[Batch, tuple[Slice, ...]] = Stages(
                frames.next, batches.prepare, invoke, batches.post, spec.shape, spec.dtype, invoke.model_input)
            return Running(streams, runs, model, preprocessor, config.track.enabled,
                           Pipeline(stages, overlap=overlap), batch, totals)
        except BaseException:
            preprocessor.close()
            raise


def build_node(config: NodeConfig) -> Node:
    """The node ``config`` describes, reporting to systemd when run under it."""
    return Node(NodeParts(config), SystemdNotifier())
