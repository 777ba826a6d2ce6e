"""Box overlap and optimal one-to-one assignment (LAPJV from ``lap``).

A tracker's frame has few contested pairs: most boxes overlap one track and most tracks one box,
and those pairs are matched directly. The rest split into small independent groups (two or three
objects close together); :func:`solve_contested` tries every matching of a small group in Python,
which is much cheaper than a LAPJV call, and leaves big groups and near ties to LAPJV, so the
result is always LAPJV's.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

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
    signed_a, signed_b = (np.array(np.asarray(boxes, np.float64).reshape(-1, 4).T) for boxes in (a, b))
    for signed in (signed_a, signed_b):
        np.negative(signed[2:], out=signed[2:])
    return iou_signed(signed_a, signed_area(signed_a), signed_b, signed_area(signed_b))


_ZERO = np.zeros(())
_MIN_UNION = np.array(MIN_UNION)


def allowed_pairs(overlap: NDArray[np.float64], least: float) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Rows and columns (row-major order) of the entries of ``overlap`` reaching ``least``."""
    allowed = overlap >= least
    if allowed.size <= _SMALL_NONZERO:
        pairs: tuple[NDArray[np.intp], NDArray[np.intp]] = allowed.nonzero()  # type: ignore[assignment]
        return pairs
    # A 2-D nonzero slows down with size much faster than a flat one.
    flat = allowed.ravel().nonzero()[0]
    width = np.array(allowed.shape[1])
    return flat // width, flat % width


_SMALL_NONZERO = 256


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
# The costs of the pairs (rows[i], cols[i]) as a list, and the cost limit.
PairCosts = Callable[[NDArray[np.intp], NDArray[np.intp]], tuple[list[float], float]]

# Contested groups at most this size (rows, columns, matchings) are solved in Python.
_SMALL_SIDE = 4
_SMALL_MATCHINGS = 64
# From this many pairs on, contested pairs are found with numpy rather than in Python.
_MANY_PAIRS = 16


def match_pairs(rows: list[int], cols: list[int], pair_costs: PairCosts, small_in_python: bool = True,
                arrays: tuple[NDArray[np.intp], NDArray[np.intp]] | None = None) -> Pairs:
    """The optimal matching among candidate pairs ``(rows[i], cols[i])`` (no pair twice).

    Optimal as :func:`linear_assignment` defines it. Pairs whose row and column are in no other
    pair are matched directly; ``pair_costs`` gives the costs of the rest, the contested pairs, and
    is called only when there are some. They go to :func:`solve_contested`, or with
    ``small_in_python`` false straight to LAPJV. ``arrays``, the same pairs as numpy arrays, helps
    when there are many.
    """
    rows_apart, cols_apart = len(set(rows)) == len(rows), len(set(cols)) == len(cols)
    if rows_apart and cols_apart:
        return rows, cols
    if len(rows) >= _MANY_PAIRS:
        row_array, col_array = arrays if arrays is not None else (np.array(rows, np.intp), np.array(cols, np.intp))
        if rows_apart:
            contested = np.bincount(col_array).take(col_array) > 1
        elif cols_apart:
            contested = np.bincount(row_array).take(row_array) > 1
        else:
            contested = (np.bincount(row_array).take(row_array) > 1) | (np.bincount(col_array).take(col_array) > 1)
        direct = ~contested
        direct_rows, direct_cols = row_array[direct].tolist(), col_array[direct].tolist()
        block_rows, block_cols = row_array[contested], col_array[contested]
    else:
        row_count, col_count = Counter(rows), Counter(cols)
        direct_rows, direct_cols, contested_rows, contested_cols = [], [], [], []
        for row, col in zip(rows, cols, strict=True):
            if row_count[row] == 1 and col_count[col] == 1:
                direct_rows.append(row)
                direct_cols.append(col)
            else:
                contested_rows.append(row)
                contested_cols.append(col)
        block_rows, block_cols = np.array(contested_rows, np.intp), np.array(contested_cols, np.intp)
    costs, cost_limit = pair_costs(block_rows, block_cols)
    if small_in_python:
        solved_rows, solved_cols = solve_contested(block_rows.tolist(), block_cols.tolist(), costs, cost_limit)
    else:
        solved_rows, solved_cols = _lapjv_block(block_rows.tolist(), block_cols.tolist(), costs, _half(cost_limit))
    return direct_rows + solved_rows, direct_cols + solved_cols


def _half(cost_limit: float) -> float:
    """The cost of leaving one row or column unmatched (see :func:`solve_block`)."""
    return 0.5 * (cost_limit + 1e-9 * max(1.0, abs(cost_limit)))


