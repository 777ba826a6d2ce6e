"""What the node needs of its message bus: publications it declares, newest-only subscriptions, a close.

:class:`edgenode.adapters.zenoh_bus.ZenohBus` is the daemon's bus; the node's tests use an
in-memory one (``tests/helpers/bus.py``) with the same interface and no Zenoh.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from edgenode.adapters.zenoh_bus import LatestSlot, Received


class Outlet(Protocol):
    """A declared publication: ``put`` sends one encoded message; ``sent`` counts them."""

    sent: int

    def put(self, payload: bytes) -> None: ...


class Bus(Protocol):
    """Declare publications; subscribe keeping the newest sample (one over ``max_bytes`` arrives empty, with
    ``oversize`` set)."""

    def publication(self, key: str, schema: str) -> Outlet: ...

    def subscribe_latest(self, key: str, loop: asyncio.AbstractEventLoop, *,
                         max_bytes: int | None = None) -> LatestSlot[Received]: ...

    def close(self) -> None: ...
