"""Camera ingest: newest frame only, counted skips, one warning per gap, imports that never kill the node."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

import edgenode.messages as m
from edgenode.adapters.camera import MAX_MESSAGE_BYTES, CameraFrames, CameraInfos
from edgenode.adapters.zenoh_bus import LatestSlot, Received
from edgenode.core.pixels import fourcc_code
from tests.helpers.frame_producer import Producer
from tests.helpers.timing import scaled

CDR_DMA = "application/cdr;edgefirst_msgs/msg/DmaBuffer"


def sample(pid: int = 1234, fd: int = 7, sec: int = 0, width: int = 64, height: int = 48) -> Received:
    message = m.DmaBuffer(m.Header(m.Time(sec, 0), "camera"), pid, fd, width, height, width * 2,
                          fourcc_code("YUYV"), width * height * 2)
    return Received(m.encode(message), CDR_DMA, 0)


def run(coroutine: object) -> object:
    return asyncio.run(coroutine)  # type: ignore[arg-type]


def test_newest_frame_wins_and_drops_are_counted() -> None:
    async def scenario() -> None:
        frames = CameraFrames(LatestSlot(), "rt/camera/dma")
        for sec in range(5):
            frames.slot.put(sample(sec=sec))
        ref = await frames.next(timeout=scaled(1))
        assert ref is not None and ref.header.stamp.sec == 4
        stats = frames.stats
        assert (stats.received, stats.dropped, stats.skipped_total) == (5, 4, 0)

    run(scenario())


def test_bad_messages_are_skipped_by_reason_and_logged_sparingly() -> None:
    async def scenario() -> None:
        frames = CameraFrames(LatestSlot(), "rt/camera/dma")
        with capture_logs() as logs:
            for _ in range(3):
                frames.slot.put(Received(b"junk", CDR_DMA, 0))
                assert await frames.next(timeout=scaled(0.05)) is None
            frames.slot.put(sample(pid=0))
            assert await frames.next(timeout=scaled(0.05)) is None
            frames.slot.put(sample())
            assert await frames.next(timeout=scaled(1)) is not None
        assert frames.stats.skipped == {"decode": 3, "pid": 1}
        warnings = [log for log in logs if log["log_level"] == "warning"]
        assert [w["reason"] for w in warnings] == ["decode", "pid"]  # first of each reason only

    run(scenario())


def test_one_warning_per_gap_and_a_line_when_frames_return() -> None:
    async def scenario() -> None:
        frames = CameraFrames(LatestSlot(), "rt/camera/dma", gap_seconds=scaled(0.05))
        with capture_logs() as logs:
            assert await frames.next(timeout=scaled(0.3)) is None
            frames.slot.put(sample())
            assert await frames.next(timeout=scaled(1)) is not None
            assert await frames.next(timeout=scaled(0.2)) is None
        texts = [log["event"] for log in logs]
        assert sum("no camera frames on rt/camera/dma" in t for t in texts) == 2  # one per gap, not per timeout
        assert sum("camera frames resumed" in t for t in texts) == 1

    run(scenario())


def test_import_failures_are_skips_not_crashes() -> None:
    camera = Producer()
    try:
        pid, fd, _ = camera.frames[0]

        async def scenario() -> None:
            frames = CameraFrames(LatestSlot(), "rt/camera/dma")
            with capture_logs() as logs:
                frames.slot.put(sample(pid=pid, fd=999))
                assert await frames.next_imported(timeout=scaled(0.1)) is None
                frames.slot.put(sample(pid=pid, fd=fd))
                got = await frames.next_imported(timeout=scaled(1))
            assert got is not None
            _, frame = got
            with frame:
                assert len(frame.data) == 64 * 48 * 2
            assert frames.stats.skipped == {"closed_fd": 1}
            assert any("has no fd 999" in log["event"] for log in logs)

        run(scenario())
    finally:
        camera.stop()


def test_gap_seconds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="gap_seconds"):
        CameraFrames(LatestSlot(), "t", gap_seconds=0)


def info_sample(width: int, height: int, oversize: int = 0) -> Received:
    payload = b"" if oversize else m.encode(m.CameraInfo(height=height, width=width))
    return Received(payload, "application/cdr;sensor_msgs/msg/CameraInfo", 0, oversize)


def test_camera_info_newest_only_oversize_and_bad_ones_skipped_and_counted() -> None:
    async def scenario() -> None:
        infos = CameraInfos(LatestSlot(), "rt/camera/info")
        with capture_logs() as logs:
            infos.slot.put(info_sample(640, 480))
            infos.slot.put(info_sample(1920, 1080))
            info = await infos.next(timeout=scaled(1))
            assert info is not None and (info.width, info.height) == (1920, 1080)
            infos.slot.put(info_sample(0, 0, oversize=MAX_MESSAGE_BYTES + 1))
            assert await infos.next(timeout=0.05) is None
            infos.slot.put(Received(b"junk", "", 0))
            assert await infos.next(timeout=0.05) is None
        assert infos.skipped == {"oversize": 1, "decode": 1}
        assert logs[0]["event"] == (f"skipping CameraInfo on rt/camera/info: a {MAX_MESSAGE_BYTES + 1}-byte message "
                                    f"is not a CameraInfo (at most {MAX_MESSAGE_BYTES} bytes)")
        assert [log["reason"] for log in logs] == ["oversize", "decode"]

    run(scenario())
