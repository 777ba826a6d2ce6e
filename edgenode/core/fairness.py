"""Which camera streams the model serves next, when several share it: the policy, without the mechanics.

Each invoke takes the newest frame of each of up to ``count`` streams (``count`` > 1 when the model runs a
batch), choosing among the streams that have a fresh frame waiting: first the one served longest ago (never
served counts as longest), then, between equals, the one whose waiting frame arrived first, then the lower
index. Streams at the same rate are therefore served in turn, a faster camera cannot take a slower one's
turns, and a stream with nothing new (a stopped camera) is passed over instead of waited for. Only the newest
frame of a stream ever waits (older ones were replaced), so the frame served is never stale by more than one
turn of the others.

Times are the node's monotonic clock, never the cameras' stamps (each camera has its own clock).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Waiting:
    """A stream with a fresh frame: its index, when that frame arrived, when the stream was last served
    (``None``: never)."""

    stream: int
    arrived: float
    served: float | None = None


def serve_order(waiting: Sequence[Waiting]) -> list[int]:
    """Every waiting stream's index, the one to serve first first."""
    ranked = sorted(waiting, key=lambda w: (w.served is not None, w.served or 0.0, w.arrived, w.stream))
    return [w.stream for w in ranked]


def choose(waiting: Sequence[Waiting], count: int = 1) -> list[int]:
    """The streams (indices) whose newest frames the next invoke takes: at most ``count``, each once."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    return serve_order(waiting)[:count]


BATCH_GAIN = 0.9  # a batch pays when each of its frames costs less than this share of a frame on its own


def batch_pays(single_s: float, batch_s: float, frames: int, gain: float = BATCH_GAIN) -> bool:
    """Whether one invoke of ``frames`` frames taking ``batch_s`` beats ``frames`` invokes of ``single_s``:
    clearly (per frame under ``gain`` times), since a batch also makes each frame wait for the others."""
    return frames > 1 and batch_s / frames < gain * single_s
