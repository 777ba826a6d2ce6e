"""The EdgeFirst tracker's own maths, as drop-in parts of edgenode's ByteTracker, to measure each deviation.

Used only by ``bench/tracker.py``'s ablation table. Each variant changes one thing:

- ``ReferenceKalman``: EdgeFirst's filter (``edgefirst-tracker`` ``kalman.rs``): a frame clock (dt = 1
  per update, whatever the camera time), motion ``x += 3 v``, measurement ``z = x + v``, and gating on
  the state's position rather than the projected measurement.
- ``InnovationScaledKalman``: edgenode's filter with EdgeFirst's meaning of ``--track-update``: the
  innovation times ``update``, the covariance shrunk as for a full update.
- ``FrameClockKalman``: edgenode's filter with a frame clock (every update is one time unit).
- ``ReferenceCostTracker``: EdgeFirst's pair cost ``(1.5 - score) + (1.5 - IoU)`` with its
  assignment that prefers more matches over cheaper ones (square matrix, invalid pairs at 1e6).
- ``LateExpiryTracker``: expiry after matching, as EdgeFirst does (a track past its lifespan still
  gets one last chance to match).
- ``TwoPassTracker``: no pass 3 (recovery by the last matched box), ByteTrack's two passes only.
- ``AnyScoreSecondPassTracker``: pass 2 also offers the unmatched high boxes (EdgeFirst's score 0).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from edgenode.core.bytetrack import ByteTracker
from edgenode.core.kalman import KalmanXYAH

Array = NDArray[np.float64]


class ReferenceKalman(KalmanXYAH):
    """EdgeFirst's ConstantVelocityXYAHModel2, batched: F = [[I, 3I], [0, I]], H = [I, I], dt = 1 per frame."""

    def __init__(self, *, update: float = 0.25) -> None:
        super().__init__(update=update)
        self._mean = np.zeros((0, 8))
        self._cov = np.zeros((0, 3, 4))  # P_pp, P_pv, P_vv per component
        wp, wv = 1.0 / 20.0, 1.0 / 160.0
        self._wp = np.array([wp, wp, 0.0, wp])
        self._cp = np.array([0.0, 0.0, 0.01, 0.0])
        self._wv = np.array([wv, wv, 0.0, wv])
        self._cv = np.array([0.0, 0.0, 1e-5, 0.0])

    def __len__(self) -> int:
        return len(self._mean)

    def add(self, xyah: Array) -> None:
        xyah = np.asarray(xyah, np.float64).reshape(-1, 4)
        h = xyah[:, 3:4]
        cov = np.zeros((len(xyah), 3, 4))
        cov[:, 0] = np.square(2 * self._wp * h + self._cp)
        cov[:, 2] = np.square(10 * self._wv * h + self._cv)
        self._mean = np.concatenate((self._mean, np.hstack((xyah, np.zeros_like(xyah)))))
        self._cov = np.concatenate((self._cov, cov))

    def keep(self, tracks: NDArray[np.bool_] | NDArray[np.intp]) -> None:
        self._mean = self._mean[tracks]
        self._cov = self._cov[tracks]

    def predict(self, elapsed_ns: int) -> None:
        if not len(self._mean):
            return
        h = self._mean[:, 3:4]
        pp, pv, vv = self._cov[:, 0], self._cov[:, 1], self._cov[:, 2]
        self._mean[:, :4] += 3.0 * self._mean[:, 4:]
        new_pp = pp + 6.0 * pv + 9.0 * vv + np.square(self._wp * h + self._cp)
        new_pv = pv + 3.0 * vv
        new_vv = vv + np.square(self._wv * h + self._cv)
        self._cov = np.stack((new_pp, new_pv, new_vv), 1)

    def update(self, tracks: NDArray[np.intp] | slice, xyah: Array) -> None:
        if not isinstance(tracks, slice) and not len(tracks):
            return
        mean, cov = self._mean[tracks], self._cov[tracks]
        pp, pv, vv = cov[:, 0], cov[:, 1], cov[:, 2]
        h = mean[:, 3:4]
        projected = mean[:, :4] + mean[:, 4:]
        s = pp + 2 * pv + vv + np.square(self._wp * h + self._cp)
        kp, kv = (pp + pv) / s, (pv + vv) / s
        innovation = self.update_rate * (np.asarray(xyah) - projected)
        mean[:, :4] += kp * innovation
        mean[:, 4:] += kv * innovation
        cov = np.stack((pp - kp * kp * s, pv - kp * kv * s, vv - kv * kv * s), 1)
        self._mean[tracks], self._cov[tracks] = mean, cov

    def corners(self) -> Array:
        x, y, a, h = self._mean[:, :4].T
        w = a * h
        return np.stack((x - w / 2, y - h / 2, x + w / 2, y + h / 2))

    @property
    def mean(self) -> Array:
        return self._mean.copy()


