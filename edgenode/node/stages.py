"""The pipeline's concrete stages for one camera stream: prepare (import and preprocess), invoke, post.

Each runs on a stage thread (see :mod:`edgenode.node.scheduler`). :class:`PrepareStage` is the
one place a frame that cannot be imported becomes a skipped frame; :class:`PostStage` decodes,
maps boxes to the frame, tracks, labels, publishes and counts.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from edgenode.adapters.camera import CameraFrames
from edgenode.adapters.tflite import TFLiteRuntime
from edgenode.core.bytetrack import ByteTracker, TrackInfo
from edgenode.core.detections import Detections
from edgenode.core.geometry import InputGeometry
from edgenode.core.ingest import FrameRef
from edgenode.core.outbound import FrameResult, StageTimes
from edgenode.core.preprocess import Preprocessor
from edgenode.core.stats import FrameStats
from edgenode.logs import get_logger
from edgenode.node.model_loading import LoadedModel
from edgenode.node.publishing import FramePublisher
from edgenode.node.scheduler import FrameSkipped, Inferred, InvokeResult

MAX_PLAUSIBLE_LATENCY_NS = 10_000_000_000


def to_frame(detections: Detections, geometry: InputGeometry) -> Detections:
    """Boxes (and a semantic mask) from model-input coordinates to the full camera frame."""
    if geometry.is_identity:
        return detections
    mask = detections.semantic_mask
    if mask is not None:  # keep only the rows and columns that show the frame (letterbox padding off)
        x1, y1, x2, y2 = geometry.content_normalized
        height, width = mask.shape[:2]
        top, left = round(y1 * height), round(x1 * width)
        mask = mask[top:max(round(y2 * height), top + 1), left:max(round(x2 * width), left + 1)]
    return Detections(geometry.boxes_to_frame(detections.boxes), detections.scores, detections.classes,
                      detections.instance_masks, mask)


def keep_published(detections: Detections, tracks: list[TrackInfo | None], threshold: float
                   ) -> tuple[Detections, list[TrackInfo | None]]:
    """With tracking: boxes that have a track, plus untracked ones scoring at least ``threshold``.

    The decoder runs below ``--threshold`` when tracking (so weak boxes can keep tracks alive);
    a weak box that matched no track is not a detection and is not published.
    """
    # In Python lists: a frame has a few boxes, and a numpy call costs more than such a loop.
    keep = [index for index, (track, score) in enumerate(zip(tracks, detections.scores.tolist(), strict=True))
            if track is not None or score >= threshold]
    if len(keep) == len(tracks):
        return detections, tracks
    return detections.select(np.array(keep, np.intp)), [tracks[index] for index in keep]


class SharedFrameStats:
    """:class:`FrameStats` recorded on the post thread and reported (read and restarted) from the event loop:
    one lock around both, so no frame recorded between a report's read and its restart is lost."""

    def __init__(self, started_ns: int) -> None:
        self._stats = FrameStats(started_ns)
        self._lock = threading.Lock()

    def record(self, times: StageTimes, publish_ns: int, latency_ns: int, box_count: int) -> None:
        with self._lock:
            self._stats.record(times, publish_ns, latency_ns, box_count)

    def report(self, now_ns: int) -> dict[str, float]:
        with self._lock:
            return self._stats.report(now_ns)


class PrepareStage:
    """Import a camera frame, preprocess it into the given input array, release it before returning."""

    def __init__(self, frames: CameraFrames, preprocessor: Preprocessor) -> None:
        self.frames = frames
        self.preprocessor = preprocessor

    def __call__(self, ref: FrameRef, into: np.ndarray) -> InputGeometry:
        frame = self.frames.open(ref)  # an import failure is counted by reason and logged there
        if frame is None:
            raise FrameSkipped(f"frame {ref.fd} of pid {ref.pid} could not be imported")
        try:
            geometry = self.preprocessor.run(frame, into)
        finally:
            released = self.frames.release(frame)  # a failing end-of-read sync too is counted and logged there
        if not released:
            raise FrameSkipped(f"frame {ref.fd} of pid {ref.pid}: the end-of-read sync failed")
        return geometry


