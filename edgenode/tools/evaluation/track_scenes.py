"""Seeded ground-truth scenes for tracker evaluation: moving boxes and a simulated detector.

A scene is a few seconds of camera frames. Objects (normalised boxes) drift, steer and bounce
off the frame edges; some enter or leave midway; pairs may cross each other; static pillars and
nearer objects hide them. A simulated detector sees each object whose visible fraction is at
least ``min_visible``, with jittered corners (clipped to the frame), a score that falls with
occlusion and sometimes dips, random misses, random false boxes and "ghosts" (fixed spots where
it fires now and then). The
camera drops frames and its stamps jitter, so intervals vary.

Everything is pure numpy and deterministic for a given spec and seed. The ground truth of each
frame is the set of objects visible enough to be detected, with their true boxes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

NS_PER_SECOND = 1_000_000_000
# Camera stamps start at a realistic epoch time, so trackers must handle large int64 stamps.
START_NS = 1_700_000_000 * NS_PER_SECOND


@dataclass(frozen=True)
class SceneSpec:
    """What a scene contains; ranges are (low, high) of uniform draws. Units: normalised, seconds."""

    name: str
    objects: int = 10
    duration_s: float = 8.0
    frame_interval_s: float = 1.0 / 30.0
    interval_jitter: float = 0.03  # stamp jitter, fraction of the interval (std)
    drop_rate: float = 0.0  # chance each camera frame never reaches the tracker
    speed: tuple[float, float] = (0.05, 0.25)  # per second
    steer: float = 0.1  # std of the velocity change per second
    size: tuple[float, float] = (0.06, 0.16)  # box height
    aspect: tuple[float, float] = (0.4, 1.2)  # width / height
    enter_leave: float = 0.3  # chance an object enters late, and (separately) leaves early
    crossing_pairs: int = 0  # pairs walking straight at each other on nearly the same line
    pillars: int = 0  # static full-height occluders, evenly spaced
    pillar_width: float = 0.08
    min_visible: float = 0.4  # least visible fraction the detector (and the ground truth) counts
    miss_rate: float = 0.05
    score: tuple[float, float] = (0.6, 0.95)  # per-object detector confidence
    score_noise: float = 0.05
    dip_rate: float = 0.05  # chance a detection's score is multiplied by a ``dip`` draw
    dip: tuple[float, float] = (0.2, 0.7)
    false_positives: float = 0.5  # mean random false boxes per frame
    false_score: tuple[float, float] = (0.1, 0.6)
    ghosts: int = 0
    ghost_rate: float = 0.3
    ghost_score: tuple[float, float] = (0.3, 0.8)
    jitter: float = 0.03  # corner noise std, fraction of the box size
    classes: int = 3


@dataclass(frozen=True)
class Frame:
    """One camera frame: the detector's boxes (shuffled) and the ground truth."""

    timestamp_ns: int
    boxes: NDArray[np.float32]  # (N, 4) x1 y1 x2 y2
    scores: NDArray[np.float32]
    classes: NDArray[np.int32]
    truth: NDArray[np.int64]  # object id of each box, -1 for a false one
    gt_ids: NDArray[np.int64]
    gt_boxes: NDArray[np.float32]


@dataclass(frozen=True)
class Scene:
    """A generated scene; ``seed`` reproduces it."""

    spec: SceneSpec
    seed: int
    frames: tuple[Frame, ...] = field(repr=False)

    @property
    def objects(self) -> int:
        """How many distinct objects the ground truth contains."""
        return len({int(i) for frame in self.frames for i in frame.gt_ids})


# Named scenes used by the tests and bench/tracker.py.
SCENES: dict[str, SceneSpec] = {
    spec.name: spec
    for spec in (
        SceneSpec("steady", objects=10, false_positives=0.2, miss_rate=0.02, jitter=0.02),
        SceneSpec("crossing", objects=4, crossing_pairs=4, speed=(0.1, 0.2), steer=0.03),
        SceneSpec("occlusion", objects=8, pillars=3, speed=(0.12, 0.25), steer=0.05),
        SceneSpec("clutter", objects=10, false_positives=3.0, ghosts=2, miss_rate=0.15, dip_rate=0.2,
                  jitter=0.05, score_noise=0.1),
        SceneSpec("dropped-frames", objects=10, drop_rate=0.3, interval_jitter=0.1, speed=(0.1, 0.35)),
        SceneSpec("crowd", objects=30, crossing_pairs=3, pillars=2, false_positives=1.0, size=(0.04, 0.1)),
    )
}


