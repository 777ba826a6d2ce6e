"""CDR encoding of the per-frame messages: edgenode against edgefirst-schemas (and pycdr2).

``python bench/run.py messages [--repeats N]``. For frames of 5, 20 and 50 tracked boxes: Detect,
Model, the Foxglove ImageAnnotations, ModelInfo and a 160x160 Mask, and the whole frame the
node publishes with ``--visualization`` (Detect, ImageAnnotations, ModelInfo). edgenode builds
these straight from the frame's arrays (``detect_cdr``, ``frame_annotations_cdr``, ...);
edgefirst-schemas (native, pyo3) is timed building its objects from the same frame and encoding
them, what a node holding the frame's results pays; pycdr2 encodes the message objects. Every
contender's bytes are checked equal first; contenders run interleaved.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from common import cpu_model, header, interleaved, load_average, table

import edgenode.messages as m
from edgenode.core.annotations import boxes_and_annotations_cdr, frame_annotations, frame_annotations_cdr
from edgenode.core.detections import Detections
from edgenode.core.outbound import (
    FrameResult,
    ModelInfoTemplate,
    StageTimes,
    detect_cdr,
    detect_message,
    mask_cdr,
    model_cdr,
    model_message,
)
from edgenode.core.tensors import TensorSpec
from edgenode.messages.cdr import encode_with_pycdr2

WIDTH, HEIGHT = 1920, 1080
LABELS = ["person", "car", "bicycle", "dog"]


@dataclass(frozen=True)
class _Track:
    id: str
    lifetime: int
    created_ns: int


def _frame(count: int) -> FrameResult:
    rng = np.random.default_rng(count)
    xy = rng.uniform(0, 0.8, (count, 2)).astype(np.float32)
    boxes = np.concatenate([xy, xy + 0.1], axis=1)
    classes = rng.integers(0, len(LABELS), count).astype(np.int32)
    detections = Detections(boxes, rng.uniform(0.3, 1, count).astype(np.float32), classes)
    tracks = [_Track(f"{i:08x}-0000-4000-8000-000000000000", i + 1, 1_700_000_000_000_000_000) for i in range(count)]
    return FrameResult(m.Header(m.Time(1_700_000_000, 5), "camera"), detections, [LABELS[c] for c in classes],
                       tracks, StageTimes(1_000_000, 20_000_000, 10_000, 300_000, 50_000))


def _info() -> ModelInfoTemplate:
    return ModelInfoTemplate.for_model(
        input_spec=TensorSpec("images", (1, 640, 640, 3), np.dtype(np.int8), 1 / 255, -128),
        output_spec=TensorSpec("output0", (1, 84, 8400), np.dtype(np.int8), 0.004, -128),
        labels=LABELS, model_types="Detection", model_format="TFLite", model_name="yolov8s.tflite")


def _schemas(frame: FrameResult, mask: m.Mask, info: m.ModelInfo) -> dict[str, Callable[[], bytes]]:
    """edgefirst-schemas' objects built from the frame, then encoded: per message."""
    from edgefirst.schemas import builtin_interfaces as rb
    from edgefirst.schemas import edgefirst_msgs as em
    from edgefirst.schemas import std_msgs as rs

    def boxes() -> list[Any]:
        xyxy = frame.detections.boxes.astype(np.float64)
        stamp = frame.header.stamp
        out = []
        for (x1, y1, x2, y2), label, score, track in zip(xyxy.tolist(), frame.labels,
                                                         frame.detections.scores.tolist(), frame.tracks or [],
                                                         strict=True):
            sec, nanosec = divmod(track.created_ns, 1_000_000_000) if track else (stamp.sec, stamp.nanosec)
            out.append(em.DetectBox(center_x=(x1 + x2) / 2, center_y=(y1 + y2) / 2, width=x2 - x1, height=y2 - y1,
                                    label=label, score=score, distance=0.0, speed=0.0,
                                    track_id=track.id if track else "", track_lifetime=track.lifetime if track else 1,
                                    track_created=rb.Time(sec, nanosec)))
        return out

    def header() -> Any:
        return rs.Header(stamp=rb.Time(frame.header.stamp.sec, frame.header.stamp.nanosec),
                         frame_id=frame.header.frame_id)

    def times(*nanos: int) -> list[Any]:
        return [rb.Time(*divmod(value, 1_000_000_000)) for value in nanos]

    def durations(*nanos: int) -> list[Any]:
        return [rb.Duration(*divmod(value, 1_000_000_000)) for value in nanos]

    t = frame.times

    def detect() -> bytes:
        return bytes(em.Detect(header(), *times(t.preprocess_ns, t.invoke_ns, t.post_ns), boxes()).to_bytes())

    def model() -> bytes:
        return bytes(em.Model(header(), *durations(t.preprocess_ns, t.invoke_ns, t.output_ns, t.post_ns),
                              boxes=boxes(), masks=[]).to_bytes())

    def model_info() -> bytes:
        info_header = rs.Header(stamp=rb.Time(info.header.stamp.sec, info.header.stamp.nanosec),
                                frame_id=info.header.frame_id)
        return bytes(em.ModelInfo(info_header, input_shape=info.input_shape, output_shape=info.output_shape,
                                  labels=info.labels, model_type=info.model_types, model_format=info.model_format,
                                  model_name=info.model_name, input_dtype=info.input_dtype,
                                  output_dtype=info.output_dtype, input_type=info.input_type,
                                  output_type=info.output_type).to_bytes())

    def mask_bytes() -> bytes:
        return bytes(em.Mask(mask.height, mask.width, mask.length, mask.encoding, mask.mask, mask.boxed).to_bytes())

    return {"Detect": detect, "Model": model, "ModelInfo": model_info, "Mask": mask_bytes}


