"""One factor for every test timeout, so the suite passes on slower machines (an A53 board, qemu).

``EDGENODE_TEST_TIME_SCALE`` (default 1) multiplies every deadline a test waits for: set it to
about 10 under qemu-user or on a Cortex-A53 (``.ci/aarch64`` does). Tests wait on events (a line, a
message, a counter) until such a deadline, never for a fixed time: :func:`wait_until` and
:func:`wait_until_async` poll a condition until a scaled deadline. The conftest scales pytest-timeout's
limits by the same factor.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

SCALE = float(os.environ.get("EDGENODE_TEST_TIME_SCALE", "1") or 1)
if not SCALE > 0:  # also refuses nan
    raise ValueError(f"EDGENODE_TEST_TIME_SCALE must be a positive number, got {SCALE}")


def scaled(seconds: float) -> float:
    """``seconds`` stretched by the machine's factor (``EDGENODE_TEST_TIME_SCALE``)."""
    return seconds * SCALE


def wait_until(condition: Callable[[], object], seconds: float, what: str, poll: float = 0.05) -> None:
    """Return once ``condition()`` is true; fail after ``scaled(seconds)`` naming ``what`` was awaited."""
    limit = scaled(seconds)
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit:g} s waiting for {what}")
        time.sleep(poll)


async def wait_until_async(condition: Callable[[], object], seconds: float, what: str, poll: float = 0.01) -> None:
    """:func:`wait_until` for a coroutine: the event loop keeps running while it waits."""
    limit = scaled(seconds)
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit:g} s waiting for {what}")
        await asyncio.sleep(poll)
