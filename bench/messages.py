"""CDR encoding of the per-frame messages: edgenode's compiled writer, pycdr2, and edgefirst-schemas.

``python bench/run.py messages [--repeats N]``. A Detect and the Foxglove ImageAnnotations of a
frame with 5 / 20 / 50 tracked boxes, and the DmaBuffer decode every camera frame costs. The
three encoders produce the same bytes (checked here, and by tests/unit/test_messages_parity.py);
contenders run interleaved. Ratios are over edgenode's compiled writer (above 1: it is faster).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from common import header, interleaved, table

import edgenode.messages as m
from edgenode.core.annotations import frame_annotations
from edgenode.core.detections import Detections
from edgenode.core.outbound import FrameResult, StageTimes, detect_message
from edgenode.messages.cdr import encode_with_pycdr2


@dataclass(frozen=True)
class _Track:
    id: str
    lifetime: int
    created_ns: int


def _frame(count: int) -> FrameResult:
    rng = np.random.default_rng(count)
    xy = rng.uniform(0, 0.8, (count, 2)).astype(np.float32)
    boxes = np.concatenate([xy, xy + 0.1], axis=1)
    detections = Detections(boxes, rng.uniform(0.3, 1, count).astype(np.float32), np.zeros(count, np.int32))
    tracks = [_Track(f"{i:08x}-0000-4000-8000-000000000000", i + 1, 1_700_000_000_000_000_000) for i in range(count)]
    return FrameResult(m.Header(m.Time(1_700_000_000, 5), "camera"), detections, ["person"] * count, tracks,
                       StageTimes(1_000_000, 20_000_000, 10_000, 300_000, 50_000))


def _reference_detect(message: m.Detect) -> Callable[[], bytes]:
    from edgefirst.schemas import builtin_interfaces as rb
    from edgefirst.schemas import edgefirst_msgs as em
    from edgefirst.schemas import std_msgs as rs

    def t(time: m.Time) -> object:
        return rb.Time(time.sec, time.nanosec)

    def build() -> bytes:
        boxes = [em.DetectBox(center_x=b.center_x, center_y=b.center_y, width=b.width, height=b.height,
                              label=b.label, score=b.score, distance=b.distance, speed=b.speed,
                              track_id=b.track.id, track_lifetime=b.track.lifetime, track_created=t(b.track.created))
                 for b in message.boxes]
        return bytes(em.Detect(rs.Header(stamp=t(message.header.stamp), frame_id=message.header.frame_id),
                               t(message.input_timestamp), t(message.model_time), t(message.output_time),
                               boxes).to_bytes())

    return build


def main(argv: list[str]) -> str:
    repeats = int(argv[argv.index("--repeats") + 1]) if "--repeats" in argv else 300
    rows = []
    for count in (5, 20, 50):
        frame = _frame(count)
        detect = detect_message(frame)
        annotations = frame_annotations(frame, status="model.tflite", label_mode="label", width=1920, height=1080)
        reference = _reference_detect(detect)
        assert m.encode(detect) == encode_with_pycdr2(detect) == reference()
        assert m.encode(annotations) == encode_with_pycdr2(annotations)
        timings = interleaved({
            "detect": lambda d=detect: m.encode(d),
            "detect pycdr2": lambda d=detect: encode_with_pycdr2(d),
            "detect edgefirst-schemas (build + encode)": reference,
            "annotations": lambda a=annotations: m.encode(a),
            "annotations pycdr2": lambda a=annotations: encode_with_pycdr2(a),
        }, repeats)

        def us(name: str, timings: dict[str, object] = timings) -> float:
            return timings[name].median * 1e6  # type: ignore[attr-defined]

        rows.append([f"Detect, {count} boxes", f"{us('detect'):.1f}", f"{us('detect pycdr2'):.1f}",
                     f"{us('detect pycdr2') / us('detect'):.1f}x",
                     f"{us('detect edgefirst-schemas (build + encode)'):.1f}",
                     f"{us('detect edgefirst-schemas (build + encode)') / us('detect'):.2f}x"])
        rows.append([f"ImageAnnotations, {count} boxes", f"{us('annotations'):.1f}", f"{us('annotations pycdr2'):.1f}",
                     f"{us('annotations pycdr2') / us('annotations'):.1f}x", "-", "-"])
    dma = m.encode(m.DmaBuffer(m.Header(m.Time(1, 2), "camera"), 1234, 17, 1920, 1080, 3840, 0x56595559, 4147200))
    decode = interleaved({"decode": lambda: m.decode(m.DmaBuffer, dma)}, repeats)["decode"].median * 1e6
    rows.append(["DmaBuffer decode (hardened, pycdr2)", f"{decode:.1f}", "-", "-", "-", "-"])
    return (header("CDR encoding of per-frame messages", ["python", "bench/run.py", "messages"]) + "\n"
            + table(["message", "edgenode µs", "pycdr2 µs", "pycdr2 / edgenode", "edgefirst-schemas µs",
                     "edgefirst-schemas / edgenode"], rows)
            + "\nMedians of interleaved runs. edgefirst-schemas is a native (pyo3) codec; its column includes\n"
              "building its objects from ours, which is what a node holding pycdr2 dataclasses would pay.\n")
