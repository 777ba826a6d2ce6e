"""A worker thread that processes only the newest item handed to it; older ones are dropped and counted."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from edgenode.logs import get_logger

ItemT = TypeVar("ItemT")


class NewestWorker(Generic[ItemT]):
    """Runs ``work`` on its own thread for the newest submitted item (a bounded queue of one).

    ``submit`` never blocks, so slow work (mask encoding, compression) never delays the frame
    that produced it; when work falls behind, the unprocessed older item is replaced and counted.
    """

    def __init__(self, name: str, work: Callable[[ItemT], None]) -> None:
        self.name = name
        self._work = work
        self._item: ItemT | None = None
        self._wake = threading.Condition()
        self._closed = False
        self.submitted = 0
        self.dropped = 0
        self.done = 0
        self.failed = 0
        self._log: Any = get_logger("edgenode.background")
        self._thread = threading.Thread(target=self._run, name=f"edgenode-{name}", daemon=True)
        self._thread.start()

    def submit(self, item: ItemT) -> None:
        """Hand over ``item``; a previous one not yet started is dropped."""
        with self._wake:
            if self._closed:
                return
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self.submitted += 1
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._item is None and not self._closed:
                    self._wake.wait()
                if self._item is None:
                    return
                item, self._item = self._item, None
            try:
                self._work(item)
                self.done += 1
            except Exception as exc:
                self.failed += 1
                self._log.error(f"{self.name} failed", error=str(exc), error_type=type(exc).__name__)

    def close(self, timeout: float = 2.0) -> None:
        """Finish the item in hand (waiting up to ``timeout`` s) and stop; a pending one is dropped."""
        with self._wake:
            self._closed = True
            if self._item is not None:
                self.dropped += 1
                self._item = None
            self._wake.notify()
        self._thread.join(timeout)
