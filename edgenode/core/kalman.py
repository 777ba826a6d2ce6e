"""Constant-velocity Kalman filters over XYAH boxes, all tracks at once.

Each track's state is the box centre x, y, aspect a = w/h and height h, plus their velocities
(8 values), the model ByteTrack and the EdgeFirst tracker use. The motion matrix couples each
component only with its own velocity, the measurement reads the four positions, and every noise
matrix is diagonal, so each track's 8x8 covariance is four independent 2x2 blocks
(position-position, position-velocity, velocity-velocity per component). The filter keeps just
those blocks as ``(N, 4)`` arrays and runs predict and update as a handful of elementwise numpy
operations over all tracks: the same numbers as the textbook 8x8 filter (the tests check it
against filterpy step by step), with no per-track Python loop.

Time is camera time: ``predict(dt)`` takes the elapsed time in filter time units
(``time_unit_ns``, default 1/30 s), so a dropped frame moves a box twice as far and adds twice the
process noise. At 30 fps this is exactly ByteTrack's per-frame filter, whose noise weights are
relative to the box height.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Float64Array = NDArray[np.float64]

# Smallest box side used when converting to XYAH, as in the EdgeFirst tracker.
MIN_SIDE = 1e-5
_MIN_SIDE = np.array(MIN_SIDE)

# Rows of the (22, N) state, component-major so every block is contiguous: for the four
# components (x, y, a, h), their values, velocities, then the 2x2 covariance blocks P_pp, P_pv,
# P_vv; then a scratch row and a row of ones. The scratch row holds the squared height when
# predicting and updating, so that prediction, noise included, is one matrix product, and the
# width (a h) when reading the corners, so that they are one matrix product too; it is written
# before every use.
_POS, _VEL, _PP, _PV, _VV = (slice(4 * i, 4 * i + 4) for i in range(5))
_H2, _ONE = 20, 21
_W = _H2
# Which gain (K_p of x, y, a, h, then K_v) multiplies each of the 20 state rows in an update.
_GAIN_ROWS = np.array([0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 6, 7])
# The state rows each gain multiplies: x_pos (for the means, minus the measurement), P_pp, P_pv, P_pv.
_FACTOR_ROWS = np.array([0, 1, 2, 3, 0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 12, 13, 14, 15])
_ROWS = 22


def xyxy_to_xyah(boxes: NDArray[np.floating]) -> Float64Array:
    """(N, 4) x1, y1, x2, y2 -> (N, 4) centre x, centre y, aspect w/h, height (sides at least MIN_SIDE)."""
    xyah: Float64Array = xyxy_rows_to_xyah_rows(np.asarray(boxes, np.float64).reshape(-1, 4).T).T
    return xyah


# Linear maps between corners and centre/size: [cx, cy, w, h] = _TO_CENTRE @ [x1, y1, x2, y2].
_TO_CENTRE = np.array([[0.5, 0.0, 0.5, 0.0], [0.0, 0.5, 0.0, 0.5], [-1.0, 0.0, 1.0, 0.0], [0.0, -1.0, 0.0, 1.0]])
_TO_CORNERS = np.linalg.inv(_TO_CENTRE)
# The same from the state's x, y, h and width rows: corners = _STATE_TO_CORNERS @ state. Each
# corner is one centre plus or minus an exact half size (the other terms are exact zeros), so this
# rounds exactly as the 4x4 product over [cx, cy, w, h] does.
_STATE_TO_CORNERS = np.zeros((4, _ROWS))
_STATE_TO_CORNERS[:, [0, 1, _W, 3]] = _TO_CORNERS
_STATE_TO_SIGNED_CORNERS = _STATE_TO_CORNERS * np.array([[1.0], [1.0], [-1.0], [-1.0]])
# Corner rows x1, y1, x2, y2 -> signed rows x1, y1, -x2, -y2, then x, y, w, h (each an exact
# sum of at most two exact products, so rounded as the plain subtractions and halvings are).
XYXY_TO_SIGNED_AND_CENTRE = np.vstack((np.diag([1.0, 1.0, -1.0, -1.0]), _TO_CENTRE))


def xyxy_rows_to_xyah_rows(corners: Float64Array) -> Float64Array:
    """(4, N) rows x1, y1, x2, y2 -> (4, N) rows x, y, a, h."""
    return centre_rows_to_xyah_rows(_TO_CENTRE @ corners)


def centre_rows_to_xyah_rows(centre: Float64Array) -> Float64Array:
    """(4, N) rows x, y, w, h -> the same rows, in place, as x, y, a, h (sides at least MIN_SIDE)."""
    np.maximum(centre[2:], _MIN_SIDE, out=centre[2:])
    centre[2] /= centre[3]
    return centre


def _block_map(*blocks: tuple[slice | int, slice | int, float | Float64Array]) -> Float64Array:
    """A (22, 22) matrix M for ``M @ state``; each (to, from, value) block is ``value * I`` or a column."""
    matrix = np.zeros((_ROWS, _ROWS))
    for target, source, value in blocks:
        if isinstance(source, int):
            matrix[target, source] = value
        else:
            matrix[target, source] = np.multiply(value, np.eye(4))
    return matrix


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
        # S = P_pp + R = _innovation @ state (with the squared height filled in); R = R0 / update.
        self._innovation = _block_map((_PP, _PP, 1.0))[_PP]
        self._innovation[:, _H2] = position_h2 / update
        self._innovation[:, _ONE] = position_c / update
        self._innovation_twice = np.vstack((self._innovation, self._innovation))  # S for K_p, then for K_v
        # Initial state column = _initial @ [x, y, a, h, h^2, 1].
        self._initial_h2 = np.zeros(_ROWS)
        self._initial_c = np.zeros(_ROWS)
        self._initial_h2[_PP], self._initial_c[_PP] = 4.0 * position_h2, position_c * [4.0, 4.0, 1.0, 4.0]
        self._initial_h2[_VV], self._initial_c[_VV] = 100.0 * velocity_h2, velocity_c * [100.0, 100.0, 1.0, 100.0]
        self._initial_c[_ONE] = 1.0
        # Prediction: state <- (M0 + dt M1 + dt^2 M2) @ state applies F = [[1, dt], [0, 1]] per
        # component to the means, F P F^T to the 2x2 blocks, and adds dt * process noise.
        self._motion = np.stack((
            np.eye(_ROWS),
            _block_map((_POS, _VEL, 1.0), (_PP, _PV, 2.0), (_PV, _VV, 1.0),
                       (_PP, _H2, position_h2), (_PP, _ONE, position_c),
                       (_VV, _H2, velocity_h2), (_VV, _ONE, velocity_c)),
            _block_map((_PP, _VV, 1.0)),
        ))
        # No entry mixes two of M0, M1, M2 and M2's entries are ones, so the motion matrix for a dt
        # is M0 with M1's entries times dt and M2's set to dt^2: the same numbers as the sum above,
        # written into a kept matrix (the last dt's, reused while the frame rate holds).
        if np.any(np.count_nonzero(self._motion, axis=0) > 1) or np.any(self._motion[2][self._motion[2] != 0] != 1):
            raise AssertionError("motion terms overlap")
        self._motion_now = self._motion[0].copy()
        self._motion_flat = self._motion_now.reshape(-1)
        # Entries times dt, then the dt^2 entries (their factor is set to dt, times dt).
        self._dt_entries = np.concatenate((np.flatnonzero(self._motion[1]), np.flatnonzero(self._motion[2])))
        self._dt_factors = self._motion[1].reshape(-1)[self._dt_entries]
        self._dt2_start = np.count_nonzero(self._motion[1])
        self._motion_ns = 0
        self._state: Float64Array = np.zeros((_ROWS, 0))

    def __len__(self) -> int:
        return int(self._state.shape[1])

    # --- tracks ----------------------------------------------------------------------------------

    def add(self, xyah: Float64Array) -> None:
        """Start one filter per measured (M, 4) XYAH box, after the existing ones."""
        xyah_rows = np.asarray(xyah, np.float64).reshape(-1, 4).T
        state = np.multiply.outer(self._initial_h2, np.square(xyah_rows[3]))
        state += self._initial_c[:, None]
        state[_POS] = xyah_rows
        self._state = np.concatenate((self._state, state), axis=1)

    def keep(self, tracks: NDArray[np.bool_] | NDArray[np.intp]) -> None:
        """Keep only ``tracks`` (a boolean mask or index array), in that order."""
        self._state = self._state[:, tracks]

    # --- filter ----------------------------------------------------------------------------------

    def predict(self, elapsed_ns: int) -> None:
        """Advance every filter by ``elapsed_ns`` of camera time (nothing for 0 or less)."""
        state = self._state
        if elapsed_ns <= 0 or not state.shape[1]:
            return
        if elapsed_ns != self._motion_ns:
            dt = elapsed_ns / self.time_unit_ns
            factors = self._dt_factors
            factors[self._dt2_start:] = dt
            self._motion_flat[self._dt_entries] = factors * dt
            self._motion_ns = elapsed_ns
        np.square(state[3], out=state[_H2])
        self._state = self._motion_now.dot(state)  # ndarray.dot: the same BLAS product as @, called faster

    def update(self, tracks: NDArray[np.intp] | slice, xyah: Float64Array) -> None:
        """Correct filters ``tracks`` (unique indices, or ``slice(None)`` for all in order) with their
        measured (len(tracks), 4) XYAH boxes."""
        every = isinstance(tracks, slice)
        s = self._state if isinstance(tracks, slice) else self._state.take(tracks, axis=1)
        count = s.shape[1]
        if not count:
            return
        np.square(s[3], out=s[_H2])
        # K = [P_pp; P_pv] / S per component, S = P_pp + R.
        gain = s[8:16] / self._innovation_twice.dot(s)
        # x += K (z - x_pos); P -= K S K^T, which per component is P_pp -= K_p P_pp,
        # P_pv -= K_p P_pv, P_vv -= K_v P_pv: one product of gains and factors over all 20 rows
        # (the means' factor is x_pos - z, so that all 20 rows are subtracted).
        factors = s.take(_FACTOR_ROWS, axis=0)  # x_pos, x_pos, P_pp, P_pv, P_pv
        steps = factors[:8].reshape(2, 4, count)
        steps -= np.asarray(xyah, np.float64).T
        factors *= gain.take(_GAIN_ROWS, axis=0)
        s[:20] -= factors
        if not every:
            self._state[:, tracks] = s

    # --- views -----------------------------------------------------------------------------------

    @property
    def mean(self) -> Float64Array:
        """(N, 8) states: x, y, a, h, then their velocities per time unit."""
        mean: Float64Array = self._state[:8].T.copy()
        return mean

    @property
    def covariance(self) -> Float64Array:
        """(N, 8, 8) full covariances rebuilt from the 2x2 blocks (for tests and debugging)."""
        n = self._state.shape[1]
        cov = np.zeros((n, 8, 8))
        k = np.arange(4)
        cov[:, k, k] = self._state[_PP].T
        cov[:, k, k + 4] = self._state[_PV].T
        cov[:, k + 4, k] = self._state[_PV].T
        cov[:, k + 4, k + 4] = self._state[_VV].T
        return cov

    def corners(self) -> Float64Array:
        """(4, N) current boxes as rows x1, y1, x2, y2."""
        state = self._state
        np.multiply(state[2], state[3], out=state[_W])
        corners: Float64Array = _STATE_TO_CORNERS.dot(state)
        return corners

    def signed_corners(self) -> Float64Array:
        """(4, N) current boxes as rows x1, y1, -x2, -y2 (what the tracker's overlap test reads)."""
        if type(self).corners is not KalmanXYAH.corners:  # a subclass with boxes of its own
            signed = np.array(self.corners(), np.float64)
            np.negative(signed[2:], out=signed[2:])
            return signed
        state = self._state
        np.multiply(state[2], state[3], out=state[_W])
        corners: Float64Array = _STATE_TO_SIGNED_CORNERS.dot(state)
        return corners

    def xyxy(self) -> Float64Array:
        """(N, 4) current boxes as x1, y1, x2, y2."""
        boxes: Float64Array = self.corners().T
        return boxes
