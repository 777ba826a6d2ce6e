"""Box overlap and optimal one-to-one assignment (LAPJV from ``lap``).

A tracker's frame has few contested pairs: most boxes overlap one track and most tracks one box,
and those pairs are matched directly. The rest split into small independent groups (two or three
objects close together); :func:`match_pairs` (the native kernel of ``edgenode/kernels/track.c``, which
the tracker's update runs too) tries every matching of a small group, much cheaper than a LAPJV call,
and leaves big groups and near ties to LAPJV (:func:`solve_lapjv`, called back from C), so the result
is always LAPJV's.
"""

from __future__ import annotations

import math

import lap
import numpy as np
from numpy.typing import NDArray

from edgenode.kernels import track as native

# Floor of the union area, only to avoid 0 / 0 between two boxes without area.
MIN_UNION = 1e-12

_EMPTY = np.zeros(0, np.intp)


def iou_matrix(a: NDArray[np.floating], b: NDArray[np.floating]) -> NDArray[np.float64]:
    """Intersection over union of every box in ``a`` (N, 4) with every box in ``b`` (M, 4), x1 y1 x2 y2.

    Boxes with no area overlap nothing (IoU 0), even themselves.
    """
    signed_a, signed_b = (np.array(np.asarray(boxes, np.float64).reshape(-1, 4).T) for boxes in (a, b))
    for signed in (signed_a, signed_b):
        np.negative(signed[2:], out=signed[2:])
    return iou_signed(signed_a, signed_area(signed_a), signed_b, signed_area(signed_b))


_ZERO = np.zeros(())
_MIN_UNION = np.array(MIN_UNION)


def signed_area(signed: NDArray[np.float64]) -> NDArray[np.float64]:
    """Areas ``(x2 - x1) (y2 - y1)`` of boxes given as (4, N) signed rows x1, y1, -x2, -y2."""
    sides = signed[:2] + signed[2:]  # -(x2 - x1), -(y2 - y1)
    area: NDArray[np.float64] = sides[0] * sides[1]
    return area


def iou_signed(a: NDArray[np.float64], a_area: NDArray[np.float64], b: NDArray[np.float64],
               b_area: NDArray[np.float64]) -> NDArray[np.float64]:
    """:func:`iou_matrix` of boxes given as (4, N) and (4, M) signed rows x1, y1, -x2, -y2 with their areas.

    The signs make both ends of the overlap one maximum: ``max(x1) + max(-x2)`` is minus the overlap
    ``min(x2) - max(x1)``, exactly. The same arithmetic as unsigned corners, in fewer numpy calls.
    """
    bounds = np.maximum(a[:, :, None], b[:, None, :])
    overlap = bounds[:2] + bounds[2:]  # minus the overlap in x and y
    np.minimum(overlap, _ZERO, out=overlap)
    inter = overlap[0] * overlap[1]
    union = a_area[:, None] + b_area
    union -= inter
    np.maximum(union, _MIN_UNION, out=union)
    inter /= union
    iou: NDArray[np.float64] = inter
    return iou


Pairs = tuple[list[int], list[int]]


def _half(cost_limit: float) -> float:
    """The cost of leaving one row or column unmatched (see :func:`solve_block`; ``track.c`` computes it alike)."""
    return 0.5 * (cost_limit + 1e-9 * max(1.0, abs(cost_limit)))


