"""Periodic throughput and stage-time summaries."""

from __future__ import annotations

from edgenode.core.outbound import StageTimes
from edgenode.core.stats import PERCENTILE_SAMPLES, FrameStats, percentile


def test_report_means_maxima_and_restart() -> None:
    stats = FrameStats(started_ns=0)
    stats.record(StageTimes(preprocess_ns=2_000_000, invoke_ns=10_000_000, decode_ns=1_000_000), 500_000,
                 20_000_000, 3)
    stats.record(StageTimes(preprocess_ns=4_000_000, invoke_ns=30_000_000, decode_ns=1_000_000), 500_000,
                 40_000_000, 1)
    summary = stats.report(now_ns=1_000_000_000)
    assert summary["fps"] == 2.0 and summary["frames"] == 2 and summary["boxes_per_frame"] == 2.0
    assert summary["window_s"] == 1.0
    assert (summary["invoke_ms"], summary["invoke_max_ms"], summary["preprocess_ms"]) == (20.0, 30.0, 3.0)
    assert (summary["latency_ms"], summary["latency_max_ms"]) == (30.0, 40.0)
    assert (summary["invoke_p99_ms"], summary["latency_p99_ms"]) == (30.0, 40.0)
    after = stats.report(now_ns=2_000_000_000)
    assert after == {"fps": 0.0, "frames": 0.0, "window_s": 1.0}


def test_p99_is_the_nearest_rank_of_the_window() -> None:
    assert percentile(list(range(1, 101)), 99) == 99
    assert percentile([5], 99) == 5
    stats = FrameStats(started_ns=0)
    for index in range(200):  # p99 of 200 frames is the 198th: 50 ms with three slow frames, 1 ms with two
        invoke = 50_000_000 if index in (10, 100, 150) else 1_000_000
        stats.record(StageTimes(invoke_ns=invoke), 0, 0, 0)
    stats.record(StageTimes(invoke_ns=2_000_000), 0, 0, 0)
    summary = stats.report(now_ns=1_000_000_000)
    assert (summary["invoke_p99_ms"], summary["invoke_max_ms"]) == (50.0, 50.0)
    for index in range(200):
        stats.record(StageTimes(invoke_ns=50_000_000 if index in (10, 150) else 1_000_000), 0, 0, 0)
    assert stats.report(now_ns=2_000_000_000)["invoke_p99_ms"] == 1.0


def test_p99_samples_are_bounded_to_the_newest_frames() -> None:
    stats = FrameStats(started_ns=0)
    for index in range(PERCENTILE_SAMPLES * 2):  # the first half slow, the newest half fast
        stats.record(StageTimes(invoke_ns=9_000_000 if index < PERCENTILE_SAMPLES else 1_000_000), 0, 0, 0)
    assert len(stats.stages["invoke"].samples) == PERCENTILE_SAMPLES
    summary = stats.report(now_ns=1_000_000_000)
    assert summary["invoke_p99_ms"] == 1.0 and summary["invoke_max_ms"] == 9.0
