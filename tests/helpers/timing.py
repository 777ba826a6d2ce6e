"""One factor for every test timeout, so the suite passes on slower machines (an A53 board, qemu).

``EDGENODE_TEST_TIME_SCALE`` (default 1) multiplies every deadline a test waits for: set it to
about 10 under qemu-user or on a Cortex-A53. Tests wait on events (a line, a message, a counter)
until such a deadline, never for a fixed time.
"""

from __future__ import annotations

import os

SCALE = float(os.environ.get("EDGENODE_TEST_TIME_SCALE", "1") or 1)
if not SCALE > 0:  # also refuses nan
    raise ValueError(f"EDGENODE_TEST_TIME_SCALE must be a positive number, got {SCALE}")


def scaled(seconds: float) -> float:
    """``seconds`` stretched by the machine's factor (``EDGENODE_TEST_TIME_SCALE``)."""
    return seconds * SCALE