def solve_contested(rows: list[int], cols: list[int], costs: list[float], cost_limit: float) -> Pairs:
    """The optimal matching of the contested pairs ``(rows[i], cols[i])`` costing ``costs[i]``.

    What LAPJV returns for the block of their rows and columns (:func:`solve_block`). Most blocks
    are a few small independent groups (two or three objects close together), for which LAPJV's
    fixed cost dwarfs the work: each group of at most 4 rows and 4 columns is solved by trying all
    its matchings in Python, and when every group's best matching beats its runner-up by a clear
    margin, that is LAPJV's answer too. Bigger groups and near ties (where LAPJV's own tie-breaking
    decides) go to LAPJV, as one block.
    """
    double_half = 2.0 * _half(cost_limit)
    margin = 1e-9 * max(1.0, abs(cost_limit))
    # Matching a pair instead of leaving its row and column apart gains (2 half - cost).
    by_row: dict[int, list[tuple[int, float]]] = {}
    by_col: dict[int, list[int]] = {}
    for row, col, cost in zip(rows, cols, costs, strict=True):
        by_row.setdefault(row, []).append((col, double_half - cost))
        by_col.setdefault(col, []).append(row)
    groups: list[tuple[list[int], int]] = []  # rows, column count
    if len(by_row) == len(rows):  # each row has one column: groups are columns and their rows
        groups = [(group, 1) for group in by_col.values()]
    elif len(by_col) == len(cols):  # each column has one row: groups are single rows
        groups = [([row], len(options)) for row, options in by_row.items()]
    else:
        seen: set[int] = set()
        for start in by_row:
            if start in seen:
                continue
            seen.add(start)
            group, stack, group_cols = [start], [start], set()
            while stack:
                for col, _ in by_row[stack.pop()]:
                    if col not in group_cols:
                        group_cols.add(col)
                        for row in by_col[col]:
                            if row not in seen:
                                seen.add(row)
                                group.append(row)
                                stack.append(row)
            groups.append((group, len(group_cols)))
    matched_rows: list[int] = []
    matched_cols: list[int] = []
    for group, columns in groups:
        best = _best_matching([by_row[row] for row in group], columns, margin)
        if best is None:
            return _lapjv_block(rows, cols, costs, double_half / 2.0)
        for index, col in enumerate(best):
            if col >= 0:
                matched_rows.append(group[index])
                matched_cols.append(col)
    return matched_rows, matched_cols


def _best_matching(options: list[list[tuple[int, float]]], columns: int, margin: float) -> list[int] | None:
    """Column per row (-1: none) of the matching with the largest summed gain, or ``None`` when the
    group is too big or the runner-up comes within ``margin``.

    ``options`` holds each row's (column, gain) pairs; gains are positive, and leaving everything
    unmatched (gain 0) is a matching too.
    """
    if len(options) == 1:  # one row and its columns
        best = second = 0.0
        best_col = -1
        for col, gain in options[0]:
            if gain > best:
                best, second, best_col = gain, best, col
            elif gain > second:
                second = gain
        return [best_col] if best - second > margin else None
    if columns == 1:  # one column and its rows
        best = second = 0.0
        best_row = -1
        for row, choices in enumerate(options):
            gain = choices[0][1]
            if gain > best:
                best, second, best_row = gain, best, row
            elif gain > second:
                second = gain
        if best - second <= margin:
            return None
        col = options[0][0][0]
        return [col if row == best_row else -1 for row in range(len(options))]
    if len(options) == 2:  # two rows: each alone, or both on different columns
        first, other = options
        best = second = 0.0
        chosen = (-1, -1)
        for col, gain in first:
            if gain > best:
                best, second, chosen = gain, best, (col, -1)
            elif gain > second:
                second = gain
        for col, gain in other:
            if gain > best:
                best, second, chosen = gain, best, (-1, col)
            elif gain > second:
                second = gain
        for col, gain in first:
            for other_col, other_gain in other:
                if col != other_col:
                    both = gain + other_gain
                    if both > best:
                        best, second, chosen = both, best, (col, other_col)
                    elif both > second:
                        second = both
        return list(chosen) if best - second > margin else None
    if len(options) > _SMALL_SIDE or columns > _SMALL_SIDE:
        return None
    # Every partial matching: (columns used, summed gain, column per row so far).
    partial: list[tuple[frozenset[int], float, tuple[int, ...]]] = [(frozenset(), 0.0, ())]
    for choices in options:
        grown = []
        for used, gain, picked in partial:
            grown.append((used, gain, (*picked, -1)))
            for col, pair_gain in choices:
                if col not in used:
                    grown.append((used | {col}, gain + pair_gain, (*picked, col)))
        if len(grown) > _SMALL_MATCHINGS:
            return None
        partial = grown
    best = second = -1.0
    best_picked: tuple[int, ...] = ()
    for _, gain, picked in partial:
        if gain > best:
            best, second, best_picked = gain, best, picked
        elif gain > second:
            second = gain
    if best - second <= margin:
        return None
    return list(best_picked)


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
    of them, LAPJV is not called at all); the contested rest goes to :func:`solve_contested`. Pairs
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
    pair_rows, pair_cols = allowed.nonzero()
    rows, cols = pair_rows.tolist(), pair_cols.tolist()
    if len(set(rows)) == len(rows) and len(set(cols)) == len(cols):
        return pair_rows, pair_cols

    def pair_costs(block_rows: NDArray[np.intp], block_cols: NDArray[np.intp]) -> tuple[list[float], float]:
        block_costs: list[float] = cost[block_rows, block_cols].tolist()
        return block_costs, cost_limit

    det, trk = match_pairs(rows, cols, pair_costs, small_in_python=False, arrays=(pair_rows, pair_cols))
    return np.array(det, np.intp), np.array(trk, np.intp)
