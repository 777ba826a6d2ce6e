"""The ``edgenode`` process's first step: take SIGINT and SIGTERM before anything else is imported.

Python's own SIGINT handler raises KeyboardInterrupt wherever the process happens to be (a
traceback and exit 130 while modules still import) and SIGTERM's default kills it (exit 143).
From here until the node's event loop takes them over, either only records that a stop was asked
for; the node then stops before it starts and exits 0, as it does once running.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class EarlyStop:
    """Records SIGINT/SIGTERM received while the process starts (``requested``)."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def install(self) -> EarlyStop:
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._record)
        return self

    def _record(self, signum: int, frame: FrameType | None) -> None:
        self.signal = signum

    def restore(self) -> None:
        """Give SIGINT and SIGTERM back to Python's defaults (KeyboardInterrupt, termination): for commands
        that stop on them, such as ``edgenode status --watch``."""
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    @property
    def requested(self) -> bool:
        return self.signal is not None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``edgenode`` console script (and ``python -m edgenode``)."""
    early = EarlyStop().install()
    from edgenode.cli import main as run_cli

    return run_cli(argv, early)
