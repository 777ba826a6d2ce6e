"""Tracker quality on generated ground truth, scored with motmetrics (MOTA, IDF1, identity switches).

Shared by ``bench/tracker.py`` and ``tests/unit/test_tracking_quality.py``. A contender is any object
with ``update(boxes, scores, classes, timestamp_ns)`` returning one entry per box (``None`` or a
track); the hypotheses of a frame are the input boxes that got a track, labelled by track id.
The ground truth of a frame is every object the simulated detector could see (see
``edgenode.tools.evaluation.track_scenes``).
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from edgenode.core.assignment import iou_matrix
from edgenode.core.bytetrack import ByteTracker
from edgenode.tools.evaluation.track_scenes import Scene

# A hypothesis matches a ground-truth box when their IoU is at least this (MOTChallenge's 0.5).
MATCH_IOU = 0.5


class Tracker(Protocol):
    def update(self, boxes: Any, scores: Any, classes: Any, timestamp_ns: int) -> list[Any]: ...


@dataclass(frozen=True)
class Params:
    """One parameter set, applied to every contender alike (the flags' defaults)."""

    high_conf: float = 0.7
    low_score: float = 0.1
    iou: float = 0.25
    update: float = 0.25
    lifespan_ns: int = 500_000_000
    decoder: float = 0.1  # boxes below this never reach the tracker


@dataclass(frozen=True)
class Quality:
    mota: float
    idf1: float
    switches: int
    false_positives: int
    misses: int
    fragmentations: int


class EdgefirstTracker:
    """``edgefirst.tracker.ByteTrack`` behind the common interface (exact dtypes, ids as strings)."""

    def __init__(self, params: Params) -> None:
        import edgefirst.tracker as eft

        self._tracker = eft.ByteTrack(high_conf=params.high_conf, iou=params.iou, update=params.update,
                                      lifespan_ns=params.lifespan_ns)

    def update(self, boxes: Any, scores: Any, classes: Any, timestamp_ns: int) -> list[Any]:
        infos = self._tracker.update(np.ascontiguousarray(boxes, np.float32), np.ascontiguousarray(scores, np.float32),
                                     np.ascontiguousarray(classes, np.uintp), timestamp_ns)
        return [None if info is None else str(info.uuid) for info in infos]


class EdgenodeTracker:
    """``edgenode.core.bytetrack.ByteTracker`` behind the common interface."""

    def __init__(self, params: Params, tracker: ByteTracker | None = None) -> None:
        if tracker is None:
            tracker = ByteTracker(high_conf=params.high_conf, low_score=params.low_score, iou=params.iou,
                                  update=params.update, lifespan_ns=params.lifespan_ns)
        self._tracker = tracker

    def update(self, boxes: Any, scores: Any, classes: Any, timestamp_ns: int) -> list[Any]:
        infos = self._tracker.update(boxes, scores, classes, timestamp_ns)
        return [None if info is None else info.id for info in infos]


def edgefirst_available() -> bool:
    try:
        return importlib.util.find_spec("edgefirst.tracker") is not None
    except ImportError:  # no edgefirst package at all
        return False


def track(tracker: Tracker, scene: Scene, decoder: float) -> list[list[Any]]:
    """Run ``tracker`` over ``scene`` (boxes under ``decoder`` removed); the track id of every kept box."""
    outputs = []
    for frame in scene.frames:
        keep = frame.scores >= decoder
        ids = tracker.update(frame.boxes[keep], frame.scores[keep], frame.classes[keep], frame.timestamp_ns)
        full: list[Any] = [None] * len(frame.scores)
        for index, track_id in zip(np.flatnonzero(keep).tolist(), ids, strict=True):
            full[index] = track_id
        outputs.append(full)
    return outputs


def score(scene: Scene, outputs: Sequence[Sequence[Any]]) -> Quality:
    """MOTA, IDF1 and error counts of ``outputs`` (from :func:`track`) against the scene's ground truth."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # motmetrics/pandas deprecation chatter
        import motmetrics as mm

        accumulator = mm.MOTAccumulator(auto_id=True)
        numbering: dict[Any, int] = {}
        for frame, ids in zip(scene.frames, outputs, strict=True):
            tracked = [i for i, track_id in enumerate(ids) if track_id is not None]
            hyp = [numbering.setdefault(ids[i], len(numbering)) for i in tracked]
            overlap = iou_matrix(frame.gt_boxes, frame.boxes[tracked])
            distance = np.where(overlap >= MATCH_IOU, 1.0 - overlap, np.nan)
            accumulator.update(frame.gt_ids.tolist(), hyp, distance)
        summary = mm.metrics.create().compute(
            accumulator, metrics=["mota", "idf1", "num_switches", "num_false_positives", "num_misses",
                                  "num_fragmentations"], name="scene")
    row = summary.iloc[0]
    return Quality(float(row["mota"]), float(row["idf1"]), int(row["num_switches"]), int(row["num_false_positives"]),
                   int(row["num_misses"]), int(row["num_fragmentations"]))


def evaluate(make: Callable[[], Tracker], scenes: Iterable[Scene], decoder: float) -> list[Quality]:
    """A fresh tracker from ``make`` per scene; the quality of each."""
    return [score(scene, track(make(), scene, decoder)) for scene in scenes]


def pooled(results: Sequence[Quality]) -> Quality:
    """Mean MOTA and IDF1, summed counts."""
    return Quality(float(np.mean([r.mota for r in results])), float(np.mean([r.idf1 for r in results])),
                   sum(r.switches for r in results), sum(r.false_positives for r in results),
                   sum(r.misses for r in results), sum(r.fragmentations for r in results))
