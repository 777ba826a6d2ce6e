"""Zenoh adapter: session from layered config, CDR publishers, subscriptions bridged into asyncio.

zenoh-python has no asyncio API. Subscriber callbacks run on zenoh's threads; they copy the
payload and hand it to the event loop with ``call_soon_threadsafe``, so nothing here blocks
the loop and nothing on zenoh's threads touches loop state.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import zenoh

from edgenode.config import ZenohSettings

T = TypeVar("T")


class ZenohConfigError(ValueError):
    """A zenoh config file, flag or override that zenoh rejects."""


def build_zenoh_config(settings: ZenohSettings) -> zenoh.Config:
    """Layer the zenoh config: file (or EdgeFirst defaults), then flags, then ``--cfg`` overrides."""
    config: zenoh.Config
    if settings.config_file is not None:
        try:
            config = zenoh.Config.from_file(str(settings.config_file))
        except Exception as exc:
            raise ZenohConfigError(f"--zenoh-config {settings.config_file}: {exc}") from None
    else:
        config = zenoh.Config()
        _insert(config, "mode", json.dumps("peer"), "default mode")
        _insert(config, "scouting/multicast/interface", json.dumps(settings.multicast_interface), "default")
    if settings.mode is not None:
        _insert(config, "mode", json.dumps(settings.mode), "--mode")
    if settings.connect:
        _insert(config, "connect/endpoints", json.dumps(list(settings.connect)), "--connect")
    if settings.listen:
        _insert(config, "listen/endpoints", json.dumps(list(settings.listen)), "--listen")
    if not settings.multicast_scouting:
        _insert(config, "scouting/multicast/enabled", "false", "--no-multicast-scouting")
    for key, value in settings.overrides:
        _insert(config, key, value, f"--cfg {key}")
    return config


def _insert(config: zenoh.Config, key: str, value: str, origin: str) -> None:
    try:
        config.insert_json5(key, value)
    except Exception as exc:
        raise ZenohConfigError(f"{origin}: zenoh rejects {key}={value}: {exc}") from None


@dataclass(frozen=True)
class Received:
    """One sample: its payload bytes, zenoh encoding text and local arrival time (monotonic ns)."""

    payload: bytes
    encoding: str
    arrived_ns: int


class LatestSlot(Generic[T]):
    """Keeps only the newest item; counts the ones it replaced. Loop-side only."""

    def __init__(self) -> None:
        self._item: T | None = None
        self._ready = asyncio.Event()
        self.received = 0
        self.dropped = 0

    def put(self, item: T) -> None:
        """Store ``item``, replacing (and counting) an unread one."""
        if self._item is not None:
            self.dropped += 1
        self._item = item
        self.received += 1
        self._ready.set()

    def take(self) -> T | None:
        """The newest item, or None; the slot is empty afterwards."""
        item, self._item = self._item, None
        self._ready.clear()
        return item

    async def get(self, timeout: float | None = None) -> T | None:
        """Wait up to ``timeout`` seconds for an item; None on timeout."""
        if self._item is None:
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except asyncio.TimeoutError:
                return None
        return self.take()


class Publication:
    """A declared publisher that sends CDR bytes with the EdgeFirst encoding (``application/cdr;<schema>``)."""

    def __init__(self, publisher: zenoh.Publisher, key: str, schema: str) -> None:
        self._publisher = publisher
        self.key = key
        self.schema = schema
        self.sent = 0

    def put(self, payload: bytes) -> None:
        """Send one message (non-blocking under zenoh's default DROP congestion control)."""
        self._publisher.put(payload)
        self.sent += 1

    def close(self) -> None:
        """Undeclare the publisher."""
        try:
            self._publisher.undeclare()
        except Exception:
            pass


class ZenohBus:
    """An open zenoh session with helpers for the node's publishers and subscriptions."""

    def __init__(self, session: zenoh.Session) -> None:
        self.session = session
        self._closables: list[Callable[[], None]] = []

    @classmethod
    def open(cls, settings: ZenohSettings) -> ZenohBus:
        """Open a session; raises ZenohConfigError with zenoh's reason when it cannot."""
        config = build_zenoh_config(settings)
        try:
            return cls(zenoh.open(config))
        except Exception as exc:
            raise ZenohConfigError(f"cannot open zenoh session: {exc}") from None

    def publication(self, key: str, schema: str) -> Publication:
        """Declare a publisher on ``key`` carrying ``schema`` in its encoding."""
        encoding = zenoh.Encoding.APPLICATION_CDR.with_schema(schema)
        publication = Publication(self.session.declare_publisher(key, encoding=encoding), key, schema)
        self._closables.append(publication.close)
        return publication

    def subscribe(self, key: str, deliver: Callable[[Received], None],
                  loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
        """Call ``deliver`` on ``loop`` for each sample on ``key``; returns a function that unsubscribes."""

        def on_sample(sample: zenoh.Sample) -> None:
            received = Received(sample.payload.to_bytes(), str(sample.encoding), time.monotonic_ns())
            try:
                loop.call_soon_threadsafe(deliver, received)
            except RuntimeError:
                pass  # the loop is closed: the node is shutting down

        subscriber = self.session.declare_subscriber(key, on_sample)

        def close() -> None:
            try:
                subscriber.undeclare()
            except Exception:
                pass

        self._closables.append(close)
        return close

    def subscribe_latest(self, key: str, loop: asyncio.AbstractEventLoop) -> LatestSlot[Received]:
        """Subscribe to ``key`` keeping only the newest sample."""
        slot: LatestSlot[Received] = LatestSlot()
        self.subscribe(key, slot.put, loop)
        return slot

    def close(self) -> None:
        """Undeclare everything and close the session."""
        for close in reversed(self._closables):
            close()
        self._closables.clear()
        try:
            self.session.close()
        except Exception:
            pass
