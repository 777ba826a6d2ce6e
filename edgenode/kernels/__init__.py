"""Native kernels: the per-frame loops that numpy can only run as a chain of small calls, in C.

The tracker's update and the decoders' candidate scan and NMS run over a few to a few hundred boxes
per frame. In numpy each step is a call with a fixed cost of one to several microseconds (five to ten
times that on a Cortex-A53), and a frame makes dozens of them: the cost is the calls, not the work
(BENCHMARKS.md, issue 17). No library in the field offers these steps with our semantics (the reference
implementations, edgefirst-hal and edgefirst-tracker, are the bar, and our tracker's matching differs
from theirs on purpose), so they are written here in C, a few hundred lines with no dependency.

One shared library (``_kernels.so``, built from every ``*.c`` here by :mod:`edgenode.kernels.build`) is
called through ``ctypes`` with plain C types only: it needs no Python headers, so one build serves every
CPython version and numpy 1 and 2 alike, and the wheel is ``py3-none-<platform>``. Kernels never
allocate and never keep a pointer past their return; the Python side owns every array and hands the
kernel its address and capacity.

The library is stamped with the hash of its sources, and :func:`library` refuses one built from other
sources (an edited kernel, a stale checkout) with the command that rebuilds it.
"""

from __future__ import annotations

import ctypes
import functools
from pathlib import Path


class KernelsUnavailable(ImportError):
    """The native library is missing, stale or unloadable; the message says how to build it."""


@functools.cache
def library() -> ctypes.CDLL:
    """The loaded kernels library (once per process)."""
    from edgenode.kernels.build import LIBRARY  # (not at import: ``python -m edgenode.kernels.build`` runs it)

    return load(LIBRARY)


def load(path: Path) -> ctypes.CDLL:
    """Load the library at ``path`` after checking it was built from the sources beside it."""
    from edgenode.kernels.build import source_hash

    rebuild = "python -m edgenode.kernels.build (or pip install -e . again)"
    if not path.exists():
        raise KernelsUnavailable(f"edgenode's native kernels are not built ({path} is missing): run {rebuild}")
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as error:
        raise KernelsUnavailable(f"edgenode's native kernels do not load ({error}): run {rebuild}") from None
    stamp = lib.edgenode_kernels_source
    stamp.restype = ctypes.c_char_p
    stamp.argtypes = []
    built, expected = stamp().decode(), source_hash(path.parent)
    if built != expected:
        raise KernelsUnavailable(f"edgenode's native kernels are stale (built from sources {built}, these are "
                                 f"{expected}): run {rebuild}")
    return lib
