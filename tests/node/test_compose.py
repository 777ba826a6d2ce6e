"""The composition root's decisions: ``--schedule`` from the model's placement, the decoder and tracker
thresholds from the flags, the tracker and the model's decoder built with them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgenode.config import DecodeSettings, ModelSettings, NodeConfig, TrackSettings
from edgenode.node import compose
from edgenode.node.compose import NodeParts, choose_schedule, track_thresholds


@pytest.mark.parametrize(("schedule", "delegate", "threads", "cores", "expected"), [
    ("auto", None, 2, 2, (False, 2)),  # the model on every core: take turns, preprocessing on every core
    ("auto", None, 4, 2, (False, 2)),
    ("auto", None, 1, 2, (True, 1)),  # a free core: overlap, preprocessing off the model's core
    ("auto", None, 2, 4, (True, 2)),
    ("auto", "libvx_delegate.so", 4, 4, (True, 4)),  # the NPU runs the model: every core is free
    ("overlap", None, 2, 2, (True, 1)),  # forced overlap beside a model on every core: at least one
    ("serial", None, 1, 4, (False, 4)),
    ("serial", "libvx_delegate.so", 4, 4, (False, 4)),
])
def test_schedule_and_preprocessing_cores(schedule: str, delegate: str | None, threads: int, cores: int,
                                          expected: tuple[bool, int]) -> None:
    assert choose_schedule(schedule, delegate, threads, cores) == expected


@pytest.mark.parametrize(
    ("threshold", "track", "expected"),
    [
        # EdgeFirst 2.7 flags: decoder --threshold, high --track-high-conf.
        (0.45, TrackSettings(enabled=True, high_conf=0.7, score=0.1), (0.1, 0.7, 0.1)),
        # EdgeFirst 2.8 flags: --track-score below --threshold lets low boxes reach pass 2.
        (0.5, TrackSettings(enabled=True, high_conf=0.5, score=0.2), (0.2, 0.5, 0.2)),
        # --track-score above the high threshold: no pass 2, decoder at --threshold.
        (0.45, TrackSettings(enabled=True, high_conf=0.6, score=0.8), (0.45, 0.6, 0.6)),
        # Not tracking: the decoder runs at --threshold.
        (0.45, TrackSettings(enabled=False), (0.45, 0.7, 0.1)),
    ],
)
def test_threshold_semantics(threshold: float, track: TrackSettings, expected: tuple[float, float, float]) -> None:
    got = track_thresholds(track, DecodeSettings(threshold=threshold))
    assert (got.decoder, got.high_conf, got.low_score) == pytest.approx(expected)


def config(**sections: Any) -> NodeConfig:
    return NodeConfig(ModelSettings(Path("model.tflite"), engine="cpu"), **sections)


def test_the_tracker_follows_the_track_flags() -> None:
    assert NodeParts(config()).tracker() is None
    track = TrackSettings(enabled=True, extra_lifespan=1.5, high_conf=0.6, score=0.2, iou=0.3, update=0.5)
    tracker = NodeParts(config(track=track)).tracker()
    assert tracker is not None
    assert (tracker.high_conf, tracker.low_score, tracker.iou, tracker.lifespan_ns) == (0.6, 0.2, 0.3, 1_500_000_000)
    boxes = np.array([[0.2, 0.4, 0.3, 0.5]], np.float32)
    (info,) = tracker.update(boxes, np.array([0.65], np.float32), np.zeros(1, np.int32), 1_000)
    assert info is not None and len(info.id) == 36  # 0.65 >= --track-high-conf 0.6 starts a track


def test_the_model_loads_with_the_decoder_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    given: list[DecodeSettings] = []
    monkeypatch.setattr(compose, "load_model", lambda model, decode, mask_classes: given.append(decode))
    NodeParts(config(decode=DecodeSettings(threshold=0.45, iou=0.5))).load_model()
    NodeParts(config(decode=DecodeSettings(threshold=0.45, iou=0.5), track=TrackSettings(enabled=True))).load_model()
    assert given == [DecodeSettings(threshold=0.45, iou=0.5), DecodeSettings(threshold=0.1, iou=0.5)]
