"""The batched XYAH Kalman filter equals filterpy's textbook filter, step by step, track by track."""

from __future__ import annotations

import numpy as np
import pytest

from edgenode.core.kalman import KalmanXYAH, xyxy_to_xyah

filterpy_kalman = pytest.importorskip("filterpy.kalman")

WEIGHT_P, WEIGHT_V, ASPECT, ASPECT_V = 1 / 20, 3 / 160, 0.01, 1e-5
FLOOR = 1e-10  # MIN_SIDE squared: the filter's variance floor, relative to each weight


def oracle(xyah: np.ndarray, update: float) -> filterpy_kalman.KalmanFilter:
    """filterpy's 8-D constant-velocity filter set up as KalmanXYAH documents it."""
    kf = filterpy_kalman.KalmanFilter(dim_x=8, dim_z=4)
    h = xyah[3]
    kf.x = np.concatenate((xyah, np.zeros(4)))[:, None]
    std = np.array([2 * WEIGHT_P * h, 2 * WEIGHT_P * h, ASPECT, 2 * WEIGHT_P * h,
                    10 * WEIGHT_V * h, 10 * WEIGHT_V * h, ASPECT_V, 10 * WEIGHT_V * h])
    floor = FLOOR * np.array([4 * WEIGHT_P**2] * 2 + [0, 4 * WEIGHT_P**2]
                             + [100 * WEIGHT_V**2] * 2 + [0, 100 * WEIGHT_V**2])
    kf.P = np.diag(std**2 + floor)
    kf.H = np.hstack((np.eye(4), np.zeros((4, 4))))
    kf.trust = update  # type: ignore[attr-defined]
    return kf


def oracle_predict(kf: filterpy_kalman.KalmanFilter, dt: float) -> None:
    h = kf.x[3, 0]
    kf.F = np.eye(8)
    kf.F[:4, 4:] = dt * np.eye(4)
    position = np.array([WEIGHT_P * h, WEIGHT_P * h, ASPECT, WEIGHT_P * h]) ** 2
    position += FLOOR * np.array([WEIGHT_P**2, WEIGHT_P**2, 0, WEIGHT_P**2])
    velocity = np.array([WEIGHT_V * h, WEIGHT_V * h, ASPECT_V, WEIGHT_V * h]) ** 2
    velocity += FLOOR * np.array([WEIGHT_V**2, WEIGHT_V**2, 0, WEIGHT_V**2])
    kf.Q = np.diag(dt * np.concatenate((position, velocity)))
    kf.predict()


def oracle_update(kf: filterpy_kalman.KalmanFilter, z: np.ndarray) -> None:
    h = kf.x[3, 0]
    variance = (np.array([WEIGHT_P * h, WEIGHT_P * h, ASPECT, WEIGHT_P * h]) ** 2
                + FLOOR * np.array([WEIGHT_P**2, WEIGHT_P**2, 0, WEIGHT_P**2]))
    kf.update(z, R=np.diag(variance / kf.trust))  # --track-update divides the measurement variance