def generate(spec: SceneSpec, seed: int = 0) -> Scene:
    """The scene ``spec`` describes, drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    times = _camera_times(spec, rng)
    paths, present, depth, heights, aspects = _trajectories(spec, rng, times)
    boxes = _boxes(paths, heights, aspects)
    visible = _visible_fraction(spec, boxes, present, depth)
    shown = np.clip(boxes, 0.0, 1.0)  # what a camera sees of a box leaving the frame
    base_score = rng.uniform(*spec.score, spec.objects + 2 * spec.crossing_pairs)
    labels = rng.integers(0, spec.classes, len(base_score)).astype(np.int32)
    ghosts = _random_boxes(spec, rng, spec.ghosts)
    frames = []
    for t, stamp in enumerate(times):
        seen = np.flatnonzero(present[t] & (visible[t] >= spec.min_visible))
        detected = seen[rng.random(len(seen)) >= spec.miss_rate]
        noisy = _jittered(spec, rng, shown[t, detected])
        scores = base_score[detected] * (0.6 + 0.4 * visible[t, detected])
        scores += rng.normal(0.0, spec.score_noise, len(detected))
        dips = rng.random(len(detected)) < spec.dip_rate
        scores[dips] *= rng.uniform(*spec.dip, int(dips.sum()))
        false_boxes = _random_boxes(spec, rng, int(rng.poisson(spec.false_positives)))
        false_scores = rng.uniform(*spec.false_score, len(false_boxes))
        firing = rng.random(spec.ghosts) < spec.ghost_rate
        ghost_boxes = _jittered(spec, rng, ghosts[firing])
        ghost_scores = rng.uniform(*spec.ghost_score, len(ghost_boxes))
        all_boxes = np.clip(np.concatenate((noisy, false_boxes, ghost_boxes)), 0.0, 1.0)
        all_scores = np.clip(np.concatenate((scores, false_scores, ghost_scores)), 0.01, 0.99)
        false_count = len(false_boxes) + len(ghost_boxes)
        all_classes = np.concatenate((labels[detected], rng.integers(0, spec.classes, false_count)))
        truth = np.concatenate((detected, np.full(false_count, -1)))
        order = rng.permutation(len(all_boxes))
        frames.append(Frame(
            timestamp_ns=int(stamp),
            boxes=all_boxes[order].astype(np.float32),
            scores=all_scores[order].astype(np.float32),
            classes=all_classes[order].astype(np.int32),
            truth=truth[order].astype(np.int64),
            gt_ids=seen.astype(np.int64),
            gt_boxes=shown[t, seen].astype(np.float32),
        ))
    return Scene(spec, seed, tuple(frames))


def _camera_times(spec: SceneSpec, rng: np.random.Generator) -> NDArray[np.int64]:
    """Stamps (ns) of the frames that reach the tracker: every camera frame, minus the dropped ones."""
    count = round(spec.duration_s / spec.frame_interval_s)
    ideal = np.arange(count) * spec.frame_interval_s
    jitter = rng.normal(0.0, spec.interval_jitter * spec.frame_interval_s, count)
    seconds = np.maximum.accumulate(ideal + np.clip(jitter, -0.4 * spec.frame_interval_s, 0.4 * spec.frame_interval_s))
    kept = rng.random(count) >= spec.drop_rate
    kept[0] = True
    return START_NS + np.round(seconds[kept] * NS_PER_SECOND).astype(np.int64)


def _trajectories(
    spec: SceneSpec, rng: np.random.Generator, times: NDArray[np.int64]
) -> tuple[NDArray[np.float64], NDArray[np.bool_], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Centres (T, K, 2), presence (T, K), depth (K,), heights (K,), aspects (K,) of all objects."""
    wanderers, pairs = spec.objects, spec.crossing_pairs
    total = wanderers + 2 * pairs
    heights = rng.uniform(*spec.size, total)
    aspects = rng.uniform(*spec.aspect, total)
    depth = rng.permutation(total).astype(np.float64)
    centre = np.empty((total, 2))
    velocity = np.empty((total, 2))
    centre[:wanderers] = rng.uniform(0.15, 0.85, (wanderers, 2))
    angle = rng.uniform(0, 2 * np.pi, wanderers)
    velocity[:wanderers] = rng.uniform(*spec.speed, (wanderers, 1)) * np.stack((np.cos(angle), np.sin(angle)), 1)
    for p in range(pairs):  # two objects on (nearly) one line, walking at each other
        a, b = wanderers + 2 * p, wanderers + 2 * p + 1
        line = rng.uniform(0.2, 0.8)
        speed = rng.uniform(*spec.speed)
        centre[a], centre[b] = (0.1, line), (0.9, line + rng.normal(0.0, 0.01))
        velocity[a], velocity[b] = (speed, 0.0), (-speed * rng.uniform(0.8, 1.2), 0.0)
    steer = np.full(total, spec.steer)
    steer[wanderers:] = 0.0
    seconds = (times - times[0]) / NS_PER_SECOND
    duration = max(float(seconds[-1]), 1e-9)
    enter = np.where(rng.random(total) < spec.enter_leave, rng.uniform(0.0, 0.4 * duration, total), -1.0)
    leave = np.where(rng.random(total) < spec.enter_leave, rng.uniform(0.6 * duration, duration, total), 2 * duration)
    enter[wanderers:], leave[wanderers:] = -1.0, 2 * duration
    paths = np.empty((len(times), total, 2))
    previous = 0.0
    half = 0.5 * np.stack((heights * aspects, heights), 1)
    for t, now in enumerate(seconds):
        dt = now - previous
        previous = now
        velocity += rng.normal(0.0, 1.0, velocity.shape) * (steer * np.sqrt(max(dt, 0.0)))[:, None]
        centre += velocity * dt
        low, high = half, 1.0 - half
        bounce = ((centre < low) & (velocity < 0)) | ((centre > high) & (velocity > 0))
        bounce[wanderers:] = False  # crossing pairs walk out of the frame
        velocity[bounce] *= -1.0
        paths[t] = centre
    present = (seconds[:, None] >= enter) & (seconds[:, None] < leave)
    inside = np.all((paths > -half) & (paths < 1.0 + half), axis=2)
    return paths, present & inside, depth, heights, aspects


