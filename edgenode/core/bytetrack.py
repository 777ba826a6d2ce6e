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
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from edgenode.core.assignment import PairCosts, Pairs, allowed_pairs, iou_signed, match_pairs, signed_area
from edgenode.core.kalman import XYXY_TO_SIGNED_AND_CENTRE, KalmanXYAH, centre_rows_to_xyah_rows

NS_PER_SECOND = 1_000_000_000
_NEVER = 2**63 - 1


class TrackInfo(NamedTuple):
    """The track of one output box, as the EdgeFirst ``Track`` message carries it.

    An immutable named tuple: the tracker makes one per tracked box per frame, and a tuple is
    built in a quarter of a frozen dataclass's time.
    """

    id: str
    lifetime: int
    created_ns: int


_new_info = tuple.__new__


@dataclass(frozen=True, slots=True)
class ActiveTrack:
    """A live track, for visualisation and debugging; ``box`` is the filter's x1, y1, x2, y2."""

    id: str
    lifetime: int
    created_ns: int
    last_updated_ns: int
    box: tuple[float, float, float, float]


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
        # One entry per track, aligned with the filter's columns: Python lists for what each
        # update reads or writes per track in Python anyway, numpy for the last matched boxes.
        self._ids: list[str] = []
        self._created: list[int] = []
        self._count: list[int] = []
        self._updated: list[int] = []
        self._last_box: NDArray[np.float64] = np.zeros((4, 0))  # signed rows x1, y1, -x2, -y2
        # No track can expire at or before this stamp (a lower bound, refreshed when passed).
        self._quiet_until_ns = _NEVER

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
        boxes = np.asarray(boxes)
        scores = np.asarray(scores)
        count = len(scores)
        if boxes.shape != (count, 4) or np.shape(classes) != (count,) or scores.ndim != 1:
            raise ValueError(f"need (N, 4) boxes with N scores and N classes, got {boxes.shape}, "
                             f"{scores.shape} and {np.shape(classes)}")
        tracks = len(self._ids)
        if tracks:
            if timestamp_ns > self._quiet_until_ns:
                self._expire(timestamp_ns)
                tracks = len(self._ids)
            if self._last_ns is not None:
                self._kalman.predict(timestamp_ns - self._last_ns)
        self._last_ns = timestamp_ns
        if not count:
            return []
        high_mask = scores >= self.high_conf
        high: list[bool] = high_mask.tolist()
        started = high.count(True)
        if not tracks and not started:
            return [None] * count
        # Boxes as (4, N) signed rows x1, y1, -x2, -y2 (for the overlaps), then x, y, w, h (float64).
        prepared = XYXY_TO_SIGNED_AND_CENTRE.dot(boxes.T)
        signed, centre = prepared[:4], prepared[4:]
        area = centre[2] * centre[3]
        infos: list[TrackInfo | None] = [None] * count
        xyah: NDArray[np.float64] | None = None
        if tracks:
            det, trk, high_matches = self._associate(signed, area, scores, high, high_mask)
            if det:
                started -= high_matches
                ids, created, counts = self._ids, self._created, self._count
                xyah = centre_rows_to_xyah_rows(centre)
                if len(det) == tracks:
                    # Every track matched: update the filters in place, measurements in track order.
                    order = [0] * tracks
                    for d, t in zip(det, trk, strict=True):
                        infos[d] = _new_info(TrackInfo, (ids[t], counts[t], created[t]))
                        order[t] = d
                    self._count = [lifetime + 1 for lifetime in counts]
                    self._updated = [timestamp_ns] * tracks
                    box_order = np.array(order, np.intp)
                    self._last_box = signed.take(box_order, axis=1)
                    self._kalman.update(slice(None), xyah.take(box_order, axis=1).T)
                else:
                    updated = self._updated
                    for d, t in zip(det, trk, strict=True):
                        lifetime = counts[t]
                        infos[d] = _new_info(TrackInfo, (ids[t], lifetime, created[t]))
                        counts[t] = lifetime + 1
                        updated[t] = timestamp_ns
                    det_index, trk_index = np.array(det, np.intp), np.array(trk, np.intp)
                    self._last_box[:, trk_index] = signed.take(det_index, axis=1)
                    self._kalman.update(trk_index, xyah.take(det_index, axis=1).T)
        if started:
            if infos.count(None) == count:
                fresh = [d for d, start in enumerate(high) if start]
            else:
                fresh = [d for d, start in enumerate(high) if start and infos[d] is None]
            if fresh:
                index = np.array(fresh, np.intp)
                if xyah is None:
                    xyah = centre_rows_to_xyah_rows(centre)
                self._start(fresh, signed.take(index, axis=1), xyah.take(index, axis=1), timestamp_ns, infos)
        return infos

    def active_tracks(self) -> list[ActiveTrack]:
        """Every live track, matched this frame or not, with its filter box."""
        boxes = self._kalman.xyxy().tolist()
        return [ActiveTrack(track_id, lifetime, created, updated, (box[0], box[1], box[2], box[3]))
                for track_id, lifetime, created, updated, box in zip(
                    self._ids, self._count, self._created, self._updated, boxes, strict=True)]

    # --- steps -----------------------------------------------------------------------------------

    def _expire(self, timestamp_ns: int) -> None:
        """Drop tracks whose last match is more than the lifespan before ``timestamp_ns``."""
        if timestamp_ns <= self._quiet_until_ns:
            return
        oldest = timestamp_ns - self.lifespan_ns
        updated = self._updated
        kept = [i for i, stamp in enumerate(updated) if stamp >= oldest]
        if len(kept) == len(updated):
            self._quiet_until_ns = min(updated) + self.lifespan_ns
            return
        self._ids = [self._ids[i] for i in kept]
        self._created = [self._created[i] for i in kept]
        self._count = [self._count[i] for i in kept]
        self._updated = [updated[i] for i in kept]
        keep = np.array(kept, np.intp)
        self._last_box = self._last_box[:, keep]
        self._kalman.keep(keep)
        self._quiet_until_ns = min(self._updated) + self.lifespan_ns if kept else _NEVER

    def _associate(self, boxes: NDArray[np.float64], area: NDArray[np.float64], scores: NDArray[np.floating],
                   high: list[bool], high_mask: NDArray[np.bool_]) -> tuple[list[int], list[int], int]:
        """Matched box indices and track indices of the three passes, and how many of the boxes are high.

        ``boxes`` are (4, N) signed rows with their ``area``; ``high`` and ``high_mask`` flag the
        high boxes. Each pass is a :func:`match_pairs` over the pairs it may match.
        """
        tracks = len(self._ids)
        predicted = self._kalman.signed_corners()
        overlap = iou_signed(boxes, area, predicted, signed_area(predicted))
        pair_rows, pair_cols = allowed_pairs(overlap, self.iou)
        rows, cols = pair_rows.tolist(), pair_cols.tolist()
        costs = self._costs(overlap, scores)
        # Pass 1: high boxes against every track's prediction.
        if False not in high:
            det, trk = match_pairs(rows, cols, costs, arrays=(pair_rows, pair_cols))
            rest: list[int] = []
        else:
            first = high_mask.take(pair_rows)
            first_rows, first_cols = pair_rows[first], pair_cols[first]
            det, trk = match_pairs(first_rows.tolist(), first_cols.tolist(), costs, arrays=(first_rows, first_cols))
            rest = (~first).nonzero()[0].tolist()
        high_matches = len(det)
        if high_matches == tracks:
            return det, trk, high_matches
        taken = set(trk)
        # Pass 2: low boxes against the predictions of the tracks pass 1 left.
        if rest:
            low: list[bool] = (scores >= self.low_score).tolist()
            second = [i for i in rest if low[rows[i]] and cols[i] not in taken]
            if second:
                det2, trk2 = match_pairs([rows[i] for i in second], [cols[i] for i in second], costs)
                if trk2:
                    det, trk = det + det2, trk + trk2
                    taken.update(trk2)
        # Pass 3: high boxes still unmatched against those tracks' last matched boxes.
        if high.count(True) > high_matches and len(taken) < tracks:
            matched = set(det)
            unmatched = [d for d, is_high in enumerate(high) if is_high and d not in matched]
            free = [t for t in range(tracks) if t not in taken]
            det3, trk3 = self._recover(boxes, area, scores, unmatched, free)
            if trk3:
                det, trk = det + det3, trk + trk3
                high_matches += len(det3)
        return det, trk, high_matches

    def _recover(self, boxes: NDArray[np.float64], area: NDArray[np.float64], scores: NDArray[np.floating],
                 unmatched: list[int], free: list[int]) -> Pairs:
        """Pass 3: boxes ``unmatched`` (indices) against the last matched boxes of tracks ``free`` (indices)."""
        box_rows = np.array(unmatched, np.intp)
        last = self._last_box[:, free]
        overlap = iou_signed(boxes.take(box_rows, axis=1), area.take(box_rows), last, signed_area(last))
        pair_rows, pair_cols = (overlap >= self.iou).nonzero()
        det, trk = match_pairs(pair_rows.tolist(), pair_cols.tolist(), self._costs(overlap, scores.take(box_rows)),
                               arrays=(pair_rows, pair_cols))
        return [unmatched[d] for d in det], [free[t] for t in trk]

    def _costs(self, overlap: NDArray[np.float64], scores: NDArray[np.floating]) -> PairCosts:
        """The costs of pairs (box rows, track columns) of ``overlap``, for :func:`match_pairs`."""
        def costs(rows: NDArray[np.intp], cols: NDArray[np.intp]) -> tuple[list[float], float]:
            cost, limit = self._pair_cost(overlap[rows, cols], scores.take(rows))
            listed: list[float] = cost.tolist()
            return listed, limit
        return costs

    def _pair_cost(self, overlap: NDArray[np.float64], scores: NDArray[np.floating]
                   ) -> tuple[NDArray[np.float64], float]:
        """Costs of matching boxes with ``scores`` to tracks they overlap by ``overlap`` (aligned
        arrays of allowed pairs, whose IoU reaches ``iou``), and the cost limit.

        ``1 - IoU``; the score only decides the pass.
        """
        del scores
        return 1.0 - overlap, 1.0 - self.iou

    def _start(self, fresh: list[int], signed: NDArray[np.float64], xyah: NDArray[np.float64],
               timestamp_ns: int, infos: list[TrackInfo | None]) -> None:
        """A new track for each box index in ``fresh``, given as (4, M) signed rows and XYAH rows."""
        new_ids = [self._new_id() for _ in fresh]
        for d, track_id in zip(fresh, new_ids, strict=True):
            infos[d] = _new_info(TrackInfo, (track_id, 1, timestamp_ns))
        self._ids += new_ids
        self._created += [timestamp_ns] * len(fresh)
        self._count += [1] * len(fresh)
        self._updated += [timestamp_ns] * len(fresh)
        self._last_box = np.concatenate((self._last_box, signed), axis=1)
        self._quiet_until_ns = min(self._quiet_until_ns, timestamp_ns + self.lifespan_ns)
        self._kalman.add(xyah.T)
