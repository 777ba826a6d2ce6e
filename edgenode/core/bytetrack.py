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

Steps 1 to 5 run in one native call (``edgenode/kernels/track.c``): a frame's work is a few dozen
small loops over boxes and tracks, which cost far less in C than the numpy calls they took
(BENCHMARKS.md, issue 17). The tracks' filter states, last matched boxes, stamps and counts live in
arrays the kernel reads and writes in place; Python keeps the ids and builds the output. Each pass
matches its pairs with :func:`edgenode.core.assignment.match_pairs`' kernel, which calls LAPJV back
for the rare big contested groups and near ties.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from edgenode.core.assignment import LAPJV_SOLVER
from edgenode.core.kalman import KalmanXYAH
from edgenode.kernels import track as native

NS_PER_SECOND = 1_000_000_000


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


def uuid4_ids(batch: int = 64) -> Callable[[], str]:
    """A source of random lower-case hyphenated uuid4 strings (RFC 4122 version 4, 36 characters).

    ``str(uuid.uuid4())`` costs some 6 µs here (a getrandom call, the UUID object, its formatting), three
    times a whole tracker update at a few boxes; this draws the random bits of ``batch`` ids in one call
    and formats each from its hex digits (version nibble 4, variant bits 10), under a microsecond an id.
    """
    pending: list[str] = []

    def next_id() -> str:
        if not pending:
            digits = secrets.token_bytes(16 * batch).hex()
            pending.extend(_uuid4(digits[at:at + 32]) for at in range(0, len(digits), 32))
        return pending.pop()

    return next_id


def _uuid4(digits: str) -> str:
    """32 random hex digits as a uuid4: the version digit set to 4, the variant's two high bits to 10."""
    return (f"{digits[:8]}-{digits[8:12]}-4{digits[13:16]}-{_VARIANT[int(digits[16], 16) & 3]}{digits[17:20]}-"
            f"{digits[20:]}")


_VARIANT = "89ab"


