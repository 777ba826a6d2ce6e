"""Camera messages to frame references: DmaBuffer and CameraFrame, every field checked before use."""

from __future__ import annotations

import numpy as np
import pytest

import edgenode.messages as m
from edgenode.core.geometry import InputGeometry
from edgenode.core.ingest import FrameRejected, decode_frame, frame_from_camera_frame, frame_from_dma_buffer
from edgenode.core.pixels import (
    FORMATS,
    GREY,
    NV12,
    RGB,
    YUYV,
    FrameLayoutError,
    describe_frame,
    format_by_fourcc,
    format_by_name,
    fourcc_code,
    fourcc_text,
)

CDR_DMA = "application/cdr;edgefirst_msgs/msg/DmaBuffer"
CDR_FRAME = "application/cdr;edgefirst_msgs/msg/CameraFrame"


def dma(**fields: int) -> m.DmaBuffer:
    values = {"pid": 1234, "fd": 7, "width": 1920, "height": 1080, "stride": 3840, "fourcc": fourcc_code("YUYV"),
              "length": 1920 * 1080 * 2}
    values.update(fields)
    return m.DmaBuffer(m.Header(m.Time(5, 6), "camera"), **values)


def camera_frame(fmt: str = "YUYV", shape: tuple[int, ...] = (1080, 1920), planes: list[m.TensorPlane] | None = None,
                 storage: int = m.Tensor.STORAGE_DMA_BUF, pid: int = 1234) -> m.CameraFrame:
    planes = planes if planes is not None else [m.TensorPlane(handle=9, offset=0, stride=3840, size=3840 * 1080,
                                                              used=3840 * 1080)]
    tensor = m.Tensor(storage_kind=storage, pid=pid, shape=list(shape), format=fmt, planes=planes)
    return m.CameraFrame(m.Header(m.Time(7, 8), "camera"), 42, tensor)


def test_fourcc_round_trip_and_names() -> None:
    assert fourcc_code("YUYV") == 0x56595559
    assert fourcc_text(0x56595559) == "YUYV"
    assert fourcc_text(0x00000001) == "\\x01\\x00\\x00\\x00"
    for fmt in FORMATS:
        assert format_by_fourcc(fmt.fourcc) is fmt
        assert format_by_name(fmt.name.lower()) is fmt
    assert format_by_fourcc(fourcc_code("RGB ")) is RGB
    assert format_by_name("Y800") is GREY
    with pytest.raises(FrameLayoutError, match=r"unsupported fourcc 'MJPG'.*supported: YUYV"):
        format_by_fourcc(fourcc_code("MJPG"))
    with pytest.raises(FrameLayoutError, match="four ASCII"):
        fourcc_code("YUV")


def test_dma_buffer_round_trip() -> None:
    ref = decode_frame(m.encode(dma()), CDR_DMA)
    assert (ref.pid, ref.fd, ref.layout.width, ref.layout.height, ref.layout.stride) == (1234, 7, 1920, 1080, 3840)
    assert ref.layout.format is YUYV and ref.header.frame_id == "camera" and ref.stamp_ns == 5_000_000_006
    assert decode_frame(m.encode(dma(stride=0))).layout.stride == 3840  # 0 = dense rows; encoding unknown: try both


def test_camera_frame_round_trip_from_the_reference_encoder() -> None:
    schemas = pytest.importorskip("edgefirst.schemas.edgefirst_msgs")
    from edgefirst.schemas.builtin_interfaces import Time

    frame = schemas.CameraFrame(
        stamp=Time(3, 4), frame_id="camera", seq=99,
        tensor=schemas.Tensor(storage_kind=2, pid=4321, dtype=0, shape=[720, 1280], format="NV12",
                              planes=[schemas.TensorPlane(handle=11, offset=0, stride=1280, size=1280 * 720,
                                                          used=1280 * 720),
                                      schemas.TensorPlane(handle=11, offset=1280 * 736, stride=1280,
                                                          size=1280 * 360, used=1280 * 360)]))
    for encoding in (CDR_FRAME, ""):
        ref = decode_frame(frame.to_bytes(), encoding)
        assert (ref.pid, ref.fd, ref.seq, ref.layout.format) == (4321, 11, 99, NV12)
        assert (ref.layout.width, ref.layout.height, ref.layout.chroma_offset) == (1280, 720, 1280 * 736)


def test_nv12_single_plane_uses_hal_shape() -> None:
    plane = m.TensorPlane(handle=3, stride=640, size=640 * 720)
    ref = frame_from_camera_frame(camera_frame("NV12", (720, 640), [plane]))
    assert (ref.layout.height, ref.layout.chroma_offset) == (480, 640 * 480)
    with pytest.raises(FrameRejected, match="height \\* 3 / 2"):
        frame_from_camera_frame(camera_frame("NV12", (721, 640), [plane]))


