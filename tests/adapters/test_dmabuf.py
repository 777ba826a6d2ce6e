"""dma-buf import across processes with a memfd standing in for the dma-buf: zero copy, no leaked fd, clear errors."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator

import numpy as np
import pytest

from edgenode.adapters import dmabuf
from edgenode.adapters.dmabuf import DmaBufImporter, FrameImportError
from edgenode.core.colour import encode_rgb
from edgenode.core.ingest import FrameRef
from edgenode.core.pixels import GREY, NV12, YUYV, describe_frame
from edgenode.core.preprocess import CpuPreprocessor
from edgenode.core.tensors import TensorSpec
from edgenode.messages import Header
from tests.helpers.frame_producer import Producer, pattern


@pytest.fixture
def producer() -> Iterator[Producer]:
    camera = Producer(count=4)
    yield camera
    camera.stop()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_import_is_zero_copy_read_only_and_exact(producer: Producer) -> None:
    expected = encode_rgb(pattern(64, 48), YUYV).reshape(-1)
    importer = DmaBufImporter()
    with importer.open(producer.ref()) as frame:
        assert not frame.data.flags.writeable
        assert not frame.data.flags.owndata
        np.testing.assert_array_equal(frame.data, expected)
        assert frame.physical_address() is None  # a memfd has no physical address
        with pytest.raises(ValueError, match="read-only"):
            frame.data[0] = 1
    assert importer.sync_supported is None  # a memfd is not a dma-buf: DMA_BUF_IOCTL_SYNC is never tried on it
    with pytest.raises(ValueError, match="closed"):
        _ = frame.data


def test_open_fd_count_stays_flat_over_thousands_of_frames(producer: Producer) -> None:
    importer = DmaBufImporter()
    pre = CpuPreprocessor(TensorSpec("images", (1, 32, 32, 3), np.dtype(np.int8), 1 / 255, -128))
    refs = [producer.ref(i) for i in range(4)]
    for ref in refs:  # warm up: plans, lazily opened libraries
        with importer.open(ref) as frame:
            pre.run(frame)
    before = open_fds()
    for index in range(3000):
        with importer.open(refs[index % 4]) as frame:
            pre.run(frame)
    assert open_fds() == before
    assert importer.late_unmaps == 0
    assert pre.tensor.any()


def test_failures_close_everything(producer: Producer) -> None:
    importer = DmaBufImporter()
    before = open_fds()
    for _ in range(200):
        with pytest.raises(FrameImportError):
            importer.open(producer.ref(width=640, height=480, length=640 * 480 * 2))
        with pytest.raises(FrameImportError):
            importer.open(producer.ref(fd=987))
    assert open_fds() == before


def test_size_mismatch_is_checked_before_mapping(producer: Producer) -> None:
    with pytest.raises(FrameImportError, match=r"needs 614400 bytes but fd \d+ of pid \d+ holds 6144") as caught:
        DmaBufImporter().open(producer.ref(width=640, height=480, length=640 * 480 * 2))
    assert caught.value.reason == "size"


def test_closed_fd_is_a_skip_reason(producer: Producer) -> None:
    with pytest.raises(FrameImportError, match="has no fd 987") as caught:
        DmaBufImporter().open(producer.ref(fd=987))
    assert caught.value.reason == "closed_fd"


def test_stale_pid_after_camera_restart() -> None:
    camera = Producer()
    ref = camera.ref()
    camera.stop()
    with pytest.raises(FrameImportError, match="camera restarted") as caught:
        DmaBufImporter().open(ref)
    assert caught.value.reason == "stale_pid"


def test_eperm_says_what_to_do(producer: Producer, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(pidfd: int, fd: int) -> int:
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))

    monkeypatch.setattr(dmabuf, "pidfd_getfd", refuse)
    before = open_fds()
    with pytest.raises(FrameImportError, match=r"same user as the camera.*CAP_SYS_PTRACE") as caught:
        DmaBufImporter().open(producer.ref())
    assert caught.value.reason == "permission"
    assert open_fds() == before  # the pidfd was closed


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_real_eperm_from_another_user(producer: Producer) -> None:
    """A forked child that drops to user nobody is refused by the kernel; the message says what to do."""
    pid, fd, _ = producer.frames[0]
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            try:
                os.close(dmabuf.take_fd(pid, fd))
                answer = "imported"
            except FrameImportError as exc:
                answer = f"{exc.reason}|{exc}"
            os.write(write_end, answer.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        answer = pipe.read().decode()
    os.waitpid(child, 0)
    reason, _, message = answer.partition("|")
    assert reason == "permission", answer
    assert "EPERM" in message and "same user as the camera" in message and "CAP_SYS_PTRACE" in message


def test_sync_brackets_cpu_access_where_supported(producer: Producer, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int]] = []

    def ioctl(fd: int, request: int, argument: bytes) -> bytes:
        calls.append((request, int.from_bytes(argument, "little")))
        return argument

    monkeypatch.setattr(dmabuf.fcntl, "ioctl", ioctl)
    monkeypatch.setattr(dmabuf, "is_dma_buf", lambda fd: True)  # the memfd stands in for a dma-buf
    importer = DmaBufImporter()
    with importer.open(producer.ref()) as frame:
        assert calls == [(dmabuf.DMA_BUF_IOCTL_SYNC, dmabuf.DMA_BUF_SYNC_START | dmabuf.DMA_BUF_SYNC_READ)]
        assert frame.data.size
    assert calls[1] == (dmabuf.DMA_BUF_IOCTL_SYNC, dmabuf.DMA_BUF_SYNC_END | dmabuf.DMA_BUF_SYNC_READ)
    assert importer.sync_supported is True
    assert dmabuf.DMA_BUF_IOCTL_SYNC == 0x40086200 and dmabuf.DMA_BUF_IOCTL_PHYS == 0x4008620A


def test_sync_failure_closes_the_frame(producer: Producer, monkeypatch: pytest.MonkeyPatch) -> None:
    def ioctl(fd: int, request: int, argument: bytes) -> bytes:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(dmabuf.fcntl, "ioctl", ioctl)
    monkeypatch.setattr(dmabuf, "is_dma_buf", lambda fd: True)
    before = open_fds()
    with pytest.raises(FrameImportError, match="DMA_BUF_IOCTL_SYNC failed") as caught:
        DmaBufImporter().open(producer.ref())
    assert caught.value.reason == "sync"
    assert open_fds() == before


def test_a_file_its_owner_can_truncate_is_copied_never_mapped() -> None:
    """An unsealed memfd could shrink under a mapping, and reading it would kill the node with SIGBUS."""
    camera = Producer(sealed=False)
    try:
        importer = DmaBufImporter()
        expected = encode_rgb(pattern(64, 48), YUYV).reshape(-1)
        with importer.open(camera.ref()) as frame:
            assert frame.copied and importer.copies == 1
            camera.truncate()  # the producer shrinks it while the node holds the frame
            np.testing.assert_array_equal(frame.data, expected)  # a mapping would raise SIGBUS here
        with pytest.raises(FrameImportError, match="holds 0") as caught:
            importer.open(camera.ref())
        assert caught.value.reason == "size"
    finally:
        camera.stop()


def test_pipes_sockets_and_devices_are_not_frame_buffers() -> None:
    importer = DmaBufImporter()
    read_end, write_end = os.pipe()
    null = os.open("/dev/null", os.O_RDONLY)
    before = open_fds()
    try:
        layout = describe_frame(YUYV, 64, 48, 0, 64 * 48 * 2)
        for fd, kind in ((read_end, "a pipe"), (null, "a character device")):
            with pytest.raises(FrameImportError, match=f"is {kind}, not a frame buffer") as caught:
                importer.open(FrameRef(os.getpid(), fd, layout, Header()))
            assert caught.value.reason == "fd_type"
        assert open_fds() == before
    finally:
        for fd in (read_end, write_end, null):
            os.close(fd)


# -- issue 11: nothing done with a taken fd is visible to its owner; frames bounded before they are touched --


@pytest.mark.parametrize("flags", [os.O_WRONLY, os.O_RDWR], ids=["write-only", "read-write"])
def test_a_taken_file_keeps_its_owners_offset(tmp_path: object, flags: int) -> None:
    """A frame naming a log file its owner writes (no O_APPEND) must not move that file's offset."""
    path = f"{tmp_path}/owner.log"
    fd = os.open(path, flags | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, b"x" * 8000)  # the owner's next write goes at byte 8000
        layout = describe_frame(YUYV, 64, 48, 0, 64 * 48 * 2)
        try:
            with DmaBufImporter().open(FrameRef(os.getpid(), fd, layout, Header())) as frame:
                assert frame.copied
        except FrameImportError as exc:  # a write-only fd cannot be read: refused, but untouched
            assert exc.reason == "mmap"
        assert os.lseek(fd, 0, os.SEEK_CUR) == 8000
        os.write(fd, b"END")
    finally:
        os.close(fd)
    with open(path, "rb") as written:
        assert written.read() == b"x" * 8000 + b"END"


