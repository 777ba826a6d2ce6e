"""ctypes side of ``track.c``: the tracker's Kalman filters, matching and whole update.

The C functions take plain addresses; this module declares their signatures once (on first use) and
mirrors the layouts ``track.c`` defines: the tracker's context (an int64 array of addresses,
capacities and flags, see ``C_*``), its parameters (``P_*``) and the Kalman parameters (``K_*``).
:func:`check_layout` compares the sizes with the library's own. The buffers themselves are owned by
the callers (:mod:`edgenode.core.kalman`, :mod:`edgenode.core.bytetrack`), which size them before
every call: a kernel writes nothing past the capacities it is given.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable
from types import SimpleNamespace

from edgenode.kernels import library

_I64, _F64, _PTR = ctypes.c_int64, ctypes.c_double, ctypes.c_void_p

# Kalman parameters (doubles): see the K_* enum of track.c.
K_TIME_UNIT_NS, K_MODEL, K_FRAME_CLOCK, K_INNOVATION, K_UPDATE = range(5)
K_INIT_PP_H2, K_INIT_PP_C, K_INIT_VV_H2, K_INIT_VV_C = 5, 9, 13, 17
K_POS_H2, K_POS_C, K_VEL_H2, K_VEL_C = 21, 25, 29, 33
K_INNOV_H2, K_INNOV_C = 37, 41
K_SIZE = 45
MODEL_EDGENODE, MODEL_EDGEFIRST = 0.0, 1.0
# Doubles per track state: x, y, a, h, their velocities, then P_pp, P_pv, P_vv per component.
STATE_WIDTH = 20

# The tracker's context (int64): see the C_* enum of track.c.
(C_FILTER_PTR, C_CAPACITY, C_BOX_CAPACITY, C_PAIR_CAPACITY, C_SCRATCH_LEN, C_LAST_NS, C_HAS_LAST, C_LIFESPAN_NS,
 C_FLAGS, C_LAST_BOX_PTR, C_INFO_PTR, C_BOXES_PTR, C_SCORES_PTR, C_OUT_PTR, C_KEPT_PTR, C_OVERLAP_PTR,
 C_SCRATCH_PTR, C_KALMAN_PTR, C_PARAMS_PTR, C_SOLVER_PTR, C_KEPT, C_STARTED, C_SIZE) = range(23)
# The Kalman filter's header (int64), which the tracker's kernel reads: track count, state address, capacity.
FILTER_COUNT, FILTER_STATE, FILTER_CAPACITY = range(3)
# The tracker's parameters (doubles).
P_HIGH, P_LOW, P_IOU, P_SIZE = range(4)
# Ablation switches (C_FLAGS), for the benchmark's variants.
F_NO_RECOVERY, F_LATE_EXPIRY, F_ANY_SCORE_PASS, F_EDGEFIRST_COST = 1, 2, 4, 8

# Added to track_update's result (the count of tracks started) when tracks expired.
EXPIRED = 1 << 32
ERRORS = {-2: "scratch too small", -3: "the LAPJV solver failed", -4: "sizes out of range"}

# LAPJV over contested pairs: (token, n, rows, cols, costs, half, out_capacity, out_rows, out_cols) -> matched
# count or -1.
_Solver = ctypes.CFUNCTYPE(_I64, _I64, _I64, ctypes.POINTER(_I64), ctypes.POINTER(_I64), ctypes.POINTER(_F64), _F64,
                           _I64, ctypes.POINTER(_I64), ctypes.POINTER(_I64))
# A solver in Python: (rows, cols, costs, half) -> matched (rows, cols).
SolverFunction = Callable[[list[int], list[int], list[float], float], tuple[list[int], list[int]]]

@functools.cache
def functions() -> SimpleNamespace:
    """The kernels' functions with their signatures declared (once per process)."""
    lib = library()
    table = {
        "kalman_add": (_I64, [_PTR, _PTR, _I64, _I64, _PTR, _I64]),
        "kalman_predict": (None, [_PTR, _PTR, _I64, _I64]),
        "kalman_update": (_I64, [_PTR, _PTR, _I64, _PTR, _PTR, _I64]),
        "kalman_corners": (None, [_PTR, _I64, _PTR, _I64]),
        "match_scratch": (_I64, [_I64, _I64, _I64]),
        "match_pairs": (_I64, [_PTR, _PTR, _PTR, _I64, _F64, _I64, _I64, _PTR, _I64, _PTR, _PTR, _PTR, _I64]),
        "track_scratch": (_I64, [_I64, _I64, _I64]),
        "track_update": (_I64, [_PTR, _I64, _I64]),
        "track_layout": (_I64, [_I64]),
    }
    bound = {}
    for name, (restype, argtypes) in table.items():
        function = getattr(lib, f"edgenode_{name}")
        function.restype = restype
        function.argtypes = argtypes
        bound[name] = function
    found = SimpleNamespace(**bound)
    check_layout(found)
    return found


def check_layout(found: SimpleNamespace) -> None:
    """Refuse a library whose layouts differ from this module's (a kernel edited without its wrapper)."""
    expected = {0: C_SIZE, 1: P_SIZE, 2: K_SIZE, 3: STATE_WIDTH}
    actual = {which: found.track_layout(which) for which in expected}
    if actual != expected:
        raise RuntimeError(f"track.c's layouts {actual} differ from edgenode.kernels.track's {expected}")


# What solvers raised, by the token of the call that failed (the tracker's context or the matcher's scratch
# address): the failing call's caller takes it, whichever thread it runs on.
_failures: dict[int, BaseException] = {}
# The C function pointers handed out, alive for the process.
_solvers: list[object] = []


def register_solver(function: SolverFunction) -> int:
    """The address of a C function pointer that calls ``function`` (for ``C_SOLVER_PTR`` and
    ``match_pairs``); what it raises goes to :func:`raise_failure`."""
    def call(  # noqa: PLR0917 - the C signature
        token: int, n: int, rows: ctypes._Pointer[ctypes.c_int64], cols: ctypes._Pointer[ctypes.c_int64],
        costs: ctypes._Pointer[ctypes.c_double], half: float, out_capacity: int,
        out_rows: ctypes._Pointer[ctypes.c_int64], out_cols: ctypes._Pointer[ctypes.c_int64],
    ) -> int:
        try:
            matched_rows, matched_cols = function(rows[:n], cols[:n], costs[:n], half)
            if len(matched_rows) != len(matched_cols) or len(matched_rows) > min(n, out_capacity):
                raise RuntimeError(f"the solver matched {len(matched_rows)} rows to {len(matched_cols)} columns "
                                   f"among {n} pairs (room for {out_capacity})")
            for i, (row, col) in enumerate(zip(matched_rows, matched_cols, strict=True)):
                out_rows[i], out_cols[i] = row, col
            return len(matched_rows)
        except BaseException as error:  # C cannot carry it: raise_failure raises it in the caller
            _failures[token] = error
            return -1

    pointer = _Solver(call)
    _solvers.append(pointer)
    return int(ctypes.cast(pointer, ctypes.c_void_p).value or 0)


def raise_failure(result: int, token: int) -> None:
    """Raise what made a kernel call return ``result`` (negative): the solver's exception when it raised."""
    error = _failures.pop(token, None)
    if error is not None:
        raise error
    raise RuntimeError(f"native tracker kernel failed: {ERRORS.get(result, result)}")
