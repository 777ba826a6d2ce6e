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
from edgenode.core.pixels import YUYV, describe_frame
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
    assert importer.sync_supported is False  # memfd: DMA_BUF_IOCTL_SYNC tolerated, then not retried
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
