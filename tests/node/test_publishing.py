"""Publishing on an in-memory bus: topics declared from the config, the reference order, the heartbeat,
the model's facts bound once, masks on their workers, the stream size, the counters."""

from __future__ import annotations

import numpy as np
import zstandard

import edgenode.messages as m
from edgenode.config import MaskSettings, Topics, VisualSettings
from edgenode.core.annotations import frame_annotations, loading_annotations
from edgenode.core.ingest import FrameRef
from edgenode.core.outbound import FrameResult, ModelInfoTemplate, StageTimes, detect_message, model_message
from edgenode.core.pixels import YUYV, describe_frame
from edgenode.node.publishing import Publishers, StreamSize
from tests.helpers.bus import MemoryBus
from tests.helpers.fake_model import detections, fake_model
from tests.helpers.timing import scaled

TOPICS = Topics(output="rt/model/output")
LAYOUT = describe_frame(YUYV, 640, 480, 0, 640 * 480 * 2)
HEADER = m.Header(m.Time(12, 345), "camera")
FRAME = FrameRef(1234, 7, LAYOUT, HEADER)


def publishers(bus: MemoryBus, *, visual: bool = True, compression: bool = False, topics: Topics = TOPICS,
               size: StreamSize | None = None) -> Publishers:
    return Publishers(bus, topics, MaskSettings(compression=compression), VisualSettings(enabled=visual),
                      size=size or StreamSize(), model_path="/models/fake.tflite")


def result(found: object) -> FrameResult:
    return FrameResult(HEADER, found, ["person"] * len(found), None, StageTimes(1, 2, 3, 4, 5))  # type: ignore[arg-type]


def test_topics_are_declared_from_the_config_and_empty_ones_are_off() -> None:
    bus = MemoryBus()
    publishers(bus, visual=False, topics=Topics(mask="", output=""))
    assert {key: pub.schema for key, pub in bus.publications.items()} == {
        "rt/model/boxes2d": "edgefirst_msgs/msg/Detect", "rt/model/info": "edgefirst_msgs/msg/ModelInfo"}
    bus = MemoryBus()
    out = publishers(bus, compression=True)
    assert set(bus.publications) == {"rt/model/boxes2d", "rt/model/info", "rt/model/mask", "rt/model/mask_compressed",
                                     "rt/model/output", "rt/model/visualization"}
    out.close()


def test_a_frame_goes_out_in_the_reference_order_with_the_models_facts() -> None:
    bus = MemoryBus()
    model = fake_model(detections([[0.1, 0.2, 0.3, 0.4]], [0.9], [0]))
    out = publishers(bus)
    publish = out.for_model(model.description, status="fake.tflite")
    frame = result(model.decoder.decode([]))
    publish.publish(frame, LAYOUT)
    publish.publish(frame, LAYOUT)
    order = ["rt/model/boxes2d", "rt/model/visualization", "rt/model/output", "rt/model/info"]
    assert bus.order() == order * 2
    assert bus.sent("rt/model/boxes2d")[0] == m.encode(detect_message(frame))
    assert bus.sent("rt/model/output")[0] == m.encode(model_message(frame, []))
    annotations = frame_annotations(frame, status="fake.tflite", label_mode="label", width=640.0, height=480.0)
    assert bus.sent("rt/model/visualization")[0] == m.encode(annotations)
    info = m.decode(m.ModelInfo, bus.sent("rt/model/info")[0])
    assert (info.model_name, info.model_types, info.labels, info.header.stamp) == (
        "fake-model", "Detection", ["person", "car"], HEADER.stamp)
    assert out.counters() == {"sent_detect": 2, "sent_info": 2, "sent_mask": 0, "sent_output": 2, "sent_visual": 2,
                              "mask_dropped": 0, "mask_failed": 0}
    out.close()


def test_a_model_without_boxes_publishes_no_detect_and_its_mask_on_the_workers() -> None:
    bus = MemoryBus()
    mask = np.zeros((8, 8, 3), np.uint8)
    mask[2:6, 2:6, 1] = 255
    model = fake_model(detections([], [], [], semantic_mask=mask), model_types="Segmentation")
    out = publishers(bus, compression=True)
    out.for_model(model.description, status="fake.tflite").publish(result(model.decoder.decode([])), LAYOUT)
    raw = bus.wait_sent("rt/model/mask", 1, scaled(10))[0]
    packed = bus.wait_sent("rt/model/mask_compressed", 1, scaled(10))[0]
    out.close()
    assert "rt/model/boxes2d" not in bus.order() and "rt/model/visualization" not in bus.order()
    sent = m.decode(m.Mask, raw)
    assert (sent.height, sent.width, sent.length, sent.encoding) == (8, 8, 1, "")  # HWC, every class
    assert bytes(sent.mask) == mask.tobytes()
    compressed = m.decode(m.Mask, packed)
    assert compressed.encoding == "zstd"
    assert zstandard.ZstdDecompressor().decompress(bytes(compressed.mask)) == mask.tobytes()


def test_the_heartbeat_publishes_placeholders_in_the_streams_size() -> None:
    bus = MemoryBus()
    size = StreamSize()
    out = publishers(bus, size=size)
    out.heartbeat(FRAME)
    assert bus.order() == ["rt/model/mask", "rt/model/boxes2d", "rt/model/info", "rt/model/visualization"]
    assert m.decode(m.Detect, bus.sent("rt/model/boxes2d")[0]).boxes == []
    assert bus.sent("rt/model/info")[0] == ModelInfoTemplate.loading().encode_at(HEADER.stamp)
    assert bus.sent("rt/model/visualization")[0] == m.encode(
        loading_annotations(HEADER.stamp, "/models/fake.tflite", 640.0, 480.0))  # the frame's own size
    size.update(1920, 1080)
    out.heartbeat(FRAME)
    assert bus.sent("rt/model/visualization")[1] == m.encode(
        loading_annotations(HEADER.stamp, "/models/fake.tflite", 1920.0, 1080.0))  # the stream's, once known
    out.close()


def test_stream_size_is_the_camera_infos_once_known_else_the_frames() -> None:
    size = StreamSize()
    assert size.of(LAYOUT) == (640.0, 480.0)
    size.update(1920, 0)  # not a size: ignored
    assert size.known is None
    size.update(1920, 1080)
    assert size.of(LAYOUT) == (1920.0, 1080.0)
