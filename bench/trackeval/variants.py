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

from edgenode.core.bytetrack import ByteTracker
from edgenode.core.kalman import KalmanXYAH
from edgenode.kernels import track as native

# The tracker runs its filter and its passes natively (edgenode/kernels/track.c); each variant switches
# the kernel's ablation for it: a filter parameter, or a tracker flag.


class ReferenceKalman(KalmanXYAH):
    """EdgeFirst's ConstantVelocityXYAHModel2: F = [[I, 3I], [0, I]], H = [I, I], dt = 1 per frame.

    Noise (standard deviations, as EdgeFirst writes them): ``wp h + cp`` for positions and ``wv h + cv``
    for velocities, with wp = 1/20, wv = 1/160 (0 for the aspect) and cp = 0.01, cv = 1e-5 (the aspect's).
    """

    def __init__(self, *, update: float = 0.25) -> None:
        super().__init__(update=update)
        k = self._parameters
        k[native.K_MODEL] = native.MODEL_EDGEFIRST
        wp, wv = 1.0 / 20.0, 1.0 / 160.0
        k[native.K_POS_H2:][:4], k[native.K_POS_C:][:4] = [wp, wp, 0.0, wp], [0.0, 0.0, 0.01, 0.0]
        k[native.K_VEL_H2:][:4], k[native.K_VEL_C:][:4] = [wv, wv, 0.0, wv], [0.0, 0.0, 1e-5, 0.0]


class InnovationScaledKalman(KalmanXYAH):
    """edgenode's filter, but ``update`` scales the innovation (EdgeFirst) instead of dividing R.

    A full update towards the measurement moved ``update`` of the way from the prediction: the state
    moves by update * K * innovation and the covariance as for a full update.
    """

    def __init__(self, *, update: float = 0.25) -> None:
        super().__init__(update=1.0)
        self._parameters[native.K_INNOVATION] = update


class FrameClockKalman(KalmanXYAH):
    """edgenode's filter, but every prediction advances exactly one time unit."""

    def __init__(self, *, update: float = 0.25) -> None:
        super().__init__(update=update)
        self._parameters[native.K_FRAME_CLOCK] = 1.0


class ReferenceCostTracker(ByteTracker):
    """EdgeFirst's pair cost ``(1.5 - score) + (1.5 - IoU)`` with a limit far above any cost (1000), so that
    every extra match outweighs any cost difference: its prefer-more-matches assignment."""

    _flags = native.F_EDGEFIRST_COST


class LateExpiryTracker(ByteTracker):
    """Expires tracks after matching (EdgeFirst's order) instead of before."""

    _flags = native.F_LATE_EXPIRY


class AnyScoreSecondPassTracker(ByteTracker):
    """The high boxes passes 1 and 3 left, offered to the tracks left by prediction, as EdgeFirst's score-0
    second pass does."""

    _flags = native.F_ANY_SCORE_PASS


class TwoPassTracker(ByteTracker):
    """ByteTrack's two passes only: no recovery by the last matched box."""

    _flags = native.F_NO_RECOVERY
