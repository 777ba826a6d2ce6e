"""Periodic throughput and stage-time summaries."""

from __future__ import annotations

from edgenode.core.outbound import StageTimes
from edgenode.core.stats import FrameStats


def test_report_means_maxima_and_restart() -> None:
    stats = FrameStats(started_ns=0)
    stats.record(StageTimes(preprocess_ns=2_000_000, invoke_ns=10_000_000, decode_ns=1_000_000), 500_000,
                 20_000_000, 3)
    stats.record(StageTimes(preprocess_ns=4_000_000, invoke_ns=30_000_000, decode_ns=1_000_000), 500_000,
                 40_000_000, 1)
    summary = stats.report(now_ns=1_000_000_000)
    assert summary["fps"] == 2.0 and summary["frames"] == 2 and summary["boxes_per_frame"] == 2.0
    assert (summary["invoke_ms"], summary["invoke_max_ms"], summary["preprocess_ms"]) == (20.0, 30.0, 3.0)
    assert (summary["latency_ms"], summary["latency_max_ms"]) == (30.0, 40.0)
    after = stats.report(now_ns=2_000_000_000)
    assert after == {"fps": 0.0, "frames": 0.0}