@pytest.mark.parametrize(("message", "reason", "text"), [
    (dma(pid=0), "pid", "pid 0"),
    (dma(fd=-1), "fd", "fd -1"),
    (dma(fourcc=fourcc_code("H264")), "layout", "unsupported fourcc 'H264'"),
    (dma(stride=1000), "layout", "stride 1000 is shorter"),
    (dma(length=100), "layout", "needs 4147200 bytes but the buffer has 100"),
    (dma(width=0), "layout", "outside 1..16384"),
    (dma(width=99999), "layout", "outside"),
    (dma(width=1919, stride=4000, length=10**8), "layout", "even width"),
    (camera_frame(storage=0), "storage", "storage kind 0"),
    (camera_frame(planes=[]), "layout", "no planes"),
    (camera_frame(planes=[m.TensorPlane(handle=-1, data=b"x")]), "storage", "inline"),
    (camera_frame(planes=[m.TensorPlane(handle=1, stride=3840, size=3840 * 1080),
                          m.TensorPlane(handle=2, stride=3840, size=10)]), "layout", "separate buffers"),
    (camera_frame(fmt="MJPG"), "layout", "unsupported pixel format"),
    (camera_frame(shape=(1080,)), "layout", "not \\[height, width"),
    (camera_frame(pid=0), "pid", "pid 0"),
])
def test_bad_messages_are_rejected_with_a_reason(message: m.DmaBuffer | m.CameraFrame, reason: str,
                                                 text: str) -> None:
    with pytest.raises(FrameRejected, match=text) as caught:
        if isinstance(message, m.DmaBuffer):
            frame_from_dma_buffer(message)
        else:
            frame_from_camera_frame(message)
    assert caught.value.reason == reason


@pytest.mark.parametrize("payload", [b"", b"\x00\x01\x00\x00", b"\x00\x01\x00\x00" + b"\xff" * 40, b"garbage!" * 9])
def test_garbage_is_a_decode_skip(payload: bytes) -> None:
    for encoding in ("", CDR_DMA, CDR_FRAME):
        with pytest.raises(FrameRejected) as caught:
            decode_frame(payload, encoding)
        assert caught.value.reason in ("decode", "layout", "pid", "fd", "storage")


def test_nv12_chroma_must_not_overlap_luma() -> None:
    with pytest.raises(FrameLayoutError, match="overlaps"):
        describe_frame(NV12, 64, 48, 64, 10**6, chroma_offset=64 * 10)
    with pytest.raises(FrameLayoutError, match="chroma stride"):
        describe_frame(NV12, 64, 48, 64, 10**6, chroma_stride=10)
    with pytest.raises(FrameLayoutError, match="even height"):
        describe_frame(NV12, 64, 47, 64, 10**6)


def test_geometry_letterbox_and_identity() -> None:
    stretch = InputGeometry.stretch(1920, 1080, 640, 640)
    boxes = np.array([[0.1, 0.2, 0.3, 0.4]], np.float32)
    assert stretch.is_identity and stretch.boxes_to_frame(boxes) is boxes
    tall = InputGeometry.letterbox(480, 640, 640, 640)
    assert (tall.left, tall.top, tall.width, tall.height) == (80, 0, 480, 640)
    np.testing.assert_allclose(tall.content_normalized, (0.125, 0, 0.875, 1))
    mapped = tall.boxes_to_frame(np.array([[0.125, 0.0, 0.5, 0.5], [0.0, 0.0, 1.0, 1.0]], np.float32))
    np.testing.assert_allclose(mapped, [[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 1.0, 1.0]], atol=1e-6)
    assert mapped.dtype == np.float32
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        tall.boxes_to_frame(np.zeros((3,), np.float32))


def test_published_boxes_stay_inside_the_frame() -> None:
    """Issue 11: a stretched (identity) frame passed decoder boxes through unclamped (x2 = 1.001 was published)."""
    from edgenode.core.detections import Detections
    from edgenode.core.outbound import FrameResult, StageTimes, boxes

    stretch = InputGeometry.stretch(1280, 720, 640, 640)
    inside = np.array([[0.1, 0.2, 0.3, 0.4]], np.float32)
    assert stretch.boxes_to_frame(inside) is inside  # nothing to clamp: no copy
    raw = np.array([[-0.02, 0.2, 1.001, 0.5], [0.5, -1e-3, 0.7, 1.5]], np.float32)
    mapped = stretch.boxes_to_frame(raw)
    np.testing.assert_array_equal(mapped, np.array([[0.0, 0.2, 1.0, 0.5], [0.5, 0.0, 0.7, 1.0]], np.float32))
    assert raw[0, 2] == np.float32(1.001)  # the decoder's array is left alone
    detections = Detections(mapped, np.array([0.9, 0.8], np.float32), np.array([0, 1], np.int32))
    result = FrameResult(m.Header(), detections, ["a", "b"], None, StageTimes())
    for box in boxes(result):
        assert box.center_x - box.width / 2 >= 0.0 and box.center_x + box.width / 2 <= 1.0 + 1e-7
        assert box.center_y - box.height / 2 >= 0.0 and box.center_y + box.height / 2 <= 1.0 + 1e-7