def test_a_taken_memfd_keeps_its_owners_offset() -> None:
    fd = os.memfd_create("owner", os.MFD_CLOEXEC)
    try:
        os.write(fd, bytes(64 * 48 * 2))
        os.lseek(fd, 100, os.SEEK_SET)
        layout = describe_frame(YUYV, 64, 48, 0, 64 * 48 * 2)
        with DmaBufImporter().open(FrameRef(os.getpid(), fd, layout, Header())):
            pass
        assert os.lseek(fd, 0, os.SEEK_CUR) == 100
    finally:
        os.close(fd)


def test_other_anonymous_inodes_are_not_frame_buffers() -> None:
    """Only a dma-buf's anonymous inode is sized by seeking; an eventfd (or epoll, timerfd...) is refused."""
    event = os.eventfd(0)
    try:
        layout = describe_frame(GREY, 1, 1, 0, 1)
        with pytest.raises(FrameImportError, match="not a frame buffer") as caught:
            DmaBufImporter().open(FrameRef(os.getpid(), event, layout, Header()))
        assert caught.value.reason == "fd_type"
    finally:
        os.close(event)


def test_memfds_are_not_dma_bufs() -> None:
    fd = os.memfd_create("frame", os.MFD_CLOEXEC)
    try:
        assert dmabuf.is_dma_buf(fd) is False
    finally:
        os.close(fd)