class ByteTracker:
    """ByteTrack over normalised boxes; one instance per camera stream.

    ``high_conf``: pass-1 and new-track score; ``low_score``: least score used at all (pass 2
    below ``high_conf``); ``iou``: least overlap between a track and a box to match them;
    ``update``: how far a match pulls a track (see :class:`KalmanXYAH`); ``lifespan_ns``: how long
    an unmatched track is kept, in camera nanoseconds. ``id_factory`` makes track ids (default
    uuid4 strings); ``kalman`` replaces the default filter (it must be empty; its parameters and its
    own ``update`` apply; the tracker runs it in its kernel, so it belongs to this tracker alone).
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
        if kalman is not None:
            overridden = [name for name in ("add", "keep", "predict", "update", "corners", "signed_corners")
                          if getattr(type(kalman), name) is not getattr(KalmanXYAH, name)]
            if overridden:
                raise TypeError(f"the tracker runs its Kalman filter natively from the filter's parameters; "
                                f"{type(kalman).__name__} overrides {', '.join(overridden)}, which it would not call")
        self.high_conf = high_conf
        self.low_score = low_score
        self.iou = iou
        self.lifespan_ns = lifespan_ns
        self._new_id = id_factory or uuid4_ids()
        self._kalman = kalman if kalman is not None else KalmanXYAH(update=update)
        self._ids: list[str] = []  # one per track, aligned with the kernel's arrays
        self._filter_count = self._kalman._size
        self._update = native.functions().track_update
        self._params = np.zeros(native.P_SIZE)
        self._params_for: np.dtype[np.generic] | None = None  # the score type the thresholds are written for
        # The kernel's context: buffer addresses and capacities (written when a buffer grows), the clock,
        # the lifespan and the ablation flags.
        self._context = np.zeros(native.C_SIZE, np.int64)
        context = self._context
        context[native.C_FILTER_PTR] = self._kalman._header.ctypes.data
        context[native.C_LIFESPAN_NS] = lifespan_ns
        context[native.C_FLAGS] = self._flags
        context[native.C_KALMAN_PTR] = self._kalman._parameters.ctypes.data
        context[native.C_PARAMS_PTR] = self._params.ctypes.data
        context[native.C_SOLVER_PTR] = LAPJV_SOLVER
        self._context_address = context.ctypes.data
        self._track_capacity = self._box_capacity = self._pair_capacity = 0
        self._info, self._last_box, self._kept = np.zeros((0, 3), np.int64), np.zeros((0, 4)), np.zeros(0, np.int64)
        self._boxes = self._scores = self._out = self._overlap = self._scratch = np.zeros(0)
        self._grow(16, 16, 0)

    # Ablation switches (edgenode.kernels.track's F_*), set only by the benchmark's variants
    # (bench/trackeval/variants.py) to measure each deviation from EdgeFirst's tracker.
    _flags = 0

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
        ids = self._ids
        tracks = len(ids)
        if self._filter_count[0] != tracks:
            raise RuntimeError(f"the tracker's Kalman filter holds {len(self._kalman)} tracks, the tracker {tracks}: "
                               "it was changed outside the tracker")
        if count > self._box_capacity or tracks + count > self._track_capacity \
                or tracks * count > self._pair_capacity:
            self._grow(tracks + count, count, tracks * count)
        if count:
            if scores.dtype != self._params_for:
                self._thresholds(scores.dtype)
            self._boxes[:count] = boxes  # (slice assignment: half np.copyto's cost on a view)
            self._scores[:count] = scores
        result = self._update(self._context_address, count, timestamp_ns)
        if result < 0:
            native.raise_failure(result, self._context_address)
        if self._flags & native.F_LATE_EXPIRY:
            return self._late_output(count, result)
        if result >= native.EXPIRED:
            ids[:] = [ids[i] for i in self._kept[:self._context[native.C_KEPT]].tolist()]
            result -= native.EXPIRED
        if not count:
            return []
        if result:
            ids += [self._new_id() for _ in range(result)]
        return [None if track < 0 else _new_info(TrackInfo, (ids[track], lifetime, created))
                for track, lifetime, created in self._out[:count].tolist()]

    def active_tracks(self) -> list[ActiveTrack]:
        """Every live track, matched this frame or not, with its filter box."""
        boxes = self._kalman.xyxy().tolist()
        info = self._info[:len(self._ids)].tolist()
        return [ActiveTrack(track_id, count, created, updated, (box[0], box[1], box[2], box[3]))
                for track_id, (created, count, updated), box in zip(self._ids, info, boxes, strict=True)]

    # --- buffers ---------------------------------------------------------------------------------

    def _grow(self, tracks: int, boxes: int, pairs: int) -> None:
        """Buffers for at least ``tracks`` tracks, ``boxes`` boxes a frame and ``pairs`` box-track pairs (the
        frame's boxes times the tracks before it; half as much again, as the others double), addresses in the
        context. The pair buffers follow the frames seen, not the product of both capacities."""
        context = self._context
        live = len(self._ids)
        if tracks > self._track_capacity:
            capacity = max(tracks, 2 * self._track_capacity)
            self._kalman._reserve(capacity)
            info, last_box = np.zeros((capacity, 3), np.int64), np.zeros((capacity, 4))
            info[:live], last_box[:live] = self._info[:live], self._last_box[:live]
            self._info, self._last_box, self._kept = info, last_box, np.zeros(capacity, np.int64)
            self._track_capacity = capacity
            context[native.C_CAPACITY] = capacity
            context[native.C_INFO_PTR] = info.ctypes.data
            context[native.C_LAST_BOX_PTR] = last_box.ctypes.data
            context[native.C_KEPT_PTR] = self._kept.ctypes.data
        if boxes > self._box_capacity:
            capacity = max(boxes, 2 * self._box_capacity)
            self._boxes, self._scores = np.zeros((capacity, 4)), np.zeros(capacity)
            self._out = np.zeros((capacity, 3), np.int64)
            self._box_capacity = capacity
            context[native.C_BOX_CAPACITY] = capacity
            context[native.C_BOXES_PTR] = self._boxes.ctypes.data
            context[native.C_SCORES_PTR] = self._scores.ctypes.data
            context[native.C_OUT_PTR] = self._out.ctypes.data
        if pairs > self._pair_capacity:
            pairs = max(pairs + pairs // 2, 256)
            self._overlap = np.zeros(pairs)
            self._pair_capacity = pairs
            context[native.C_PAIR_CAPACITY] = pairs
            context[native.C_OVERLAP_PTR] = self._overlap.ctypes.data
        scratch = native.functions().track_scratch(self._box_capacity, self._track_capacity, self._pair_capacity)
        if scratch > len(self._scratch):
            self._scratch = np.zeros(scratch, np.int64)
            context[native.C_SCRATCH_LEN] = scratch
            context[native.C_SCRATCH_PTR] = self._scratch.ctypes.data

    def _thresholds(self, dtype: np.dtype[np.generic]) -> None:
        """Score thresholds as numpy compares them with scores of ``dtype`` (a float32 score against
        ``high_conf`` compares in float32)."""
        kind = dtype.type if np.issubdtype(dtype, np.floating) else np.float64
        self._params[native.P_HIGH] = float(kind(self.high_conf))
        self._params[native.P_LOW] = float(kind(self.low_score))
        self._params[native.P_IOU] = self.iou
        self._params_for = dtype

    def _late_output(self, count: int, result: int) -> list[TrackInfo | None]:
        """The output when tracks expire after matching (an ablation): ids before the expiry, then dropped."""
        ids = self._ids
        started = result % native.EXPIRED
        if started:
            ids += [self._new_id() for _ in range(started)]
        infos = [None if track < 0 else _new_info(TrackInfo, (ids[track], lifetime, created))
                 for track, lifetime, created in self._out[:count].tolist()] if count else []
        if result >= native.EXPIRED:
            ids[:] = [ids[i] for i in self._kept[:self._context[native.C_KEPT]].tolist()]
        return infos