class InvokeStage:
    """Run the model on a prepared input (copied into the model first unless prepared in it) and return
    copies of its outputs with each step's time."""

    def __init__(self, runtime: TFLiteRuntime) -> None:
        self.runtime = runtime
        self.model_input = runtime.input_view()

    def __call__(self, prepared: np.ndarray) -> InvokeResult:
        runtime = self.runtime
        started = time.perf_counter_ns()
        if prepared is not self.model_input:
            runtime.set_input(prepared)
        copied = time.perf_counter_ns()
        runtime.invoke()
        invoked = time.perf_counter_ns()
        outputs = [view.copy() for view in runtime.output_views()]
        return InvokeResult(outputs, copied - started, invoked - copied, time.perf_counter_ns() - invoked)


class PostStage:
    """Called on the post thread for every inferred frame; owns the stream's tracker and frame stats."""

    def __init__(self, model: LoadedModel, publisher: FramePublisher, *, tracker: ByteTracker | None,
                 threshold: float, profile: bool, totals: SharedFrameStats | None = None) -> None:
        self.model = model
        self.publisher = publisher
        self.tracker = tracker
        self.threshold = threshold
        self.profile = profile
        self._labels: dict[int, str] = {}
        self.stats = SharedFrameStats(time.monotonic_ns())
        self.totals = totals  # the node's stats over every stream, when it has several
        self.publish_errors = 0  # frames whose publication raised (also counted as post failures)
        self.first_frame_logged = False
        self._log: Any = get_logger("edgenode.node")

    def _label(self, class_index: int) -> str:
        label = self._labels.get(class_index)
        if label is None:
            label = self._labels[class_index] = self.model.description.label_for(class_index)
        return label

    def __call__(self, item: Inferred[FrameRef, InputGeometry]) -> None:
        started = time.perf_counter_ns()
        frame = item.prepared.frame
        detections = to_frame(self.model.decoder.decode(item.result.outputs), item.prepared.geometry)
        decoded = time.perf_counter_ns()
        tracks: list[TrackInfo | None] | None = None
        if self.tracker is not None:
            tracks = self.tracker.update(detections.boxes, detections.scores, detections.classes, frame.stamp_ns)
            detections, tracks = keep_published(detections, tracks, self.threshold)
        tracked = time.perf_counter_ns()
        times = StageTimes(preprocess_ns=item.prepared.preprocess_ns + item.result.input_ns,
                           invoke_ns=item.result.invoke_ns, output_ns=item.result.output_ns,
                           decode_ns=decoded - started, track_ns=tracked - decoded)
        labels = [self._label(index) for index in detections.classes.tolist()]
        result = FrameResult(frame.header, detections, labels, tracks, times)
        try:
            self.publisher.publish(result, frame.layout)
        except Exception:
            self.publish_errors += 1
            raise
        published = time.perf_counter_ns()
        latency = time.time_ns() - frame.stamp_ns
        if not 0 <= latency < MAX_PLAUSIBLE_LATENCY_NS:  # camera clock is not ours: time since arrival
            latency = time.monotonic_ns() - (frame.arrived_ns or item.prepared.taken_ns)
        self.stats.record(times, published - tracked, latency, len(detections))
        if self.totals is not None:
            self.totals.record(times, published - tracked, latency, len(detections))
        if not self.first_frame_logged:
            self.first_frame_logged = True
            self._log.info(f"first frame decoded: {len(detections)} boxes", boxes=len(detections),
                           preprocess_ms=round(times.preprocess_ns / 1e6, 2), invoke_ms=round(times.invoke_ns / 1e6, 2))
        if self.profile:
            self._log.debug("frame", stamp_ns=frame.stamp_ns, boxes=len(detections),
                            preprocess_us=times.preprocess_ns // 1000, invoke_us=times.invoke_ns // 1000,
                            output_us=times.output_ns // 1000, decode_us=times.decode_ns // 1000,
                            track_us=times.track_ns // 1000, publish_us=(published - tracked) // 1000)