def assert_same(kalman: KalmanXYAH, oracles: list[filterpy_kalman.KalmanFilter]) -> None:
    np.testing.assert_allclose(kalman.mean, np.stack([kf.x[:, 0] for kf in oracles]), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(kalman.covariance, np.stack([kf.P for kf in oracles]), rtol=1e-7, atol=1e-15)


@pytest.mark.parametrize("update", [1.0, 0.25])
def test_matches_filterpy_step_by_step(update: float) -> None:
    rng = np.random.default_rng(7)
    corners = rng.uniform(0.0, 0.5, (5, 2))
    boxes = np.hstack((corners, corners + rng.uniform(0.05, 0.3, (5, 2))))
    start = xyxy_to_xyah(boxes)
    kalman = KalmanXYAH(update=update, time_unit_ns=1_000_000)
    kalman.add(start)
    oracles = [oracle(row, update) for row in start]
    assert_same(kalman, oracles)
    velocity = rng.normal(0.0, 0.002, (5, 4)) * [1, 1, 0.1, 0.2]
    truth = start.copy()
    for step in range(12):
        elapsed_ms = int(rng.choice([1, 1, 2, 3, 5]))  # dropped frames: uneven intervals
        kalman.predict(elapsed_ms * 1_000_000)
        for kf in oracles:
            oracle_predict(kf, float(elapsed_ms))
        assert_same(kalman, oracles)
        truth += elapsed_ms * velocity
        matched = np.flatnonzero(rng.random(5) < 0.7) if step else np.arange(5)  # some tracks miss
        measured = truth[matched] + rng.normal(0.0, 0.003, (len(matched), 4))
        kalman.update(matched, measured)
        for index, z in zip(matched, measured, strict=True):
            oracle_update(oracles[index], z)
        assert_same(kalman, oracles)


def test_rows_are_added_kept_and_dropped_in_order() -> None:
    kalman = KalmanXYAH()
    kalman.add(np.array([[0.1, 0.1, 1.0, 0.1], [0.5, 0.5, 0.5, 0.2]]))
    kalman.predict(33_333_333)
    kalman.add(np.array([[0.9, 0.9, 2.0, 0.05]]))
    assert len(kalman) == 3
    kalman.keep(np.array([2, 0]))
    np.testing.assert_allclose(kalman.mean[:, 0], [0.9, 0.1])
    kalman.keep(np.array([False, True]))
    assert len(kalman) == 1


def test_constant_velocity_is_followed_across_uneven_intervals() -> None:
    kalman = KalmanXYAH(update=1.0)
    box = np.array([[0.2, 0.3, 0.3, 0.5]])
    kalman.add(xyxy_to_xyah(box))
    now, speed = 0, np.array([0.3, 0.1, 0.3, 0.1])  # per second
    for interval_ms in [33, 33, 67, 33, 100, 33, 33, 33, 67, 33] * 3:
        now += interval_ms * 1_000_000
        kalman.predict(interval_ms * 1_000_000)
        kalman.update(np.array([0]), xyxy_to_xyah(box + speed * now / 1e9))
    kalman.predict(100_000_000)
    np.testing.assert_allclose(kalman.xyxy()[0], (box + speed * (now / 1e9 + 0.1))[0], atol=2e-3)


def test_no_elapsed_time_predicts_nothing() -> None:
    kalman = KalmanXYAH()
    kalman.add(np.array([[0.5, 0.5, 1.0, 0.2]]))
    before = kalman.covariance.copy()
    kalman.predict(0)
    kalman.predict(-5)
    np.testing.assert_array_equal(kalman.covariance, before)


def test_xyxy_xyah_round_trip_and_degenerate_boxes() -> None:
    boxes = np.array([[0.0134, 0.02135, 0.12438, 0.691], [0.5, 0.1, 0.5, 0.3]])
    xyah = xyxy_to_xyah(boxes)
    assert xyah[1, 2] == pytest.approx(1e-5 / 0.2)  # zero width becomes MIN_SIDE
    kalman = KalmanXYAH()
    kalman.add(xyah[:1])
    np.testing.assert_allclose(kalman.xyxy(), boxes[:1], atol=1e-12)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="update"):
        KalmanXYAH(update=0.0)
    with pytest.raises(ValueError, match="time_unit_ns"):
        KalmanXYAH(time_unit_ns=0)


def _blocks(kalman: KalmanXYAH) -> tuple[list[list[float]], ...]:
    """Per track: means (8), then per component P_pp, P_pv, P_vv, as Python floats."""
    cov = kalman.covariance
    k = np.arange(4)
    return (kalman.mean.tolist(), cov[:, k, k].tolist(), cov[:, k, k + 4].tolist(), cov[:, k + 4, k + 4].tolist())


