"""NewestWorker: only the newest item is worked on, older ones are dropped and counted; failures are logged
and the worker goes on; close finishes the item in hand."""

from __future__ import annotations

import threading
import time

from structlog.testing import capture_logs

from edgenode.node.background import NewestWorker
from tests.helpers.timing import scaled


class Gate:
    """Work that blocks on ``release`` and records what it was given."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.done: list[int] = []
        self.finished = threading.Semaphore(0)

    def __call__(self, item: int) -> None:
        self.started.set()
        assert self.release.wait(scaled(10))
        self.done.append(item)
        self.finished.release()


def test_items_submitted_while_busy_are_replaced_by_the_newest() -> None:
    work = Gate()
    worker = NewestWorker("test", work)
    worker.submit(1)
    assert work.started.wait(scaled(10))  # 1 is in hand
    for item in (2, 3, 4):
        worker.submit(item)
    work.release.set()
    assert work.finished.acquire(timeout=scaled(10)) and work.finished.acquire(timeout=scaled(10))
    worker.close()
    assert work.done == [1, 4]
    assert (worker.submitted, worker.dropped, worker.done, worker.failed) == (4, 2, 2, 0)


def test_a_failure_is_logged_and_counted_and_the_worker_goes_on() -> None:
    seen: list[int] = []
    finished = threading.Semaphore(0)

    def work(item: int) -> None:
        try:
            if item == 1:
                raise ValueError("bad mask")
            seen.append(item)
        finally:
            finished.release()

    with capture_logs() as logs:
        worker = NewestWorker("mask", work)
        worker.submit(1)
        assert finished.acquire(timeout=scaled(10))
        worker.submit(2)
        assert finished.acquire(timeout=scaled(10))
        worker.close()
    assert seen == [2] and (worker.done, worker.failed) == (1, 1)
    assert [(log["event"], log["error"], log["error_type"]) for log in logs] == [("mask failed", "bad mask",
                                                                                  "ValueError")]


def test_close_finishes_the_item_in_hand_drops_the_pending_one_and_ignores_later_ones() -> None:
    work = Gate()
    worker = NewestWorker("test", work)
    worker.submit(1)
    assert work.started.wait(scaled(10))
    worker.submit(2)  # pending behind 1
    closing = threading.Thread(target=worker.close, kwargs={"timeout": scaled(10)})
    closing.start()
    deadline = time.monotonic() + scaled(10)
    while worker.dropped == 0 and time.monotonic() < deadline:  # close has taken the pending item
        time.sleep(0.001)
    work.release.set()
    closing.join(scaled(10))
    assert not closing.is_alive()
    worker.submit(3)  # after close: ignored
    assert work.done == [1] and worker.dropped == 1 and worker.submitted == 2
    assert not worker._thread.is_alive()
