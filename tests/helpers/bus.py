"""An in-memory message bus with ZenohBus's publication and subscription interface, and no Zenoh.

``bus.publication(key, schema)`` records every payload it is given (``bus.sent(key)``);
``bus.deliver(key, payload)`` hands a sample to the subscriptions on ``key`` as ZenohBus's
callbacks would (copied to the event loop, payloads over ``max_bytes`` arriving empty with
``oversize`` set). Keys are matched exactly (no wildcards). ``bus.status()`` asks the announced
status, as a status query would, and returns the decoded document.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from edgenode.adapters.zenoh_bus import LatestSlot, Received
from edgenode.core.status import status_key


class MemoryPublication:
    """A declared publication: remembers each payload (thread-safe: workers publish from their threads)."""

    def __init__(self, bus: MemoryBus, key: str, schema: str) -> None:
        self.bus = bus
        self.key = key
        self.schema = schema
        self.sent = 0

    @property
    def encoding(self) -> str:
        return f"application/cdr;{self.schema}"

    def put(self, payload: bytes) -> None:
        self.bus.record(self.key, bytes(payload))
        self.sent += 1


@dataclass
class Subscription:
    key: str
    deliver: Callable[[Received], None]
    loop: asyncio.AbstractEventLoop
    max_bytes: int | None
    open: bool = True


class MemoryAnnouncement:
    """An announced status: ``query()`` answers as the status queryable would."""

    def __init__(self, key: str, answer: Callable[[], bytes]) -> None:
        self.key = key
        self.answer = answer
        self.answered = 0
        self.rate = 50.0

    def query(self) -> bytes:
        self.answered += 1
        return self.answer()


class MemoryBus:
    """The bus double; ``closed`` once :meth:`close` ran."""

    namespace = ""
    zid = "0123456789abcdef0123456789abcdef"

    def __init__(self) -> None:
        self.announcements: dict[str, MemoryAnnouncement] = {}
        self.publications: dict[str, MemoryPublication] = {}
        self.subscriptions: list[Subscription] = []
        self.closed = False
        self._sent: dict[str, list[bytes]] = defaultdict(list)
        self._order: list[str] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)

    # -- the interface the node uses -------------------------------------------------------
    def publication(self, key: str, schema: str) -> MemoryPublication:
        assert key not in self.publications, f"{key} declared twice"
        publication = self.publications[key] = MemoryPublication(self, key, schema)
        return publication

    def subscribe(self, key: str, deliver: Callable[[Received], None], loop: asyncio.AbstractEventLoop, *,
                  max_bytes: int | None = None) -> Callable[[], None]:
        subscription = Subscription(key, deliver, loop, max_bytes)
        self.subscriptions.append(subscription)

        def close() -> None:
            subscription.open = False

        return close

    def subscribe_latest(self, key: str, loop: asyncio.AbstractEventLoop, *,
                         max_bytes: int | None = None) -> LatestSlot[Received]:
        slot: LatestSlot[Received] = LatestSlot()
        self.subscribe(key, slot.put, loop, max_bytes=max_bytes)
        return slot

    def announce(self, kind: str, answer: Callable[[], bytes]) -> MemoryAnnouncement:
        assert kind not in self.announcements, f"{kind} announced twice"
        announcement = self.announcements[kind] = MemoryAnnouncement(status_key(kind, self.zid), answer)
        return announcement

    def close(self) -> None:
        for subscription in self.subscriptions:
            subscription.open = False
        self.announcements.clear()
        self.closed = True

    # -- the test's side -------------------------------------------------------------------
    def status(self, kind: str = "node") -> dict[str, object] | None:
        """The announced status document of ``kind`` (None when none is announced, or after close)."""
        announcement = self.announcements.get(kind)
        return json.loads(announcement.query()) if announcement is not None else None

    def subscribed(self, key: str) -> list[Subscription]:
        return [s for s in self.subscriptions if s.key == key and s.open]

    def deliver(self, key: str, payload: bytes, encoding: str = "") -> int:
        """Hand ``payload`` to every open subscription on ``key`` (from any thread); how many there were."""
        targets = self.subscribed(key)
        for subscription in targets:
            limit = subscription.max_bytes
            if limit is not None and len(payload) > limit:
                sample = Received(b"", encoding, time.monotonic_ns(), oversize=len(payload))
            else:
                sample = Received(bytes(payload), encoding, time.monotonic_ns())
            subscription.loop.call_soon_threadsafe(subscription.deliver, sample)
        return len(targets)

    def record(self, key: str, payload: bytes) -> None:
        with self._changed:
            self._sent[key].append(payload)
            self._order.append(key)
            self._changed.notify_all()

    def sent(self, key: str) -> list[bytes]:
        """Every payload published on ``key`` so far, in order."""
        with self._lock:
            return list(self._sent[key])

    def order(self) -> list[str]:
        """The key of every payload published so far, in publishing order."""
        with self._lock:
            return list(self._order)

    def wait_sent(self, key: str, count: int, timeout: float) -> list[bytes]:
        """Block (not on an event loop) until ``count`` payloads went out on ``key``; AssertionError after
        ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self._sent[key]) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(self._sent[key])} of {count} messages on {key} after {timeout:g} s")
                self._changed.wait(left)
            return list(self._sent[key])
