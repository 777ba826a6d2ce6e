"""Constant-velocity Kalman filters over XYAH boxes, all tracks at once, in native code.

Each track's state is the box centre x, y, aspect a = w/h and height h, plus their velocities
(8 values), the model ByteTrack and the EdgeFirst tracker use. The motion matrix couples each
component only with its own velocity, the measurement reads the four positions, and every noise
matrix is diagonal, so each track's 8x8 covariance is four independent 2x2 blocks
(position-position, position-velocity, velocity-velocity per component). The filter keeps just
those blocks, 20 doubles per track in one array, and predicts and corrects in C
(``edgenode/kernels/track.c``, the kernel :class:`~edgenode.core.bytetrack.ByteTracker`'s update
runs too): the same numbers as the textbook 8x8 filter (the tests check it against filterpy step by
step), each rounded the same on every machine.

Time is camera time: ``predict(dt)`` takes the elapsed time in filter time units
(``time_unit_ns``, default 1/30 s), so a dropped frame moves a box twice as far and adds twice the
process noise. At 30 fps this is exactly ByteTrack's per-frame filter, whose noise weights are
relative to the box height.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from edgenode.kernels import track as native

Float64Array = NDArray[np.float64]

# Smallest box side used when converting to XYAH, as in the EdgeFirst tracker (track.c's MIN_SIDE).
MIN_SIDE = 1e-5
_MIN_SIDE = np.array(MIN_SIDE)
_WIDTH = native.STATE_WIDTH
_PP, _PV, _VV = slice(8, 12), slice(12, 16), slice(16, 20)


def xyxy_to_xyah(boxes: NDArray[np.floating]) -> Float64Array:
    """(N, 4) x1, y1, x2, y2 -> (N, 4) centre x, centre y, aspect w/h, height (sides at least MIN_SIDE)."""
    corners = np.asarray(boxes, np.float64).reshape(-1, 4)
    xyah = np.empty_like(corners)
    xyah[:, 0] = 0.5 * corners[:, 0] + 0.5 * corners[:, 2]
    xyah[:, 1] = 0.5 * corners[:, 1] + 0.5 * corners[:, 3]
    sides = np.maximum(corners[:, 2:] - corners[:, :2], _MIN_SIDE)
    xyah[:, 2] = sides[:, 0] / sides[:, 1]
    xyah[:, 3] = sides[:, 1]
    return xyah


class KalmanXYAH:
    """Kalman filters for N boxes, batched; tracks are added, updated and dropped by index.

    Noise (standard deviations, per component x, y, a, h; ``h`` is the box height):

    - measurement: ``position_weight*h, position_weight*h, aspect_std, position_weight*h``;
    - process, per time unit: the same for positions, and ``velocity_weight*h`` (``aspect_velocity_std``
      for the aspect) for velocities; variances grow linearly with the elapsed time;
    - initial: twice the measurement noise for x, y and h, ten times the per-unit process noise for
      their velocities, and ``aspect_std`` / ``aspect_velocity_std`` for the aspect (velocities start at 0).

    The weights are ByteTrack's (1/20 and 1/160 per frame) with the velocity weight tripled: that
    is the velocity noise EdgeFirst's ``x += 3 v`` motion term amounts to, and it follows turning
    objects better (BENCHMARKS.md). Every variance also has a floor of ``(weight * MIN_SIDE)^2``, so
    none vanishes for a flat box.

    ``update`` (``--track-update``, in (0, 1]) is how far a match pulls a track: the measurement
    variance is divided by it, so the filter trusts a detection less the lower it is; 1 is the
    textbook filter. (EdgeFirst's tracker instead scales the innovation by it while shrinking the
    covariance as for a full update, which makes the gain collapse and tracks lag behind moving
    objects; BENCHMARKS.md measures both.)

    The maths is the kernel's (``edgenode/kernels/track.c``), driven by the parameters this class
    writes; a :class:`~edgenode.core.bytetrack.ByteTracker` runs the same kernel inside its update,
    so a subclass changes the filter through those parameters (the benchmark's ablation variants do),
    not by overriding methods.
    """

    def __init__(
        self,
        *,
        update: float = 0.25,
        time_unit_ns: int = 33_333_333,
        position_weight: float = 1.0 / 20.0,
        velocity_weight: float = 3.0 / 160.0,
        aspect_std: float = 0.01,
        aspect_velocity_std: float = 1e-5,
    ) -> None:
        if not 0.0 < update <= 1.0:
            raise ValueError(f"update must be in (0, 1], got {update}")
        if time_unit_ns <= 0:
            raise ValueError(f"time_unit_ns must be positive, got {time_unit_ns}")
        self.update_rate = update
        self.time_unit_ns = time_unit_ns
        # Variances are (factor * h^2 + constant), per component.
        floor = MIN_SIDE * MIN_SIDE
        position_h2 = np.array([1.0, 1.0, 0.0, 1.0]) * position_weight**2
        position_c = np.array([floor * position_weight**2] * 2 + [aspect_std**2, floor * position_weight**2])
        velocity_h2 = np.array([1.0, 1.0, 0.0, 1.0]) * velocity_weight**2
        velocity_c = np.array([floor * velocity_weight**2] * 2 + [aspect_velocity_std**2, floor * velocity_weight**2])
        # What the kernel reads (track.c's K_*): the filter's noise, already in the form each step uses.
        k = self._parameters = np.zeros(native.K_SIZE)
        k[native.K_TIME_UNIT_NS] = time_unit_ns
        k[native.K_MODEL] = native.MODEL_EDGENODE
        k[native.K_UPDATE] = update
        # Initial: twice the measurement noise for positions, ten times the process noise for velocities.
        k[native.K_INIT_PP_H2:][:4] = 4.0 * position_h2
        k[native.K_INIT_PP_C:][:4] = position_c * [4.0, 4.0, 1.0, 4.0]
        k[native.K_INIT_VV_H2:][:4] = 100.0 * velocity_h2
        k[native.K_INIT_VV_C:][:4] = velocity_c * [100.0, 100.0, 1.0, 100.0]
        # Process noise per time unit (times the elapsed time when predicting).
        k[native.K_POS_H2:][:4], k[native.K_POS_C:][:4] = position_h2, position_c
        k[native.K_VEL_H2:][:4], k[native.K_VEL_C:][:4] = velocity_h2, velocity_c
        # Measurement noise R = R0 / update.
        k[native.K_INNOV_H2:][:4] = position_h2 / update
        k[native.K_INNOV_C:][:4] = position_c / update
        self._kernels = native.functions()
        # The header a tracker's kernel reads (track count, state address and capacity): it updates the
        # count in place, and finds the state wherever it has moved.
        self._header = np.zeros(3, np.int64)
        self._size = self._header[native.FILTER_COUNT:native.FILTER_COUNT + 1]
        self._state: Float64Array = np.zeros((0, _WIDTH))
        self._reserve(16)

    def __len__(self) -> int:
        return int(self._size[0])

    def _reserve(self, tracks: int) -> None:
        """Room for at least ``tracks`` filters (the state array grows by doubling; its address changes)."""
        if tracks <= len(self._state):
            return
        grown = np.zeros((max(tracks, 2 * len(self._state)), _WIDTH))
        count = len(self)
        grown[:count] = self._state[:count]
        self._state = grown
        self._header[native.FILTER_STATE] = grown.ctypes.data
        self._header[native.FILTER_CAPACITY] = len(grown)

    @property
    def _live(self) -> Float64Array:
        live: Float64Array = self._state[:len(self)]
        return live

    # --- tracks ----------------------------------------------------------------------------------

    def add(self, xyah: Float64Array) -> None:
        """Start one filter per measured (M, 4) XYAH box, after the existing ones."""
        rows = np.ascontiguousarray(np.asarray(xyah, np.float64).reshape(-1, 4))
        count = len(self)
        self._reserve(count + len(rows))
        added = self._kernels.kalman_add(self._parameters.ctypes.data, self._state.ctypes.data, count,
                                         len(self._state), rows.ctypes.data, len(rows))
        if added < 0:
            raise RuntimeError("Kalman filter capacity exceeded")  # _reserve prevents it
        self._size[0] = added

    def keep(self, tracks: NDArray[np.bool_] | NDArray[np.intp]) -> None:
        """Keep only ``tracks`` (a boolean mask or index array), in that order."""
        kept = self._live[tracks]
        self._state[:len(kept)] = kept
        self._size[0] = len(kept)

    # --- filter ----------------------------------------------------------------------------------

    def predict(self, elapsed_ns: int) -> None:
        """Advance every filter by ``elapsed_ns`` of camera time (nothing for 0 or less)."""
        self._kernels.kalman_predict(self._parameters.ctypes.data, self._state.ctypes.data, len(self),
                                     int(elapsed_ns))

    def update(self, tracks: NDArray[np.intp] | slice, xyah: Float64Array) -> None:
        """Correct filters ``tracks`` (unique indices, or ``slice(None)`` for all in order) with their
        measured (len(tracks), 4) XYAH boxes."""
        index = np.ascontiguousarray(np.arange(len(self))[tracks], np.int64)
        rows = np.ascontiguousarray(np.asarray(xyah, np.float64).reshape(-1, 4))
        if len(rows) != len(index):
            raise ValueError(f"need one measurement per track, got {len(rows)} for {len(index)}")
        self._kernels.kalman_update(self._parameters.ctypes.data, self._state.ctypes.data, len(self),
                                    index.ctypes.data, rows.ctypes.data, len(rows))

    # --- views -----------------------------------------------------------------------------------

    @property
    def mean(self) -> Float64Array:
        """(N, 8) states: x, y, a, h, then their velocities per time unit."""
        mean: Float64Array = self._live[:, :8].copy()
        return mean

    @property
    def covariance(self) -> Float64Array:
        """(N, 8, 8) full covariances rebuilt from the 2x2 blocks (for tests and debugging)."""
        state = self._live
        cov = np.zeros((len(state), 8, 8))
        k = np.arange(4)
        cov[:, k, k] = state[:, _PP]
        cov[:, k, k + 4] = state[:, _PV]
        cov[:, k + 4, k] = state[:, _PV]
        cov[:, k + 4, k + 4] = state[:, _VV]
        return cov

    def corners(self) -> Float64Array:
        """(4, N) current boxes as rows x1, y1, x2, y2."""
        corners: Float64Array = self._corners(signed=False).T.copy()
        return corners

    def signed_corners(self) -> Float64Array:
        """(4, N) current boxes as rows x1, y1, -x2, -y2 (what the tracker's overlap test reads)."""
        corners: Float64Array = self._corners(signed=True).T.copy()
        return corners

    def xyxy(self) -> Float64Array:
        """(N, 4) current boxes as x1, y1, x2, y2."""
        return self._corners(signed=False)

    def _corners(self, signed: bool) -> Float64Array:
        out = np.empty((len(self), 4))
        self._kernels.kalman_corners(self._state.ctypes.data, len(self), out.ctypes.data, int(signed))
        return out
