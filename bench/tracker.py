"""Tracking benchmark: quality on generated ground truth and update speed, edgenode vs edgefirst-tracker.

``python bench/run.py tracker [--seeds=N] [--repeats=N]``. Both trackers get the same detections
with the same parameters (the flags' defaults). Four tables:

1. quality per scene (MOTA, IDF1, identity switches) with edgenode's threshold semantics;
2. the threshold semantics of EdgeFirst 2.7, 2.8 and edgenode, pooled over all scenes;
3. ablation: each of edgenode's deviations from EdgeFirst's maths reverted alone;
4. update time at 10, 30 and 100 objects, interleaved in one run.

Scenes come from ``edgenode.tools.evaluation.track_scenes`` with seeds 0.. (the constants were chosen on
seeds 100-102, so these are held-out runs).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import cpu_model, header, interleaved, load_average, numpy_call, table
from trackeval.quality import (
    EdgefirstTracker,
    EdgenodeTracker,
    Params,
    Quality,
    Tracker,
    edgefirst_available,
    evaluate,
    pooled,
)
from trackeval.variants import (
    AnyScoreSecondPassTracker,
    FrameClockKalman,
    InnovationScaledKalman,
    LateExpiryTracker,
    ReferenceCostTracker,
    ReferenceKalman,
    TwoPassTracker,
)

from edgenode.core.bytetrack import ByteTracker
from edgenode.core.kalman import KalmanXYAH
from edgenode.tools.evaluation.track_scenes import SCENES, Scene, SceneSpec, generate

DEFAULTS = Params()  # --track-high-conf 0.7, --track-score 0.1, --track-iou 0.25, --track-update 0.25, 0.5 s
SEMANTICS = {
    "EdgeFirst 2.7: decoder at --threshold 0.45, high --track-high-conf 0.7": replace(DEFAULTS, decoder=0.45,
                                                                                      low_score=0.45),
    "EdgeFirst 2.8: decoder at --track-score 0.1, high --threshold 0.45": replace(DEFAULTS, high_conf=0.45),
    "edgenode: decoder at min(--threshold, --track-score) 0.1, high --track-high-conf 0.7": DEFAULTS,
}


def _arg(argv: Sequence[str], name: str, default: int) -> int:
    for arg in argv:
        if arg.startswith(f"--{name}="):
            return int(arg.split("=", 1)[1])
    return default


def _edgenode(params: Params, cls: type[ByteTracker] = ByteTracker,
              kalman: Callable[[], KalmanXYAH] | None = None) -> Callable[[], Tracker]:
    def make() -> Tracker:
        return EdgenodeTracker(params, cls(high_conf=params.high_conf, low_score=params.low_score, iou=params.iou,
                                           update=params.update, lifespan_ns=params.lifespan_ns,
                                           kalman=kalman() if kalman else None))
    return make


def _row(name: str, q: Quality) -> list[object]:
    return [name, f"{q.mota:.3f}", f"{q.idf1:.3f}", q.switches, q.false_positives, q.misses]


def quality_tables(scenes: dict[str, list[Scene]]) -> tuple[str, Quality, Quality]:
    everything = [scene for group in scenes.values() for scene in group]
    rows = []
    for name, group in scenes.items():
        ours = pooled(evaluate(_edgenode(DEFAULTS), group, DEFAULTS.decoder))
        theirs = pooled(evaluate(lambda: EdgefirstTracker(DEFAULTS), group, DEFAULTS.decoder))
        rows.append([name, f"{ours.mota:.3f} / {theirs.mota:.3f}", f"{ours.idf1:.3f} / {theirs.idf1:.3f}",
                     f"{ours.switches} / {theirs.switches}", f"{ours.false_positives} / {theirs.false_positives}",
                     f"{ours.misses} / {theirs.misses}"])
    ours = pooled(evaluate(_edgenode(DEFAULTS), everything, DEFAULTS.decoder))
    theirs = pooled(evaluate(lambda: EdgefirstTracker(DEFAULTS), everything, DEFAULTS.decoder))
    rows.append(["**all**", f"**{ours.mota:.3f}** / {theirs.mota:.3f}", f"**{ours.idf1:.3f}** / {theirs.idf1:.3f}",
                 f"**{ours.switches}** / {theirs.switches}", f"{ours.false_positives} / {theirs.false_positives}",
                 f"{ours.misses} / {theirs.misses}"])
    out = ["#### Quality per scene (edgenode / edgefirst-tracker; MOTA and IDF1: mean over seeds, counts: sums)\n",
           table(["scene", "MOTA", "IDF1", "ID switches", "false positives", "misses"], rows)]

    rows = []
    for name, params in SEMANTICS.items():
        rows.append(_row(f"{name}: edgenode", pooled(evaluate(_edgenode(params), everything, params.decoder))))
        rows.append(_row(f"{name}: edgefirst-tracker",
                         pooled(evaluate(lambda p=params: EdgefirstTracker(p), everything, params.decoder))))
    out += ["\n#### Threshold semantics (all scenes)\n",
            table(["decoder and tracker thresholds", "MOTA", "IDF1", "ID switches", "false positives", "misses"],
                  rows)]

    update = DEFAULTS.update
    variants: dict[str, Callable[[], Tracker]] = {
        "edgenode as shipped": _edgenode(DEFAULTS),
        "EdgeFirst's filter (x += 3v, z = x + v, frame clock, innovation x update)":
            _edgenode(DEFAULTS, kalman=lambda: ReferenceKalman(update=update)),
        "--track-update scales the innovation (EdgeFirst) instead of dividing R":
            _edgenode(DEFAULTS, kalman=lambda: InnovationScaledKalman(update=update)),
        "velocity noise 1/160 (ByteTrack) instead of 3/160":
            _edgenode(DEFAULTS, kalman=lambda: KalmanXYAH(update=update, velocity_weight=1 / 160)),
        "frame clock (dt = 1 per update) instead of camera time":
            _edgenode(DEFAULTS, kalman=lambda: FrameClockKalman(update=update)),
        "no pass 3 (recovery by last matched box)": _edgenode(DEFAULTS, TwoPassTracker),
        "EdgeFirst's cost (1.5 - score) + (1.5 - IoU), most matches first": _edgenode(DEFAULTS, ReferenceCostTracker),
        "expiry after matching (EdgeFirst's order)": _edgenode(DEFAULTS, LateExpiryTracker),
        "pass 2 also offered unmatched high boxes (EdgeFirst's score 0)":
            _edgenode(DEFAULTS, AnyScoreSecondPassTracker),
        "edgefirst-tracker": lambda: EdgefirstTracker(DEFAULTS),
    }
    base = None
    rows = []
    for name, make in variants.items():
        q = pooled(evaluate(make, everything, DEFAULTS.decoder))
        base = base or q
        rows.append([*_row(name, q)[:4], f"{q.idf1 - base.idf1:+.3f}", f"{q.switches - base.switches:+d}"])
    out += ["\n#### Ablation: each deviation reverted alone (all scenes, default flags)\n",
            table(["variant", "MOTA", "IDF1", "ID switches", "ΔIDF1", "Δswitches"], rows)]
    return "".join(out), ours, theirs


def _speed_scene(objects: int, clean: bool) -> Scene:
    """``objects`` moving boxes; clean: all detected at high scores, nothing else (deps-measured's setup)."""
    size = (0.03, 0.08) if objects > 30 else (0.05, 0.12)
    if clean:
        spec = SceneSpec(f"clean-{objects}", objects=objects, duration_s=6.0, size=size, enter_leave=0.0, miss_rate=0.0,
                         false_positives=0.0, dip_rate=0.0, score=(0.8, 0.95), score_noise=0.0, min_visible=0.0)
    else:
        spec = SceneSpec(f"speed-{objects}", objects=objects, duration_s=6.0, size=size, false_positives=objects / 10,
                         crossing_pairs=objects // 10, enter_leave=0.1)
    return generate(spec, seed=objects)


class _Feeder:
    """Feeds a tracker one frame per call, looping the scene with stamps that keep increasing."""

    def __init__(self, scene: Scene, tracker: Tracker, edgefirst: bool) -> None:
        self.tracker = tracker
        keep = [frame.scores >= DEFAULTS.decoder for frame in scene.frames]
        labels = np.uintp if edgefirst else np.int32
        self.frames = [(np.ascontiguousarray(f.boxes[k], np.float32), np.ascontiguousarray(f.scores[k], np.float32),
                        np.ascontiguousarray(f.classes[k], labels), f.timestamp_ns)
                       for f, k in zip(scene.frames, keep, strict=True)]
        self.period = scene.frames[-1].timestamp_ns - scene.frames[0].timestamp_ns + 1_000_000_000
        self.index = 0

    def __call__(self) -> object:
        boxes, scores, classes, stamp = self.frames[self.index % len(self.frames)]
        loop = self.index // len(self.frames)
        self.index += 1
        return self.tracker.update(boxes, scores, classes, stamp + loop * self.period)


def speed_table(repeats: int) -> tuple[str, dict[tuple[bool, int], float]]:
    import edgefirst.tracker as eft

    rows = []
    ratios: dict[tuple[bool, int], float] = {}
    cpu = cpu_model()
    load_before = load_average()
    for clean in (True, False):
        for objects in (10, 30, 100):
            scene = _speed_scene(objects, clean)
            ours = ByteTracker(high_conf=DEFAULTS.high_conf, low_score=DEFAULTS.low_score, iou=DEFAULTS.iou,
                               update=DEFAULTS.update, lifespan_ns=DEFAULTS.lifespan_ns)
            theirs = eft.ByteTrack(high_conf=DEFAULTS.high_conf, iou=DEFAULTS.iou, update=DEFAULTS.update,
                                   lifespan_ns=DEFAULTS.lifespan_ns)
            timings = interleaved({"edgenode": _Feeder(scene, ours, False),
                                   "edgefirst": _Feeder(scene, theirs, True), "numpy call": numpy_call()},
                                  repeats, warmup=30)
            boxes = np.mean([np.count_nonzero(f.scores >= DEFAULTS.decoder) for f in scene.frames])
            a, b, call = timings["edgenode"], timings["edgefirst"], timings["numpy call"].median
            ratios[clean, objects] = a.median / b.median
            rows.append(["clean" if clean else "realistic", objects, f"{boxes:.0f}",
                         f"{a.median * 1e6:.0f} ({a.percentile(90) * 1e6:.0f})",
                         f"{b.median * 1e6:.0f} ({b.percentile(90) * 1e6:.0f})", f"{a.median / b.median:.2f}",
                         f"{call * 1e6:.2f}", f"{a.median / call:.0f} / {b.median / call:.0f}", cpu])
    text = ("#### Update time, µs: median (p90), interleaved in one run\n\n"
            "clean: every object detected at a high score, nothing else; realistic: the scene generator's "
            f"misses, score dips, false boxes, crossings and occlusions. Load average before: {load_before}; "
            f"after: {load_average()}.\n\n"
            + "The last columns state both updates in small numpy calls (one 10-element add, timed in the same "
            "rounds, between the trackers, so with their cache misses), a yardstick of the machine's load: "
            "edgenode's update is one native call (edgenode/kernels/track.c) and the Python around it.\n\n"
            + table(["frames", "objects", "boxes per frame", "edgenode", "edgefirst-tracker", "ratio",
                     "numpy call", "edgenode / edgefirst-tracker in numpy calls", "CPU"], rows))
    return text, ratios


def main(argv: list[str]) -> str:
    if not edgefirst_available():
        return "### Tracking\n\nedgefirst-tracker is not installed (pip install -e '.[test]').\n"
    seeds = range(_arg(argv, "seeds", 3))
    repeats = _arg(argv, "repeats", 1000)
    scenes = {name: [generate(spec, seed) for seed in seeds] for name, spec in SCENES.items()}
    frames = sum(len(scene.frames) for group in scenes.values() for scene in group)
    intro = (f"\nScenes: {', '.join(SCENES)}; seeds 0-{len(seeds) - 1}; {frames} frames in all. Flags at their "
             "defaults (--track-high-conf 0.7, --track-score 0.1, --track-iou 0.25, --track-update 0.25, "
             "--track-extra-lifespan 0.5). A hypothesis matches the ground truth at IoU >= 0.5.\n\n")
    quality, ours, theirs = quality_tables(scenes)
    speed, ratios = speed_table(repeats)
    met = ours.idf1 >= theirs.idf1 and ours.switches <= theirs.switches

    def goal(objects: int, bound: float) -> str:
        worst = max(ratios[True, objects], ratios[False, objects])
        return (f"{objects} objects {ratios[True, objects]:.2f}x clean, {ratios[False, objects]:.2f}x realistic: "
                f"{'met' if worst <= bound else 'NOT met'}")

    summary = (f"**Summary.** Quality goal ({'met' if met else 'NOT met'}): IDF1 {ours.idf1:.3f} vs "
               f"{theirs.idf1:.3f}, identity switches {ours.switches} vs {theirs.switches}, MOTA {ours.mota:.3f} vs "
               f"{theirs.mota:.3f}. Speed goals (edgenode's time over edgefirst-tracker's): within 2x at 10 objects "
               f"({goal(10, 2.0)}); faster at 30 ({goal(30, 1.0)}) and at 100 ({goal(100, 1.0)}); {cpu_model()}.\n\n")
    return (header("Tracking: edgenode ByteTracker vs edgefirst-tracker " + _version()) + intro + summary
            + quality + "\n" + speed)


def _version() -> str:
    import edgefirst.tracker as eft

    return eft.version()


if __name__ == "__main__":
    print(main(sys.argv[1:]))