def match_pairs(rows: NDArray[np.integer], cols: NDArray[np.integer], costs: NDArray[np.floating],
                cost_limit: float, shape: tuple[int, int]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """The optimal matching among candidate pairs ``(rows[i], cols[i])`` (no pair twice, each within
    ``shape``) costing ``costs[i]`` (at most ``cost_limit``), as :func:`linear_assignment` defines it.

    Pairs whose row and column are in no other pair are matched directly; the contested rest is
    solved group by group, and LAPJV decides big groups and near ties (``track.c``'s ``match_pairs``).
    """
    pair_rows = np.ascontiguousarray(rows, np.int64)
    pair_cols = np.ascontiguousarray(cols, np.int64)
    pair_costs = np.ascontiguousarray(costs, np.float64)
    n = len(pair_rows)
    if pair_cols.shape != (n,) or pair_costs.shape != (n,) or pair_rows.ndim != 1:
        raise ValueError(f"need aligned 1-D rows, cols and costs, got {pair_rows.shape}, {pair_cols.shape} "
                         f"and {pair_costs.shape}")
    row_space, col_space = shape
    if n and not (pair_rows.min() >= 0 and pair_rows.max() < row_space
                  and pair_cols.min() >= 0 and pair_cols.max() < col_space):
        raise ValueError(f"pairs outside the shape {shape}")
    kernels = native.functions()
    scratch = np.empty(kernels.match_scratch(n, row_space, col_space), np.int64)
    out = np.empty((2, n), np.int64)
    matched = kernels.match_pairs(pair_rows.ctypes.data, pair_cols.ctypes.data, pair_costs.ctypes.data, n,
                                  float(cost_limit), row_space, col_space, scratch.ctypes.data, len(scratch),
                                  LAPJV_SOLVER, out[0].ctypes.data, out[1].ctypes.data, n)
    if matched < 0:
        native.raise_failure(matched, scratch.ctypes.data)
    return out[0, :matched].astype(np.intp), out[1, :matched].astype(np.intp)


def solve_lapjv(rows: list[int], cols: list[int], costs: list[float], half: float) -> Pairs:
    """LAPJV over the contested pairs ``(rows[i], cols[i])`` costing ``costs[i]``, with unmatched slots
    costing ``half`` (what the kernel calls back for big groups and near ties)."""
    return _lapjv_block(rows, cols, costs, half)


# The C function pointer the kernels call back.
LAPJV_SOLVER = native.register_solver(solve_lapjv)


def _lapjv_block(rows: list[int], cols: list[int], costs: list[float], half: float) -> Pairs:
    """:func:`solve_block` over the block of all of ``rows`` and ``cols`` (each ascending)."""
    block_rows, block_cols = sorted(set(rows)), sorted(set(cols))
    row_at = {row: i for i, row in enumerate(block_rows)}
    col_at = {col: j for j, col in enumerate(block_cols)}
    local_rows = np.array([row_at[row] for row in rows], np.intp)
    local_cols = np.array([col_at[col] for col in cols], np.intp)
    cost = np.zeros((len(block_rows), len(block_cols)))
    allowed = np.zeros(cost.shape, np.bool_)
    cost[local_rows, local_cols] = costs
    allowed[local_rows, local_cols] = True
    matched_rows, matched_cols = solve_block(cost, allowed, 2.0 * half, nudged=True)
    return [block_rows[i] for i in matched_rows.tolist()], [block_cols[j] for j in matched_cols.tolist()]


def solve_block(cost: NDArray[np.float64], allowed: NDArray[np.bool_], cost_limit: float, nudged: bool = False
                ) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """LAPJV over a contested block: matched (rows, columns) of ``cost`` among ``allowed`` pairs.

    The block goes to ``lap.lapjv`` as a square matrix extended with "unmatched" slots costing
    ``cost_limit / 2`` each: what ``extend_cost`` with ``cost_limit`` builds, done here in numpy at
    a third of the cost, with finite costs only. ``nudged``: ``cost_limit`` is already the nudged
    limit (twice the slot cost) below.
    """
    n_rows, n_cols = allowed.shape
    # Leaving a row (or a column) unmatched costs half the limit; a pair at the limit ties with
    # leaving both apart, so the limit is nudged up to keep such pairs. Forbidden pairs cost more
    # than leaving both apart.
    half = 0.5 * cost_limit if nudged else _half(cost_limit)
    square = np.full((n_rows + n_cols, n_rows + n_cols), half)
    square[:n_rows, :n_cols] = np.where(allowed, cost, 4.0 * abs(half) + 1.0)
    square[n_rows:, n_cols:] = 0.0
    row_to_col = lap.lapjv(square)[1][:n_rows]
    matched = (row_to_col < n_cols).nonzero()[0]
    matched = matched[allowed[matched, row_to_col[matched]]]
    return matched, row_to_col[matched]


def linear_assignment(
    cost: NDArray[np.floating], cost_limit: float, allowed: NDArray[np.bool_] | None = None
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Rows and columns of the optimal matching of ``cost`` (N, M) among pairs costing at most ``cost_limit``.

    ``allowed`` (default ``cost <= cost_limit``; NaN is never allowed) may forbid more pairs; an
    allowed pair must cost at most ``cost_limit``. The matching minimises the summed cost of the
    chosen pairs plus ``cost_limit`` for every row-column pair left apart, i.e. it maximises the
    summed ``cost_limit - cost`` of the matched pairs (LAPJV's ``cost_limit`` semantics). Any shape
    works, including empty and rectangular ones.

    Pairs whose row and column have no other allowed partner are matched directly (when that is all
    of them, LAPJV is not called at all); the contested rest goes to :func:`match_pairs`. Pairs
    come back in no particular order.
    """
    if not math.isfinite(cost_limit):
        raise ValueError(f"cost_limit must be finite, got {cost_limit}")
    cost = np.asarray(cost, np.float64)
    if cost.ndim != 2:
        raise ValueError(f"cost must be 2-D, got shape {cost.shape}")
    if not cost.size:
        return _EMPTY, _EMPTY
    if allowed is None:
        allowed = cost <= cost_limit
    pair_rows, pair_cols = np.asarray(allowed, np.bool_).nonzero()
    return match_pairs(pair_rows, pair_cols, cost[pair_rows, pair_cols], cost_limit,
                       (cost.shape[0], cost.shape[1]))
