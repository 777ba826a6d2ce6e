"""Box overlap and optimal one-to-one assignment (LAPJV from ``lap``)."""

from __future__ import annotations

import math

import lap
import numpy as np
from numpy.typing import NDArray

# Floor of the union area, only to avoid 0 / 0 between two boxes without area.
MIN_UNION = 1e-12

_EMPTY = np.zeros(0, np.intp)


def iou_matrix(a: NDArray[np.floating], b: NDArray[np.floating]) -> NDArray[np.float64]:
    """Intersection over union of every box in ``a`` (N, 4) with every box in ``b`` (M, 4), x1 y1 x2 y2.

    Boxes with no area overlap nothing (IoU 0), even themselves.
    """
    # Coordinates as contiguous rows; x and y are handled together as (2, N, M) blocks.
    at = np.ascontiguousarray(np.asarray(a, np.float64).reshape(-1, 4).T)
    bt = np.ascontiguousarray(np.asarray(b, np.float64).reshape(-1, 4).T)
    overlap = np.minimum(at[2:, :, None], bt[2:, None, :])
    overlap -= np.maximum(at[:2, :, None], bt[:2, None, :])
    np.maximum(overlap, 0.0, out=overlap)
    inter = overlap[0] * overlap[1]
    size_a = at[2:] - at[:2]
    size_b = bt[2:] - bt[:2]
    union = (size_a[0] * size_a[1])[:, None] + size_b[0] * size_b[1]
    union -= inter
    np.maximum(union, MIN_UNION, out=union)
    inter /= union
    iou: NDArray[np.float64] = inter
    return iou


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
    of them, LAPJV is not called at all). The contested rest goes to ``lap.lapjv`` as a square
    matrix extended with "unmatched" slots costing ``cost_limit / 2`` each: what ``extend_cost``
    with ``cost_limit`` builds, done here in numpy at a third of the cost, with finite costs only.
    Pairs come back in no particular order.
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
    pair_rows, pair_cols = allowed.nonzero()
    if not len(pair_rows):
        return _EMPTY, _EMPTY
    row_options = np.bincount(pair_rows, minlength=cost.shape[0])
    col_options = np.bincount(pair_cols, minlength=cost.shape[1])
    if row_options.max() <= 1 and col_options.max() <= 1:
        return pair_rows, pair_cols
    # Pairs whose row and column have no other option are matched directly.
    direct = (row_options[pair_rows] == 1) & (col_options[pair_cols] == 1)
    direct_rows, direct_cols = pair_rows[direct], pair_cols[direct]
    row_options[direct_rows] = 0
    col_options[direct_cols] = 0
    rows = row_options.nonzero()[0]
    cols = col_options.nonzero()[0]
    n_rows, n_cols = len(rows), len(cols)
    sub_allowed = allowed[rows][:, cols]
    # Leaving a row (or a column) unmatched costs half the limit; a pair at the limit ties with
    # leaving both apart, so the limit is nudged up to keep such pairs. Forbidden pairs cost more
    # than leaving both apart.
    half = 0.5 * (cost_limit + 1e-9 * max(1.0, abs(cost_limit)))
    square = np.full((n_rows + n_cols, n_rows + n_cols), half)
    square[:n_rows, :n_cols] = np.where(sub_allowed, cost[rows][:, cols], 4.0 * abs(half) + 1.0)
    square[n_rows:, n_cols:] = 0.0
    row_to_col = lap.lapjv(square)[1][:n_rows]
    matched = (row_to_col < n_cols).nonzero()[0]
    matched = matched[sub_allowed[matched, row_to_col[matched]]]
    return (np.concatenate((direct_rows, rows[matched])),
            np.concatenate((direct_cols, cols[row_to_col[matched]])))
