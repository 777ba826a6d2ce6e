"""Fixtures of the node's tests: a camera's frame buffers, and signal handlers put back after each test (the
node installs its own)."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from tests.helpers.frame_producer import Producer


@pytest.fixture
def camera() -> Iterator[Producer]:
    producer = Producer(count=3)
    yield producer
    producer.stop()


@pytest.fixture(autouse=True)
def _signals() -> Iterator[None]:
    yield
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