def _boxes(paths: NDArray[np.float64], heights: NDArray[np.float64],
           aspects: NDArray[np.float64]) -> NDArray[np.float64]:
    """(T, K, 4) x1 y1 x2 y2 of every object in every frame."""
    half = 0.5 * np.stack((heights * aspects, heights), 1)
    return np.concatenate((paths - half, paths + half), axis=2)


def _visible_fraction(
    spec: SceneSpec, boxes: NDArray[np.float64], present: NDArray[np.bool_], depth: NDArray[np.float64]
) -> NDArray[np.float64]:
    """(T, K) fraction of each box inside the frame and not hidden by pillars or nearer objects."""
    x1, y1, x2, y2 = np.moveaxis(boxes, 2, 0)
    area = (x2 - x1) * (y2 - y1)
    on_screen = (np.clip(x2, 0, 1) - np.clip(x1, 0, 1)) * (np.clip(y2, 0, 1) - np.clip(y1, 0, 1))
    hidden = area - on_screen
    for centre in (np.arange(spec.pillars) + 0.5) / max(spec.pillars, 1):
        left, right = centre - spec.pillar_width / 2, centre + spec.pillar_width / 2
        hidden += np.clip(np.minimum(x2, right) - np.maximum(x1, left), 0, None) * (y2 - y1)
    # Nearer objects (smaller depth) hide farther ones.
    w = np.clip(np.minimum(x2[:, :, None], x2[:, None, :]) - np.maximum(x1[:, :, None], x1[:, None, :]), 0, None)
    h = np.clip(np.minimum(y2[:, :, None], y2[:, None, :]) - np.maximum(y1[:, :, None], y1[:, None, :]), 0, None)
    nearer = (depth[None, :] < depth[:, None])[None] & present[:, None, :]
    hidden += np.sum(w * h * nearer, axis=2)
    visible: NDArray[np.float64] = np.clip(1.0 - hidden / area, 0.0, 1.0)
    return visible


def _random_boxes(spec: SceneSpec, rng: np.random.Generator, count: int) -> NDArray[np.float64]:
    heights = rng.uniform(*spec.size, count)
    widths = heights * rng.uniform(*spec.aspect, count)
    x1 = rng.uniform(0.0, 1.0 - widths)
    y1 = rng.uniform(0.0, 1.0 - heights)
    return np.stack((x1, y1, x1 + widths, y1 + heights), 1).reshape(count, 4)


def _jittered(spec: SceneSpec, rng: np.random.Generator, boxes: NDArray[np.float64]) -> NDArray[np.float64]:
    size = np.concatenate((boxes[:, 2:] - boxes[:, :2],) * 2, axis=1)
    return boxes + rng.normal(0.0, spec.jitter, boxes.shape) * size
