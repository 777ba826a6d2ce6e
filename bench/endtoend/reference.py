"""Contender (b): the EdgeFirst reference's own components in one sequential loop, as a process.

Per camera frame, the way the EdgeFirst Model Node does it (one loop, newest frame, no overlap):
take the camera's fd (``pidfd_getfd``), import it as an ``edgefirst_hal.Tensor``, convert it with
``edgefirst_hal.ImageProcessor`` (YUYV 1920x1080 to the model's RGB input, stretched), write it
into the TFLite input with HAL's ``normalize_to_numpy`` (int8: v - 128, float32: v / 255), invoke
the same runtime with the same threads, decode with ``edgefirst_hal.Decoder``, track with
``edgefirst.tracker.ByteTrack`` and publish ``Detect`` and ``ModelInfo`` built with the Rust
``edgefirst-schemas``. Prints one JSON line per frame with each step's time (microseconds).

``python bench/endtoend/reference.py --model M --connect EP --listen EP [--threads N]``
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="reference.py")
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--connect", required=True)
    parser.add_argument("--listen", required=True)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--threshold", type=float, default=0.1, help="decoder threshold (the node's, with --track)")
    parser.add_argument("--iou", type=float, default=0.45)
    parser.add_argument("--camera-topic", default="rt/camera/dma")
    parser.add_argument("--detect-topic", default="rt/model/boxes2d")
    parser.add_argument("--info-topic", default="rt/model/info")
    args = parser.parse_args(argv)

    import edgefirst.tracker as eft
    import edgefirst_hal as hal
    import zenoh
    from edgefirst.schemas import builtin_interfaces as bi
    from edgefirst.schemas import edgefirst_msgs as em
    from edgefirst.schemas import std_msgs as sm

    from edgenode.adapters.dmabuf import take_fd
    from edgenode.adapters.tflite import load_runtime
    from edgenode.config import ModelSettings
    from edgenode.core.ingest import FrameRejected, decode_frame
    from edgenode.logs import configure_logging

    configure_logging("warning", "console")
    runtime = load_runtime(args.model, ModelSettings(args.model, engine="cpu", threads=args.threads))
    spec, out_spec = runtime.inputs[0], runtime.outputs[0]
    height, width = int(spec.shape[1]), int(spec.shape[2])
    input_view = runtime.input_view()
    signed = input_view.dtype == np.int8
    normalization = hal.Normalization.SIGNED if signed else hal.Normalization.UNSIGNED

    output = hal.Output.detection(shape=list(out_spec.shape))
    if out_spec.scale:
        output = output.with_quantization(out_spec.scale, out_spec.zero_point)
    decoder = hal.Decoder.new_from_outputs([output], score_threshold=args.threshold, iou_threshold=args.iou,
                                           nms=hal.Nms.ClassAgnostic, decoder_version=hal.DecoderVersion.Yolov8)
    out_tensor = hal.Tensor(list(out_spec.shape), dtype=str(out_spec.dtype), mem=hal.TensorMemory.MEM)
    processor = hal.ImageProcessor()
    image = processor.create_image(width, height, hal.PixelFormat.Rgb, access="read")
    tracker = eft.ByteTrack(high_conf=0.7, iou=0.25, update=0.25, lifespan_ns=500_000_000)
    labels = ["Normal", "Fall"]

    config = zenoh.Config()
    config.insert_json5("mode", '"peer"')
    config.insert_json5("connect/endpoints", json.dumps([args.connect]))
    config.insert_json5("listen/endpoints", json.dumps([args.listen]))
    config.insert_json5("scouting/multicast/enabled", "false")
    session = zenoh.open(config)
    cdr = zenoh.Encoding.APPLICATION_CDR
    detect_pub = session.declare_publisher(args.detect_topic, encoding=cdr.with_schema("edgefirst_msgs/msg/Detect"))
    info_pub = session.declare_publisher(args.info_topic, encoding=cdr.with_schema("edgefirst_msgs/msg/ModelInfo"))
    frames = session.declare_subscriber(args.camera_topic, zenoh.handlers.RingChannel(1))

    stop = {"now": False}

    def request_stop(signum: int, frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    print(json.dumps({"event": "ready"}), flush=True)
    clock = time.perf_counter_ns
    while not stop["now"]:
        try:
            sample = frames.recv()
        except Exception:
            break
        started = clock()
        try:
            ref = decode_frame(sample.payload.to_bytes(), str(sample.encoding))
        except FrameRejected:
            continue
        try:
            fd = take_fd(ref.pid, ref.fd)
        except OSError:
            continue
        try:
            source = hal.Tensor.from_fd(fd, [ref.layout.height, ref.layout.width, 2], dtype="uint8")
        finally:
            os.close(fd)  # HAL keeps its own dup
        source.set_format(hal.PixelFormat.Yuyv)
        imported = clock()
        processor.convert(source, image)
        del source
        converted = clock()
        image.normalize_to_numpy(input_view[0], normalization)
        filled = clock()
        runtime.invoke()
        invoked = clock()
        out_tensor.from_numpy(runtime.output_views()[0])
        copied = clock()
        boxes, scores, classes, _ = decoder.decode([out_tensor], max_boxes=100)
        boxes = np.ascontiguousarray(boxes, np.float32).reshape(-1, 4)
        decoded = clock()
        infos = tracker.update(boxes, np.ascontiguousarray(scores, np.float32),
                               np.ascontiguousarray(classes, np.uintp), ref.stamp_ns)
        tracked = clock()
        stamp = bi.Time.from_nanos(ref.stamp_ns)
        header = sm.Header(stamp, ref.header.frame_id)
        detect_boxes = []
        for (x1, y1, x2, y2), score, cls, info in zip(boxes.tolist(), scores.tolist(), classes.tolist(), infos,
                                                       strict=True):
            track: dict[str, Any] = {}
            if info is not None:
                track = {"track_id": str(info.uuid), "track_lifetime": int(info.count),
                         "track_created": bi.Time.from_nanos(int(info.created))}
            detect_boxes.append(em.DetectBox(center_x=(x1 + x2) / 2, center_y=(y1 + y2) / 2, width=x2 - x1,
                                             height=y2 - y1, label=labels[int(cls)] if cls < len(labels) else str(cls),
                                             score=score, **track))
        detect = em.Detect(header, bi.Time.from_nanos(converted - started + filled - converted),
                           bi.Time.from_nanos(invoked - filled), bi.Time.from_nanos(tracked - copied), detect_boxes)
        detect_pub.put(detect.to_bytes())
        info = em.ModelInfo(header, input_shape=list(spec.shape), output_shape=list(out_spec.shape), labels=labels,
                            model_type="Detection", model_format="TFLite", model_name=args.model.stem,
                            input_dtype=em.ModelInfo.DTYPE_I8 if signed else em.ModelInfo.DTYPE_F32,
                            output_dtype=em.ModelInfo.DTYPE_I8 if signed else em.ModelInfo.DTYPE_F32)
        info_pub.put(info.to_bytes())
        published = clock()
        print(json.dumps({"event": "frame", "stamp_ns": ref.stamp_ns, "boxes": len(detect_boxes),
                          "import_us": (imported - started) // 1000, "convert_us": (converted - imported) // 1000,
                          "input_us": (filled - converted) // 1000, "invoke_us": (invoked - filled) // 1000,
                          "output_us": (copied - invoked) // 1000, "decode_us": (decoded - copied) // 1000,
                          "track_us": (tracked - decoded) // 1000, "publish_us": (published - tracked) // 1000}),
              flush=True)
    frames.undeclare()
    session.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
