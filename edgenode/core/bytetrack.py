"""ByteTrack multi-object tracking with the EdgeFirst Model Node's track semantics.

Each ``update`` (camera time ``timestamp_ns``):

1. drops tracks not matched for more than ``lifespan_ns`` (``--track-extra-lifespan``);
2. predicts every track to this frame's time (batched Kalman filter, :mod:`edgenode.core.kalman`);
3. matches boxes to tracks in three passes, each an optimal assignment on ``1 - IoU`` allowing
   only ``IoU >= iou``:

   - pass 1: boxes scoring at least ``high_conf`` against every track's predicted box;
   - pass 2: boxes scoring in ``[low_score, high_conf)`` against the predicted boxes of the
     tracks pass 1 left (ByteTrack's second pass: low boxes keep tracks alive);
   - pass 3: high boxes still unmatched against the *last matched box* of the tracks still
     unmatched (OC-SORT's observation-centric recovery: an object that stopped or turned while
     unseen is found where it was last seen, not only where its velocity would have taken it);

4. corrects the matched tracks with their boxes;
5. starts a track for every unmatched box scoring at least ``high_conf`` (never a low one).

It returns one :class:`TrackInfo` (or ``None``) per input box, in input order. A track's
``lifetime`` is its match count before this frame (a new track reports 1), ``created_ns`` the
camera stamp of the frame that started it, its id a uuid4 string from this tracker's
``id_factory``: identities belong to one tracker instance, never to a global counter.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from edgenode.config import DecodeSettings, TrackSettings
from edgenode.core.assignment import iou_matrix, linear_assignment
from edgenode.core.kalman import KalmanXYAH, xyxy_to_xyah

NS_PER_SECOND = 1_000_000_000
_NEVER = 2**63 - 1


@dataclass(frozen=True, slots=True)
class TrackInfo:
    """The track of one output box, as the EdgeFirst ``Track`` message carries it."""

    id: str
    lifetime: int
    created_ns: int


@dataclass(frozen=True, slots=True)
class ActiveTrack:
    """A live track, for visualisation and debugging; ``box`` is the filter's x1, y1, x2, y2."""

    id: str
    lifetime: int
    created_ns: int
    last_updated_ns: int
    box: tuple[float, float, float, float]


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
    if not track.enabled:
        return TrackThresholds(decode.threshold, track.high_conf, min(track.score, track.high_conf))
    low = min(track.score, track.high_conf)
    return TrackThresholds(min(decode.threshold, track.score), track.high_conf, low)


def uuid4_id() -> str:
    """A random lower-case hyphenated uuid4, 36 characters."""
    return str(uuid.uuid4())


