"""What the node needs of its message bus: publications it declares, newest-only subscriptions, its status
announcement, a close.

:class:`edgenode.adapters.zenoh_bus.ZenohBus` is the daemon's bus; the node's tests use an
in-memory one (``tests/helpers/bus.py``) with the same interface and no Zenoh.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from edgenode.adapters.zenoh_bus import LatestSlot, Received


class Outlet(Protocol):
    """A declared publication: ``put`` sends one encoded message; ``sent`` counts them."""

    sent: int

    def put(self, payload: bytes) -> None: ...


class Announced(Protocol):
    """A status announcement (liveliness token and queryable): its key, replies sent, replies allowed a second."""

    key: str
    answered: int
    rate: float


class Bus(Protocol):
    """Declare publications; subscribe keeping the newest sample (one over ``max_bytes`` arrives empty, with
    ``oversize`` set); announce the node's status (``zid``: the session's id, ``namespace``: the prefix of its
    keys on the wire)."""

    namespace: str

    @property
    def zid(self) -> str: ...

    def announce(self, kind: str, answer: Callable[[], bytes]) -> Announced: ...

    def publication(self, key: str, schema: str) -> Outlet: ...

    def subscribe_latest(self, key: str, loop: asyncio.AbstractEventLoop, *,
                         max_bytes: int | None = None) -> LatestSlot[Received]: ...

    def close(self) -> None: ...