class InnovationScaledKalman(KalmanXYAH):
    """edgenode's filter, but ``update`` scales the innovation (EdgeFirst) instead of dividing R."""

    def __init__(self, *, update: float = 0.25) -> None:
        super().__init__(update=1.0)
        self.innovation_scale = update

    def update(self, tracks: NDArray[np.intp] | slice, xyah: Array) -> None:
        # A full update towards the measurement moved ``update`` of the way from the prediction:
        # the state moves by update * K * innovation and the covariance as for a full update.
        predicted = self.mean[tracks, :4]
        super().update(tracks, predicted + self.innovation_scale * (np.asarray(xyah) - predicted))


class FrameClockKalman(KalmanXYAH):
    """edgenode's filter, but every update advances exactly one time unit."""

    def predict(self, elapsed_ns: int) -> None:
        super().predict(self.time_unit_ns)


class ReferenceCostTracker(ByteTracker):
    """EdgeFirst's pair cost and its prefer-more-matches assignment."""

    def _pair_cost(self, overlap: Array, scores: NDArray[np.floating]) -> tuple[Array, float]:
        cost = (1.5 - scores.astype(np.float64)) + (1.5 - overlap)
        # A limit far above any cost: every extra match outweighs any cost difference.
        return cost, 1000.0


class LateExpiryTracker(ByteTracker):
    """Expires tracks after matching (EdgeFirst's order) instead of before."""

    def update(self, boxes, scores, classes, timestamp_ns):  # type: ignore[no-untyped-def]
        lifespan, self.lifespan_ns = self.lifespan_ns, 1 << 62
        try:
            infos = super().update(boxes, scores, classes, timestamp_ns)
        finally:
            self.lifespan_ns = lifespan
        stale = [stamp < timestamp_ns - lifespan and stamp != timestamp_ns for stamp in self._updated]
        if any(stale):
            self._updated = [-(1 << 62) if old else stamp for stamp, old in zip(self._updated, stale, strict=True)]
            self._quiet_until_ns = -(1 << 62)
            self._expire(timestamp_ns)
        return infos


class AnyScoreSecondPassTracker(ByteTracker):
    """Pass 2 offers every box pass 1 left (high ones too), as EdgeFirst's score-0 second pass does."""

    def _associate(self, boxes, area, scores, high, high_mask):  # type: ignore[no-untyped-def]
        det, trk, high_matches = super()._associate(boxes, area, scores, high, high_mask)
        free_tracks = np.ones(len(self._ids), np.bool_)
        free_tracks[trk] = False
        free_boxes = high_mask.copy()
        free_boxes[det] = False
        if not free_tracks.any() or not free_boxes.any():
            return det, trk, high_matches
        from edgenode.core.assignment import iou_signed, linear_assignment, signed_area

        predicted = self._kalman.signed_corners()
        overlap = iou_signed(boxes, area, predicted, signed_area(predicted))
        cost, limit = self._pair_cost(overlap, np.broadcast_to(scores[:, None], overlap.shape))
        det2, trk2 = linear_assignment(cost, limit, (overlap >= self.iou) & free_boxes[:, None] & free_tracks)
        return det + det2.tolist(), trk + trk2.tolist(), high_matches + len(det2)


class TwoPassTracker(ByteTracker):
    """ByteTrack's two passes only: no recovery by the last matched box."""

    def _recover(self, boxes, area, scores, unmatched, free):  # type: ignore[no-untyped-def]
        return [], []