def test_each_step_rounds_as_its_formula_exactly() -> None:
    """The kernel's arithmetic, operation by operation in Python floats (IEEE doubles, no fused
    multiply-add): what makes every machine give the same bits, aarch64 included."""
    kalman = KalmanXYAH(update=0.25)
    rng = np.random.default_rng(11)
    corners = rng.uniform(0.0, 0.6, (6, 2))
    kalman.add(xyxy_to_xyah(np.hstack((corners, corners + rng.uniform(0.01, 0.3, (6, 2))))))
    weights_h2 = [WEIGHT_P**2, WEIGHT_P**2, 0.0, WEIGHT_P**2]
    weights_c = [FLOOR * WEIGHT_P**2, FLOOR * WEIGHT_P**2, ASPECT**2, FLOOR * WEIGHT_P**2]
    velocity_h2 = [WEIGHT_V**2, WEIGHT_V**2, 0.0, WEIGHT_V**2]
    velocity_c = [FLOOR * WEIGHT_V**2, FLOOR * WEIGHT_V**2, ASPECT_V**2, FLOOR * WEIGHT_V**2]
    for elapsed_ns in (33_333_333, 16_000_000, 100_000_017):
        means, pp, pv, vv = _blocks(kalman)
        kalman.predict(elapsed_ns)
        dt = elapsed_ns / kalman.time_unit_ns
        expected_mean, expected_pp, expected_pv, expected_vv = [], [], [], []
        for m, p, q, v in zip(means, pp, pv, vv, strict=True):
            h2 = m[3] * m[3]
            expected_mean.append([m[i] + dt * m[4 + i] for i in range(4)] + m[4:])
            expected_pp.append([(((p[i] + (2.0 * dt) * q[i]) + (dt * dt) * v[i]) + (weights_h2[i] * dt) * h2)
                                + weights_c[i] * dt for i in range(4)])
            expected_pv.append([q[i] + dt * v[i] for i in range(4)])
            expected_vv.append([(v[i] + (velocity_h2[i] * dt) * h2) + velocity_c[i] * dt for i in range(4)])
        assert _blocks(kalman) == (expected_mean, expected_pp, expected_pv, expected_vv)
        # Correct tracks 1 and 4.
        means, pp, pv, vv = _blocks(kalman)
        measured = np.array(means)[[1, 4], :4] + rng.normal(0.0, 0.01, (2, 4))
        kalman.update(np.array([1, 4]), measured)
        for track, z in zip((1, 4), measured.tolist(), strict=True):
            m, p, q, v = means[track], pp[track], pv[track], vv[track]
            h2 = m[3] * m[3]
            gains = [(p[i] / ((p[i] + (weights_h2[i] / 0.25) * h2) + weights_c[i] / 0.25),
                      q[i] / ((p[i] + (weights_h2[i] / 0.25) * h2) + weights_c[i] / 0.25)) for i in range(4)]
            steps = [m[i] - z[i] for i in range(4)]
            means[track] = ([m[i] - gains[i][0] * steps[i] for i in range(4)]
                            + [m[4 + i] - gains[i][1] * steps[i] for i in range(4)])
            pp[track] = [p[i] - gains[i][0] * p[i] for i in range(4)]
            pv[track] = [q[i] - gains[i][0] * q[i] for i in range(4)]
            vv[track] = [v[i] - gains[i][1] * q[i] for i in range(4)]
        assert _blocks(kalman) == (means, pp, pv, vv)


def test_signed_corners_are_corners_with_the_far_sides_negated() -> None:
    kalman = KalmanXYAH()
    kalman.add(np.array([[0.5, 0.4, 0.5, 0.2], [0.2, 0.3, 2.0, 0.1]]))
    kalman.predict(33_333_333)
    np.testing.assert_array_equal(kalman.signed_corners(), kalman.corners() * np.array([[1.0], [1.0], [-1.0], [-1.0]]))
    np.testing.assert_array_equal(kalman.xyxy(), kalman.corners().T)


def test_capacity_grows_and_keeps_every_filter() -> None:
    kalman = KalmanXYAH()
    boxes = np.array([[0.01 * i, 0.5, 1.0, 0.1] for i in range(100)])
    for start in range(0, 100, 7):
        kalman.add(boxes[start:start + 7])
    assert len(kalman) == 100
    np.testing.assert_array_equal(kalman.mean[:, :4], boxes)
    with pytest.raises(ValueError, match="one measurement per track"):
        kalman.update(np.array([0, 1]), boxes[:1])
