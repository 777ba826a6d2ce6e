"""IoU matrix and optimal assignment: brute-force oracles, edge cases, and only finite costs reach lapjv."""

from __future__ import annotations

import itertools

import lap
import numpy as np
import pytest

from edgenode.core import assignment
from edgenode.core.assignment import iou_matrix, linear_assignment


def iou_one(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def best_profit(cost: np.ndarray, limit: float, allowed: np.ndarray) -> float:
    """Largest summed (limit - cost) over all matchings of allowed pairs, by enumeration."""
    n, m = cost.shape
    best = 0.0
    for size in range(1, min(n, m) + 1):
        for rows in itertools.combinations(range(n), size):
            for cols in itertools.permutations(range(m), size):
                if all(allowed[r, c] for r, c in zip(rows, cols, strict=True)):
                    best = max(best, sum(limit - cost[r, c] for r, c in zip(rows, cols, strict=True)))
    return best


def test_iou_matrix_matches_pairwise() -> None:
    rng = np.random.default_rng(1)
    a = rng.uniform(0, 1, (7, 4))
    a[:, 2:] = a[:, :2] + rng.uniform(0, 0.4, (7, 2))
    b = np.vstack((a[:3] + 0.02, rng.uniform(0, 0.5, (2, 4)) @ np.array([[1, 0, 1, 0], [0, 1, 0, 1], [0, 0, 1, 0],
                                                                        [0, 0, 0, 1]])))
    expected = np.array([[iou_one(x, y) for y in b] for x in a])
    np.testing.assert_allclose(iou_matrix(a, b), expected, atol=1e-12)
    np.testing.assert_allclose(np.diag(iou_matrix(a, a)), 1.0)


def test_iou_matrix_shapes_and_degenerate_boxes() -> None:
    assert iou_matrix(np.zeros((0, 4)), np.zeros((3, 4))).shape == (0, 3)
    assert iou_matrix(np.zeros((2, 4)), np.zeros((0, 4))).shape == (2, 0)
    flat = np.array([[0.5, 0.1, 0.5, 0.3]])
    assert iou_matrix(flat, flat)[0, 0] == 0.0  # no area, no overlap, no NaN
    assert iou_matrix(flat, np.array([[0.1, 0.1, 0.6, 0.3]]))[0, 0] == 0.0


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (3, 2), (4, 4), (5, 3), (2, 6)])
def test_linear_assignment_is_optimal(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    for _ in range(25):
        cost = rng.uniform(0, 1, shape)
        limit = 0.6
        rows, cols = linear_assignment(cost, limit)
        assert len(set(rows.tolist())) == len(rows) and len(set(cols.tolist())) == len(cols)
        assert np.all(cost[rows, cols] <= limit)
        profit = float(np.sum(limit - cost[rows, cols]))
        assert profit == pytest.approx(best_profit(cost, limit, cost <= limit))


def test_sparse_frames_take_the_direct_path_without_lapjv(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("lapjv called for an unambiguous matrix")

    monkeypatch.setattr(assignment.lap, "lapjv", refuse)
    cost = np.full((4, 5), 1.0)
    cost[0, 3], cost[2, 0], cost[3, 4] = 0.1, 0.2, 0.3
    rows, cols = linear_assignment(cost, 0.5)
    assert sorted(zip(rows.tolist(), cols.tolist(), strict=True)) == [(0, 3), (2, 0), (3, 4)]


def test_lapjv_only_sees_finite_costs(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[np.ndarray] = []
    real = lap.lapjv

    def spy(cost: np.ndarray, **kwargs: object) -> object:
        seen.append(cost.copy())
        return real(cost, **kwargs)

    monkeypatch.setattr(assignment.lap, "lapjv", spy)
    cost = np.array([[0.1, 0.2, np.inf], [0.15, np.nan, 0.3], [np.inf, 0.05, 0.1]])
    rows, cols = linear_assignment(cost, 0.5)
    assert seen and all(np.isfinite(matrix).all() for matrix in seen)
    assert sorted(zip(rows.tolist(), cols.tolist(), strict=True)) == [(0, 0), (1, 2), (2, 1)]


def test_direct_pairs_and_a_contested_block_together() -> None:
    cost = np.full((4, 4), 9.0)
    cost[0, 0] = 0.1  # alone
    cost[1, 1], cost[1, 2], cost[2, 1] = 0.2, 0.3, 0.25  # contested: 1-2 and 2-1 beat 1-1
    rows, cols = linear_assignment(cost, 0.5)
    assert sorted(zip(rows.tolist(), cols.tolist(), strict=True)) == [(0, 0), (1, 2), (2, 1)]


def test_allowed_mask_forbids_pairs() -> None:
    cost = np.array([[0.1, 0.2], [0.3, 0.4]])
    allowed = np.array([[False, True], [True, True]])
    rows, cols = linear_assignment(cost, 1.0, allowed)
    assert sorted(zip(rows.tolist(), cols.tolist(), strict=True)) == [(0, 1), (1, 0)]


def test_pairs_at_the_limit_are_kept() -> None:
    rows, cols = linear_assignment(np.array([[0.75, 0.75], [0.75, 2.0]]), 0.75)
    assert sorted(zip(rows.tolist(), cols.tolist(), strict=True)) == [(0, 1), (1, 0)]


@pytest.mark.parametrize("shape", [(0, 0), (0, 3), (3, 0)])
def test_empty_matrices(shape: tuple[int, int]) -> None:
    rows, cols = linear_assignment(np.zeros(shape), 0.5)
    assert rows.size == cols.size == 0


def test_nothing_allowed_matches_nothing() -> None:
    rows, cols = linear_assignment(np.full((3, 2), 5.0), 0.5)
    assert rows.size == cols.size == 0


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        linear_assignment(np.zeros((2, 2)), float("inf"))
    with pytest.raises(ValueError, match="2-D"):
        linear_assignment(np.zeros(3), 0.5)


def _random_pairs(rng: np.random.Generator, rows: int, cols: int, density: float) -> tuple[list[int], list[int]]:
    mask = rng.random((rows, cols)) < density
    pair_rows, pair_cols = mask.nonzero()
    return pair_rows.tolist(), pair_cols.tolist()


@pytest.mark.parametrize("size", [2, 3, 5, 8])
def test_match_pairs_agrees_with_lapjv(size: int) -> None:
    rng = np.random.default_rng(size)
    for _ in range(200):
        rows, cols = _random_pairs(rng, size, size + int(rng.integers(0, 3)), 0.4)
        if not rows:
            continue
        costs = rng.uniform(0.0, 0.75, len(rows)).tolist()
        got = assignment.match_pairs(np.array(rows), np.array(cols), np.array(costs), 0.75, (size, size + 2))
        expected = assignment._lapjv_block(rows, cols, costs, assignment._half(0.75))
        assert sorted(zip(*(part.tolist() for part in got), strict=True)) == sorted(zip(*expected, strict=True))


def _spy_lapjv(monkeypatch: pytest.MonkeyPatch) -> list[np.ndarray]:
    calls: list[np.ndarray] = []
    real = lap.lapjv

    def spy(cost: np.ndarray, **kwargs: object) -> object:
        calls.append(cost)
        return real(cost, **kwargs)

    monkeypatch.setattr(assignment.lap, "lapjv", spy)
    return calls


def test_match_pairs_leaves_near_ties_to_lapjv(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _spy_lapjv(monkeypatch)
    # Two tracks equally good for one box (say two tracks started on the same spot).
    rows, cols = assignment.match_pairs(np.array([0, 0]), np.array([3, 5]), np.array([0.2, 0.2]), 0.75, (1, 6))
    assert len(calls) == 1 and rows.tolist() == [0] and cols[0] in (3, 5)
    # A clear winner needs no LAPJV, in a group of one row, one column or several of each.
    for pairs in (([0, 0, 1], [3, 5, 5], [0.2, 0.1, 0.3]), ([0, 1, 1, 2], [0, 0, 1, 1], [0.1, 0.3, 0.2, 0.4]),
                  ([0, 0, 1, 2, 2, 3], [0, 1, 1, 1, 2, 2], [0.1, 0.2, 0.15, 0.5, 0.3, 0.05])):
        got = assignment.match_pairs(np.array(pairs[0]), np.array(pairs[1]), np.array(pairs[2]), 0.75, (4, 6))
        expected = assignment._lapjv_block(*pairs, assignment._half(0.75))
        assert sorted(zip(*(part.tolist() for part in got), strict=True)) == sorted(zip(*expected, strict=True))
    assert len(calls) == 4  # the three checks above, none from the kernel


def test_big_contested_groups_go_to_lapjv(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(4)
    cost = rng.uniform(0.0, 0.5, (40, 40))  # every pair allowed: one group of 40 rows, too big to try
    least_total = float(lap.lapjv(cost)[0])
    calls = _spy_lapjv(monkeypatch)
    rows, cols = linear_assignment(cost, 0.75)
    assert len(calls) == 1 and len(rows) == 40
    assert float(np.sum(cost[rows, cols])) == pytest.approx(least_total)


def test_a_failing_solver_raises_its_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object, **__: object) -> None:
        raise MemoryError("no room for LAPJV")

    monkeypatch.setattr(assignment.lap, "lapjv", broken)
    with pytest.raises(MemoryError, match="no room"):
        assignment.match_pairs(np.array([0, 0]), np.array([0, 1]), np.array([0.2, 0.2]), 0.75, (1, 2))
    # The next call is unaffected.
    monkeypatch.undo()
    rows, _ = assignment.match_pairs(np.array([0]), np.array([1]), np.array([0.2]), 0.75, (1, 2))
    assert rows.tolist() == [0]


def test_match_pairs_refuses_pairs_outside_its_shape() -> None:
    with pytest.raises(ValueError, match="outside"):
        assignment.match_pairs(np.array([0, 3]), np.array([0, 1]), np.array([0.2, 0.2]), 0.75, (3, 2))
    with pytest.raises(ValueError, match="aligned"):
        assignment.match_pairs(np.array([0, 1]), np.array([0]), np.array([0.2, 0.2]), 0.75, (3, 2))


@pytest.mark.parametrize("shape", [(6, 6), (9, 7), (12, 12)])
def test_match_pairs_is_optimal_with_many_pairs(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(shape[0])
    for _ in range(10):
        cost = rng.uniform(0, 1, shape)
        limit = 0.45
        allowed = cost <= limit
        rows, cols = linear_assignment(cost, limit)
        assert len(set(rows.tolist())) == len(rows) and len(set(cols.tolist())) == len(cols)
        assert all(allowed[rows, cols])
        profit = float(np.sum(limit - cost[rows, cols]))
        lapjv_rows, lapjv_cols = assignment.solve_block(cost, allowed, limit)
        assert profit == pytest.approx(float(np.sum(limit - cost[lapjv_rows, lapjv_cols])))


def test_iou_signed_is_iou_matrix() -> None:
    rng = np.random.default_rng(5)
    a = rng.uniform(0, 1, (6, 4))
    a[:, 2:] = a[:, :2] + rng.uniform(0, 0.4, (6, 2))
    b = a[::-1] + 0.03
    signed_a, signed_b = a.T.copy(), b.T.copy()
    signed_a[2:] *= -1
    signed_b[2:] *= -1
    got = assignment.iou_signed(signed_a, assignment.signed_area(signed_a), signed_b, assignment.signed_area(signed_b))
    expected = np.array([[iou_one(x, y) for y in b] for x in a])
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_a_solver_answering_more_pairs_than_there_is_room_for_is_refused() -> None:
    from edgenode.kernels import track as native

    bogus = native.register_solver(lambda rows, cols, costs, half: (rows * 2, cols * 2))
    rows, cols, costs = np.array([0, 0], np.int64), np.array([0, 1], np.int64), np.array([0.2, 0.2])  # a near tie
    kernels = native.functions()
    scratch = np.empty(kernels.match_scratch(2, 1, 2), np.int64)
    out = np.full((2, 2), -1, np.int64)
    result = kernels.match_pairs(rows.ctypes.data, cols.ctypes.data, costs.ctypes.data, 2, 0.75, 1, 2,
                                 scratch.ctypes.data, len(scratch), bogus, out[0].ctypes.data, out[1].ctypes.data, 1)
    assert result < 0 and (out == -1).all()
    with pytest.raises(RuntimeError, match="room for 1"):
        native.raise_failure(result, scratch.ctypes.data)