class ByteTracker:
    """ByteTrack over normalised boxes; one instance per camera stream.

    ``high_conf``: pass-1 and new-track score; ``low_score``: least score used at all (pass 2
    below ``high_conf``); ``iou``: least overlap between a track and a box to match them;
    ``update``: how far a match pulls a track (see :class:`KalmanXYAH`); ``lifespan_ns``: how long
    an unmatched track is kept, in camera nanoseconds. ``id_factory`` makes track ids (default
    uuid4 strings); ``kalman`` replaces the default filter (it must be empty; its own ``update``
    applies).
    """

    def __init__(
        self,
        *,
        high_conf: float = 0.7,
        low_score: float = 0.1,
        iou: float = 0.25,
        update: float = 0.25,
        lifespan_ns: int = NS_PER_SECOND // 2,
        id_factory: Callable[[], str] | None = None,
        kalman: KalmanXYAH | None = None,
    ) -> None:
        if not 0.0 <= low_score <= high_conf <= 1.0:
            raise ValueError(f"need 0 <= low_score <= high_conf <= 1, got {low_score} and {high_conf}")
        if not 0.0 <= iou <= 1.0:
            raise ValueError(f"iou must be between 0 and 1, got {iou}")
        if lifespan_ns < 0:
            raise ValueError(f"lifespan_ns must not be negative, got {lifespan_ns}")
        if kalman is not None and len(kalman):
            raise ValueError("the Kalman filter given to a new tracker must have no tracks")
        self.high_conf = high_conf
        self.low_score = low_score
        self.iou = iou
        self.lifespan_ns = lifespan_ns
        self._new_id = id_factory or uuid4_id
        self._kalman = kalman if kalman is not None else KalmanXYAH(update=update)
        self._last_ns: int | None = None
        # One entry per track, aligned with the filter's columns.
        self._ids: list[str] = []
        self._created: list[int] = []
        self._count = np.zeros(0, np.int64)
        self._updated = np.zeros(0, np.int64)
        self._last_box = np.zeros((0, 4))
        # No track can expire at or before this stamp (a lower bound, refreshed when passed).
        self._quiet_until_ns = _NEVER

    @classmethod
    def from_settings(cls, track: TrackSettings, decode: DecodeSettings,
                      id_factory: Callable[[], str] | None = None) -> ByteTracker:
        """A tracker configured from the ``--track-*`` flags (thresholds per :func:`track_thresholds`)."""
        thresholds = track_thresholds(track, decode)
        return cls(high_conf=thresholds.high_conf, low_score=thresholds.low_score, iou=track.iou,
                   update=track.update, lifespan_ns=round(track.extra_lifespan * NS_PER_SECOND),
                   id_factory=id_factory)

    def __len__(self) -> int:
        return len(self._ids)

    def update(
        self,
        boxes: NDArray[np.floating],
        scores: NDArray[np.floating],
        classes: NDArray[np.integer],
        timestamp_ns: int,
    ) -> list[TrackInfo | None]:
        """Track one frame's boxes ((N, 4) x1 y1 x2 y2 normalised); one entry per box, in order.

        ``classes`` is accepted for the pipeline's convenience; association ignores it, as
        EdgeFirst's tracker does.
        """
        timestamp_ns = int(timestamp_ns)
        xyxy: NDArray[np.float64] = np.asarray(boxes, np.float64)
        scores = np.asarray(scores)
        count = len(scores)
        if xyxy.shape != (count, 4) or np.shape(classes) != (count,) or scores.ndim != 1:
            raise ValueError(f"need (N, 4) boxes with N scores and N classes, got {xyxy.shape}, "
                             f"{scores.shape} and {np.shape(classes)}")
        if self._ids:
            self._expire(timestamp_ns)
            if self._last_ns is not None:
                self._kalman.predict(timestamp_ns - self._last_ns)
        self._last_ns = timestamp_ns

        high = scores >= self.high_conf
        infos: list[TrackInfo | None] = [None] * count
        if self._ids and count:
            det, trk = self._associate(xyxy, scores, high)
            if len(det):
                ids, created = self._ids, self._created
                for d, t, lifetime in zip(det.tolist(), trk.tolist(), self._count[trk].tolist(), strict=True):
                    infos[d] = TrackInfo(ids[t], lifetime, created[t])
                self._count[trk] += 1
                self._updated[trk] = timestamp_ns
                matched = xyxy[det]
                self._last_box[trk] = matched
                self._kalman.update(trk, xyxy_to_xyah(matched))
                high[det] = False
        fresh = high.nonzero()[0]
        if len(fresh):
            self._start(fresh, xyxy, timestamp_ns, infos)
        return infos

    def active_tracks(self) -> list[ActiveTrack]:
        """Every live track, matched this frame or not, with its filter box."""
        boxes = self._kalman.xyxy().tolist()
        return [ActiveTrack(track_id, lifetime, created, updated, (box[0], box[1], box[2], box[3]))
                for track_id, lifetime, created, updated, box in zip(
                    self._ids, self._count.tolist(), self._created, self._updated.tolist(), boxes, strict=True)]

    # --- steps -----------------------------------------------------------------------------------

    def _expire(self, timestamp_ns: int) -> None:
        """Drop tracks whose last match is more than the lifespan before ``timestamp_ns``."""
        if timestamp_ns <= self._quiet_until_ns:
            return
        alive = self._updated >= timestamp_ns - self.lifespan_ns
        if alive.all():
            self._quiet_until_ns = int(self._updated.min()) + self.lifespan_ns
            return
        keep = alive.nonzero()[0]
        kept = keep.tolist()
        self._ids = [self._ids[i] for i in kept]
        self._created = [self._created[i] for i in kept]
        self._count = self._count[keep]
        self._updated = self._updated[keep]
        self._last_box = self._last_box[keep]
        self._kalman.keep(keep)
        self._quiet_until_ns = int(self._updated.min()) + self.lifespan_ns if len(keep) else _NEVER

    def _associate(self, boxes: NDArray[np.float64], scores: NDArray[np.floating],
                   high: NDArray[np.bool_]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        """Matched (box indices, track indices) of the three passes."""
        cost, allowed, limit = self._pair_cost(iou_matrix(boxes, self._kalman.xyxy()), scores)
        # Pass 1: high boxes against every track's prediction.
        det, trk = linear_assignment(cost, limit, allowed & high[:, None])
        if len(trk) == len(self._ids):
            return det, trk
        high_left = np.count_nonzero(high) > len(det)
        free = np.ones(len(self._ids), np.bool_)
        free[trk] = False
        # Pass 2: low boxes against the predictions of the tracks pass 1 left.
        low = (scores >= self.low_score) & ~high
        if low.any():
            det2, trk2 = linear_assignment(cost, limit, allowed & low[:, None] & free)
            if len(trk2):
                det, trk = np.concatenate((det, det2)), np.concatenate((trk, trk2))
                free[trk2] = False
        # Pass 3: high boxes still unmatched against those tracks' last matched boxes.
        if high_left and free.any():
            unmatched = high.copy()
            unmatched[det] = False
            det3, trk3 = self._recover(boxes, scores, unmatched, free)
            if len(trk3):
                det, trk = np.concatenate((det, det3)), np.concatenate((trk, trk3))
        return det, trk

    def _recover(self, boxes: NDArray[np.float64], scores: NDArray[np.floating], unmatched: NDArray[np.bool_],
                 free: NDArray[np.bool_]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        """Pass 3: ``unmatched`` boxes against the last matched boxes of the ``free`` tracks."""
        rows, cols = unmatched.nonzero()[0], free.nonzero()[0]
        cost, allowed, limit = self._pair_cost(iou_matrix(boxes[rows], self._last_box[cols]), scores[rows])
        det, trk = linear_assignment(cost, limit, allowed)
        return rows[det], cols[trk]

    def _pair_cost(self, overlap: NDArray[np.float64], scores: NDArray[np.floating]
                   ) -> tuple[NDArray[np.float64], NDArray[np.bool_], float]:
        """Cost of matching each box (row) to each track (column), which pairs may match, the cost limit.

        ``1 - IoU``, allowing ``IoU >= iou``; the score only decides the pass.
        """
        del scores
        return 1.0 - overlap, overlap >= self.iou, 1.0 - self.iou

    def _start(self, fresh: NDArray[np.intp], boxes: NDArray[np.float64], timestamp_ns: int,
               infos: list[TrackInfo | None]) -> None:
        """A new track for each box index in ``fresh``."""
        new_ids = [self._new_id() for _ in range(len(fresh))]
        for d, track_id in zip(fresh.tolist(), new_ids, strict=True):
            infos[d] = TrackInfo(track_id, 1, timestamp_ns)
        self._ids.extend(new_ids)
        self._created.extend([timestamp_ns] * len(fresh))
        self._count = np.concatenate((self._count, np.ones(len(fresh), np.int64)))
        self._updated = np.concatenate((self._updated, np.full(len(fresh), timestamp_ns, np.int64)))
        self._last_box = np.concatenate((self._last_box, boxes[fresh]))
        self._quiet_until_ns = min(self._quiet_until_ns, timestamp_ns + self.lifespan_ns)
        self._kalman.add(xyxy_to_xyah(boxes[fresh]))