def test_frames_over_the_cap_are_refused_before_the_fd_is_taken(producer: Producer,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    taken: list[int] = []
    real_take = dmabuf.take_fd

    def take(pid: int, fd: int) -> int:
        taken.append(fd)
        return real_take(pid, fd)

    monkeypatch.setattr(dmabuf, "take_fd", take)
    importer = DmaBufImporter(max_frame_bytes=64 * 48 * 2 - 1)
    before = open_fds()
    with pytest.raises(FrameImportError, match=r"6144-byte frame is over the 6143-byte cap \(--max-frame-bytes\)") \
            as caught:
        importer.open(producer.ref())
    assert caught.value.reason == "too_large"
    assert taken == [] and open_fds() == before and importer.copies == 0
    with DmaBufImporter(max_frame_bytes=64 * 48 * 2).open(producer.ref()) as frame:  # exactly the cap: taken
        assert len(frame.data) == 64 * 48 * 2


def test_the_default_cap_fits_a_12_megapixel_rgba_frame() -> None:
    assert dmabuf.DmaBufImporter().max_frame_bytes == 4096 * 3072 * 4


def test_the_copy_holds_only_the_frames_rows() -> None:
    """A truncatable file is copied row by row: padding and bytes before the frame's offset are not read."""
    width, height, stride, offset = 64, 48, 256, 4096
    rows = encode_rgb(pattern(width, height), YUYV).reshape(height, width * 2)
    fd = os.memfd_create("padded", os.MFD_CLOEXEC)
    try:
        buffer = bytearray(offset + stride * height)
        for row in range(height):
            start = offset + row * stride
            buffer[start:start + width * 2] = rows[row].tobytes()
        os.write(fd, bytes(buffer))
        layout = describe_frame(YUYV, width, height, stride, len(buffer), offset=offset)
        with DmaBufImporter().open(FrameRef(os.getpid(), fd, layout, Header())) as frame:
            assert frame.copied
            assert frame.data.nbytes == width * 2 * height
            assert (frame.layout.offset, frame.layout.stride) == (0, width * 2)
            np.testing.assert_array_equal(frame.data.reshape(height, width * 2), rows)
    finally:
        os.close(fd)


def test_a_copied_nv12_frame_keeps_both_planes() -> None:
    width, height, stride = 64, 48, 80
    rgb = pattern(width, height)
    dense = encode_rgb(rgb, NV12).reshape(-1)
    luma, chroma = dense[:width * height].reshape(height, width), dense[width * height:].reshape(height // 2, width)
    buffer = bytearray(stride * height * 3 // 2 + 16)
    for row in range(height):
        buffer[row * stride:row * stride + width] = luma[row].tobytes()
    for row in range(height // 2):
        start = stride * height + 16 + row * stride
        buffer[start:start + width] = chroma[row].tobytes()
    fd = os.memfd_create("nv12", os.MFD_CLOEXEC)
    try:
        os.write(fd, bytes(buffer))
        layout = describe_frame(NV12, width, height, stride, len(buffer), chroma_offset=stride * height + 16)
        with DmaBufImporter().open(FrameRef(os.getpid(), fd, layout, Header())) as frame:
            np.testing.assert_array_equal(frame.data, dense)
    finally:
        os.close(fd)


def test_one_memfd_does_not_switch_off_sync_for_dma_bufs(monkeypatch: pytest.MonkeyPatch) -> None:
    """DMA_BUF_IOCTL_SYNC is decided per fd kind: a memfd (or a hostile frame) never turns it off for dma-bufs."""
    memfd_camera, dma_camera = Producer(), Producer()
    try:
        dma_inode = os.stat(f"/proc/{dma_camera.frames[0][0]}/fd/{dma_camera.frames[0][1]}").st_ino
        synced: list[int] = []

        def ioctl(fd: int, request: int, argument: bytes) -> bytes:
            if request == dmabuf.DMA_BUF_IOCTL_SYNC and os.fstat(fd).st_ino != dma_inode:
                raise OSError(errno.ENOTTY, os.strerror(errno.ENOTTY))  # what a memfd answers
            synced.append(int.from_bytes(argument, "little"))
            return argument

        monkeypatch.setattr(dmabuf.fcntl, "ioctl", ioctl)
        monkeypatch.setattr(dmabuf, "is_dma_buf", lambda fd: os.fstat(fd).st_ino == dma_inode, raising=False)
        importer = DmaBufImporter()
        for _ in range(3):
            with importer.open(memfd_camera.ref()):
                pass
            with importer.open(dma_camera.ref()):
                pass
        start = dmabuf.DMA_BUF_SYNC_START | dmabuf.DMA_BUF_SYNC_READ
        end = dmabuf.DMA_BUF_SYNC_END | dmabuf.DMA_BUF_SYNC_READ
        assert synced == [start, end] * 3
        assert importer.sync_supported is True
    finally:
        memfd_camera.stop()
        dma_camera.stop()


def test_a_failing_end_of_read_sync_leaks_nothing_and_is_counted(producer: Producer,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 13, defect 1: when DMA_BUF_IOCTL_SYNC fails on END the mapping and the fd are released all the same."""
    from edgenode.adapters.camera import CameraFrames
    from edgenode.adapters.zenoh_bus import LatestSlot
    from edgenode.node.scheduler import FrameSkipped
    from edgenode.node.stages import PrepareStage

    def ioctl(fd: int, request: int, argument: bytes) -> bytes:
        if int.from_bytes(argument, "little") & dmabuf.DMA_BUF_SYNC_END:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return argument

    monkeypatch.setattr(dmabuf.fcntl, "ioctl", ioctl)
    monkeypatch.setattr(dmabuf, "is_dma_buf", lambda fd: True, raising=False)
    frames = CameraFrames(LatestSlot(), "rt/camera/dma")
    pre = CpuPreprocessor(TensorSpec("images", (1, 32, 32, 3), np.dtype(np.int8), 1 / 255, -128))
    ref = producer.ref()
    before = open_fds()
    prepare = PrepareStage(frames, pre)  # the node's path: import, preprocess, release
    into = np.empty((1, 32, 32, 3), np.int8)
    for _ in range(4):
        with pytest.raises(FrameSkipped, match="end-of-read sync failed"):
            prepare(ref, into)
    frame = frames.open(ref)
    assert frame is not None and frames.release(frame) is False
    assert open_fds() == before
    assert frames.stats.skipped == {"sync": 5}
    importer = DmaBufImporter()
    frame = importer.open(ref)
    with pytest.raises(FrameImportError, match="DMA_BUF_IOCTL_SYNC failed"):
        frame.close()
    with pytest.raises(ValueError, match="closed"):
        _ = frame.data
    frame.close()  # idempotent, nothing left to release
    assert open_fds() == before


def test_no_ioctl_reaches_a_file_that_is_not_a_dma_buf(producer: Producer, monkeypatch: pytest.MonkeyPatch) -> None:
    """DMA_BUF_IOCTL_SYNC and DMA_BUF_IOCTL_PHYS are dma-buf requests: a memfd or a file is never asked."""
    calls: list[int] = []

    def ioctl(fd: int, request: int, *args: object) -> object:
        calls.append(request)
        raise OSError(errno.ENOTTY, os.strerror(errno.ENOTTY))

    monkeypatch.setattr(dmabuf.fcntl, "ioctl", ioctl)
    with DmaBufImporter().open(producer.ref()) as frame:
        assert frame.physical_address() is None
    assert calls == []


def test_a_file_truncated_during_the_copy_is_a_size_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    fd = os.memfd_create("shrinking", os.MFD_CLOEXEC)
    try:
        os.write(fd, bytes(64 * 48 * 2))
        layout = describe_frame(YUYV, 64, 48, 0, 64 * 48 * 2)
        real_preadv = os.preadv

        def shrink_first(handle: int, buffers: list[memoryview], offset: int) -> int:
            os.ftruncate(fd, 100)  # the owner truncates it between fstat and the read
            return real_preadv(handle, buffers, offset)

        monkeypatch.setattr(dmabuf.os, "preadv", shrink_first)
        with pytest.raises(FrameImportError, match="truncated") as caught:
            DmaBufImporter().open(FrameRef(os.getpid(), fd, layout, Header()))
        assert caught.value.reason == "size"
    finally:
        os.close(fd)
