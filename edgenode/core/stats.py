"""Throughput and per-stage timing over a reporting interval, for the periodic stats log and the status."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from edgenode.core.outbound import StageTimes

STAGES = ("preprocess", "invoke", "decode", "track", "publish")
PERCENTILE_SAMPLES = 4096  # the p99 of a window is taken over its last this many frames


def percentile(values: list[int], q: float) -> int:
    """The nearest-rank ``q``-th percentile (0 < q <= 100) of ``values`` (not empty)."""
    ordered = sorted(values)
    return ordered[max(math.ceil(q / 100 * len(ordered)) - 1, 0)]


@dataclass
class _Accumulator:
    total_ns: int = 0
    max_ns: int = 0
    count: int = 0
    samples: list[int] = field(default_factory=list)  # the last PERCENTILE_SAMPLES values, as a ring

    def add(self, value_ns: int) -> None:
        self.total_ns += value_ns
        self.max_ns = max(self.max_ns, value_ns)
        if self.count < PERCENTILE_SAMPLES:
            self.samples.append(value_ns)
        else:
            self.samples[self.count % PERCENTILE_SAMPLES] = value_ns
        self.count += 1


@dataclass
class FrameStats:
    """Counts frames and sums stage times between two ``report`` calls (monotonic ns clock).

    Not thread-safe: a caller recording on one thread and reporting on another serialises the two.
    """

    started_ns: int
    frames: int = 0
    boxes: int = 0
    latency: _Accumulator = field(default_factory=_Accumulator)
    stages: dict[str, _Accumulator] = field(default_factory=lambda: {name: _Accumulator() for name in STAGES})

    def record(self, times: StageTimes, publish_ns: int, latency_ns: int, box_count: int) -> None:
        """One processed frame: its stage times, publish time, camera-to-publish latency and box count."""
        self.frames += 1
        self.boxes += box_count
        self.latency.add(latency_ns)
        for name, value in (("preprocess", times.preprocess_ns), ("invoke", times.invoke_ns),
                            ("decode", times.decode_ns), ("track", times.track_ns), ("publish", publish_ns)):
            self.stages[name].add(value)

    def report(self, now_ns: int) -> dict[str, float]:
        """Frames per second, the window's length, and mean/p99/max milliseconds per stage and of the latency
        since the last report; then restart."""
        elapsed = max(now_ns - self.started_ns, 1)
        summary: dict[str, float] = {"fps": round(self.frames * 1e9 / elapsed, 2), "frames": float(self.frames),
                                     "window_s": round(elapsed / 1e9, 3)}
        if self.frames:
            summary["boxes_per_frame"] = round(self.boxes / self.frames, 2)
            for name, acc in (("latency", self.latency), *self.stages.items()):
                summary[f"{name}_ms"] = round(acc.total_ns / self.frames / 1e6, 2)
                summary[f"{name}_p99_ms"] = round(percentile(acc.samples, 99) / 1e6, 2)
                summary[f"{name}_max_ms"] = round(acc.max_ns / 1e6, 2)
        self.started_ns, self.frames, self.boxes = now_ns, 0, 0
        self.latency = _Accumulator()
        self.stages = {name: _Accumulator() for name in STAGES}
        return summary
