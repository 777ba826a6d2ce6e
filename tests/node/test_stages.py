"""The concrete stages in one process: prepare imports, preprocesses and releases (an import failure is a
skipped frame), invoke copies and runs, post decodes, maps, tracks, publishes and counts."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time

import numpy as np
import pytest
from structlog.testing import capture_logs

import edgenode.messages as m
from edgenode.adapters.camera import CameraFrames
from edgenode.adapters.zenoh_bus import LatestSlot, Received
from edgenode.config import MaskSettings, Topics, VisualSettings
from edgenode.core.bytetrack import ByteTracker
from edgenode.core.geometry import InputGeometry
from edgenode.core.ingest import FrameRef
from edgenode.core.outbound import StageTimes
from edgenode.core.pixels import YUYV, describe_frame, fourcc_code
from edgenode.core.preprocess import CpuPreprocessor
from edgenode.core.tensors import TensorSpec
from edgenode.node.publishing import Publishers, StreamSize
from edgenode.node.scheduler import FrameSkipped, Inferred, InvokeResult, Prepared
from edgenode.node.stages import InvokeStage, PostStage, PrepareStage, keep_published, to_frame
from tests.helpers.bus import MemoryBus
from tests.helpers.fake_model import FakeRuntime, detections, fake_model
from tests.helpers.frame_producer import Producer
from tests.helpers.timing import scaled

DETECT = "rt/model/boxes2d"
LAYOUT = describe_frame(YUYV, 64, 48, 0, 64 * 48 * 2)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def first_frame(frames: CameraFrames, pid: int, fd: int) -> FrameRef:
    message = m.DmaBuffer(m.Header(m.Time(1, 0), "camera"), pid, fd, 64, 48, 128, fourcc_code("YUYV"), 64 * 48 * 2)
    frames.slot.put(Received(m.encode(message), "application/cdr;edgefirst_msgs/msg/DmaBuffer", 0))
    ref = await frames.next(timeout=scaled(1))
    assert ref is not None
    return ref


def test_prepare_imports_preprocesses_and_releases_and_an_import_failure_is_a_skipped_frame() -> None:
    camera = Producer()
    try:
        pid, fd, _ = camera.frames[0]
        frames = CameraFrames(LatestSlot(), "rt/camera/dma")
        ref = asyncio.run(first_frame(frames, pid, fd))
        prepare = PrepareStage(frames, CpuPreprocessor(TensorSpec("images", (1, 32, 32, 3), np.dtype(np.uint8)),
                                                       "letterbox"))
        staging = np.zeros((1, 32, 32, 3), np.uint8)
        before = open_fds()
        for _ in range(20):
            geometry = prepare(ref, staging)
        assert open_fds() == before
        assert geometry.top == 4 and staging.any()
        with capture_logs() as logs, pytest.raises(FrameSkipped):
            prepare(FrameRef(ref.pid, 999, ref.layout, ref.header), staging)
        assert frames.stats.skipped == {"closed_fd": 1}
        assert [log["event"] for log in logs] == [f"skipping camera frame: camera process {pid} has no fd 999 "
                                                  "(buffer closed)"]
        assert open_fds() == before
    finally:
        camera.stop()


def test_invoke_copies_the_input_unless_prepared_in_the_model_runs_it_and_copies_the_outputs() -> None:
    runtime = FakeRuntime()
    invoke = InvokeStage(runtime)  # type: ignore[arg-type]
    prepared = np.full(runtime.inputs[0].shape, 2, np.uint8)
    result = invoke(prepared)
    assert (runtime.copies, runtime.invokes) == (1, 1)
    assert int(result.outputs[0][0]) == prepared.size * 2
    assert result.outputs[0] is not runtime.output_views()[0]  # a copy: the next invoke may overwrite the view
    assert min(result.input_ns, result.invoke_ns, result.output_ns) >= 0
    runtime.input_view()[...] = 1  # prepared in the model's own input (the serial schedule): nothing to copy
    result = invoke(invoke.model_input)
    assert (runtime.copies, runtime.invokes) == (1, 2) and int(result.outputs[0][0]) == prepared.size


def post_stage(bus: MemoryBus, found: object, *, tracker: ByteTracker | None = None, threshold: float = 0.5,
               visual: bool = False) -> PostStage:
    model = fake_model(found)  # type: ignore[arg-type]
    publishers = Publishers(bus, Topics(), MaskSettings(), VisualSettings(enabled=visual), size=StreamSize(),
                            model_path="fake.tflite")
    return PostStage(model, publishers.for_model(model.description, status="fake.tflite"), tracker=tracker,
                     threshold=threshold, profile=False)


def inferred(stamp_ns: int, geometry: InputGeometry | None = None, taken_ns: int = 0) -> Inferred[FrameRef,
                                                                                                      InputGeometry]:
    header = m.Header(m.Time.from_nanos(stamp_ns), "camera")
    geometry = geometry or InputGeometry.stretch(64, 48, 32, 32)
    prepared = Prepared(FrameRef(1, 2, LAYOUT, header), np.zeros(1), geometry, taken_ns, 3_000_000)
    return Inferred(prepared, InvokeResult([], 1_000_000, 5_000_000, 10_000))


def test_post_maps_boxes_to_the_frame_labels_and_publishes_with_the_stage_times() -> None:
    bus = MemoryBus()
    post = post_stage(bus, detections([[0.25, 0.25, 0.75, 0.75]], [0.9], [1]))
    letterbox = InputGeometry.letterbox(64, 32, 32, 32)  # content rows 8..24 of the input
    with capture_logs() as logs:
        post(inferred(time.time_ns(), letterbox))
    detect = m.decode(m.Detect, bus.sent(DETECT)[0])
    (box,) = detect.boxes
    assert box.label == "car" and box.score == pytest.approx(0.9)
    assert (box.center_x, box.center_y, box.width, box.height) == pytest.approx((0.5, 0.5, 0.5, 1.0))
    assert detect.input_timestamp.to_nanos() == 4_000_000  # preprocess (3 ms) and the copy into the model (1 ms)
    assert detect.model_time.to_nanos() == 5_000_000
    assert [log["event"] for log in logs] == ["first frame decoded: 1 boxes"]
    summary = post.stats.report(time.monotonic_ns())
    assert summary["frames"] == 1 and summary["boxes_per_frame"] == 1 and summary["invoke_ms"] == 5.0


def test_post_with_a_tracker_publishes_tracked_boxes_and_strong_untracked_ones() -> None:
    bus = MemoryBus()
    # One strong box (starts a track) and one weak one below --threshold (matches no track: not published).
    found = detections([[0.1, 0.1, 0.2, 0.2], [0.6, 0.6, 0.8, 0.8]], [0.9, 0.3], [0, 0])
    post = post_stage(bus, found, tracker=ByteTracker(high_conf=0.7, low_score=0.1), threshold=0.5)
    now = time.time_ns()
    post(inferred(now))
    post(inferred(now + 33_000_000))
    first, second = (m.decode(m.Detect, payload) for payload in bus.sent(DETECT))
    assert [len(first.boxes), len(second.boxes)] == [1, 1]
    assert first.boxes[0].track.id == second.boxes[0].track.id and len(first.boxes[0].track.id) == 36
    assert (first.boxes[0].track.lifetime, second.boxes[0].track.lifetime) == (1, 1)


def test_keep_published_and_to_frame() -> None:
    found = detections([[0.0, 0.25, 0.5, 0.75], [0.5, 0.25, 1.0, 0.75]], [0.3, 0.6], [0, 1])
    kept, tracks = keep_published(found, [None, None], 0.5)
    assert kept.scores.tolist() == pytest.approx([0.6]) and tracks == [None]
    mapped = to_frame(found, InputGeometry.letterbox(64, 32, 32, 32))
    np.testing.assert_allclose(mapped.boxes, [[0, 0, 0.5, 1], [0.5, 0, 1, 1]])
    assert to_frame(found, InputGeometry.stretch(64, 48, 32, 32)) is found


def test_every_frame_recorded_on_the_post_thread_reaches_a_stats_line() -> None:
    """The post thread records while the event loop reports and restarts the interval: nothing may be lost."""
    stats = post_stage(MemoryBus(), detections([], [], [])).stats
    recorded, frames = 100_000, []
    times = StageTimes(1_000, 2_000, 3_000, 4_000, 5_000)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can

    def record() -> None:
        for _ in range(recorded):
            stats.record(times, 100, 1_000, 1)

    try:
        writer = threading.Thread(target=record)
        writer.start()
        while writer.is_alive():
            frames.append(stats.report(time.monotonic_ns())["frames"])
        writer.join()
    finally:
        sys.setswitchinterval(interval)
    frames.append(stats.report(time.monotonic_ns())["frames"])
    assert sum(frames) == recorded


def test_when_the_camera_clock_is_not_ours_latency_counts_from_the_frames_arrival() -> None:
    frames = CameraFrames(LatestSlot(), "rt/camera/dma")
    message = m.DmaBuffer(m.Header(m.Time(5, 0), "camera"), 1234, 7, 64, 48, 128, fourcc_code("YUYV"), 64 * 48 * 2)
    began = time.monotonic_ns()
    arrived = began - 200_000_000  # it waited 200 ms in the subscription before the stage took it
    frames.slot.put(Received(m.encode(message), "application/cdr;edgefirst_msgs/msg/DmaBuffer", arrived))
    ref = asyncio.run(frames.next(timeout=scaled(1)))
    assert ref is not None
    post = post_stage(MemoryBus(), detections([], [], []))
    taken = time.monotonic_ns()
    prepared = Prepared(ref, np.zeros(1), InputGeometry.stretch(64, 48, 32, 32), taken, 0)
    post(Inferred(prepared, InvokeResult([], 0, 0, 0)))
    latency = post.stats.report(time.monotonic_ns())["latency_ms"]
    assert 200 <= latency <= 200 + (time.monotonic_ns() - began) / 1e6