def main(argv: list[str]) -> str:
    parser = argparse.ArgumentParser(prog="bench/messages.py")
    parser.add_argument("--repeats", type=int, default=300)
    repeats = parser.parse_args(argv).repeats
    load_before = load_average()
    cpu = cpu_model()
    rows = []
    goals = []
    info = _info()
    mask = m.Mask(160, 160, 1, "", bytes(160 * 160), False)
    for count in (5, 20, 50):
        frame = _frame(count)
        stamp = frame.header.stamp
        info_message = m.decode(m.ModelInfo, info.encode_at(stamp))
        schemas = _schemas(frame, mask, info_message)

        def annotations(f: FrameResult = frame) -> bytes:
            return frame_annotations_cdr(f, status="yolov8s.tflite", label_mode="label", width=WIDTH, height=HEIGHT)

        def whole_frame(f: FrameResult = frame) -> None:  # as node/publishing.py does it
            boxes_cdr, _ = boxes_and_annotations_cdr(f, status="yolov8s.tflite", label_mode="label", width=WIDTH,
                                                     height=HEIGHT)
            detect_cdr(f, boxes_cdr)
            info.encode_at(f.header.stamp)

        objects = {
            "Detect": detect_message(frame),
            "Model": model_message(frame, []),
            "ImageAnnotations": frame_annotations(frame, status="yolov8s.tflite", label_mode="label", width=WIDTH,
                                                  height=HEIGHT),
            "ModelInfo": info_message,
            "Mask": mask,
        }
        ours: dict[str, Callable[[], object]] = {
            "Detect": lambda f=frame: detect_cdr(f),  # type: ignore[misc]
            "Model": lambda f=frame: model_cdr(f, []),  # type: ignore[misc]
            "ImageAnnotations": annotations,
            "ModelInfo": lambda s=stamp: info.encode_at(s),  # type: ignore[misc]
            "Mask": lambda: mask_cdr(mask),
        }
        for name, run in ours.items():
            expected = m.encode(objects[name])
            assert run() == expected == encode_with_pycdr2(objects[name]), name
            if name in schemas:
                assert schemas[name]() == expected, name
        contenders: dict[str, Callable[[], object]] = {f"ours {name}": run for name, run in ours.items()}
        contenders.update({f"schemas {name}": run for name, run in schemas.items()})
        contenders.update({f"pycdr2 {name}": (lambda o=objects[name]: encode_with_pycdr2(o))  # type: ignore[misc]
                           for name in ("Detect", "ImageAnnotations")})
        contenders["ours whole frame"] = whole_frame
        timings = interleaved(contenders, repeats)

        def us(name: str, timings: dict[str, Any] = timings) -> float:
            return float(timings[name].median * 1e6)

        for name in ours:
            reference = us(f"schemas {name}") if f"schemas {name}" in timings else None
            pycdr2 = us(f"pycdr2 {name}") if f"pycdr2 {name}" in timings else None
            rows.append([f"{name}, {count} boxes" if name in ("Detect", "Model", "ImageAnnotations") else name,
                         f"{us(f'ours {name}'):.1f}",
                         "-" if reference is None else f"{reference:.1f}",
                         "-" if reference is None else f"{reference / us(f'ours {name}'):.2f}x",
                         "-" if pycdr2 is None else f"{pycdr2:.1f}", cpu])
        rows.append([f"**whole frame, {count} boxes** (Detect + ImageAnnotations + ModelInfo)",
                     f"{us('ours whole frame'):.1f}", f"{us('schemas Detect'):.1f} (Detect alone)",
                     f"{us('schemas Detect') / us('ours whole frame'):.2f}x", "-", cpu])
        goals.append((count, us("ours Detect"), us("schemas Detect"), us("ours whole frame")))
    goal_lines = [f"- {count} boxes: Detect {ours_detect:.1f} µs vs edgefirst-schemas {theirs:.1f} µs "
                  f"(goal: at least as fast: {'met' if ours_detect <= theirs else 'NOT met'}); whole frame "
                  f"{whole:.1f} µs vs their Detect alone, {whole / theirs:.2f}x its time"
                  + (f" (goal: no slower: {'met' if whole <= theirs else 'NOT met'})" if count == 50 else "")
                  for count, ours_detect, theirs, whole in goals]
    return (header("CDR encoding of per-frame messages", ["python", "bench/run.py", "messages", *argv]) + "\n"
            + f"- load average before: {load_before}; after: {load_average()}\n\n"
            + "\n".join(goal_lines) + "\n\n"
            + table(["message", "edgenode µs", "edgefirst-schemas µs", "schemas / edgenode", "pycdr2 µs", "CPU"], rows)
            + "\nMedians of interleaved runs; every contender's bytes are checked equal first. edgefirst-schemas\n"
              "is a native (pyo3) codec; its column includes building its objects from the frame's results, which\n"
              "is what the node would pay to use it. Above 1x: edgenode is faster.\n")


if __name__ == "__main__":
    print(main(sys.argv[1:]))
