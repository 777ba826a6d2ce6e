"""Shared buffers: dma-heap where it exists, memfd otherwise; everything closed."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from edgenode.adapters.dma_heap import HEAP_DIR, HeapAllocationError, SharedBuffer, heap_allocate
from edgenode.adapters.dmabuf import DmaBufImporter
from edgenode.core.ingest import FrameRef
from edgenode.core.pixels import GREY, describe_frame
from edgenode.messages import Header


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_memfd_fallback_when_no_heap_works(tmp_path: Path) -> None:
    (tmp_path / "system").write_bytes(b"")  # a file, not a heap: the ioctl fails
    before = open_fds()
    buffer = SharedBuffer(4096, ("missing", "system"), heap_dir=tmp_path)
    assert buffer.kind == "memfd" and buffer.physical_address() is None
    buffer.begin_write()
    buffer.data[:] = 7
    buffer.end_write()
    ref = FrameRef(os.getpid(), buffer.fd, describe_frame(GREY, 64, 64, 0, 4096), Header())
    with DmaBufImporter().open(ref) as frame:
        assert (frame.data == 7).all()
    buffer.close()
    buffer.close()
    assert open_fds() == before


def test_contiguous_only_refuses_memfd(tmp_path: Path) -> None:
    before = open_fds()
    with pytest.raises(HeapAllocationError, match="no dma heap of linux,cma"):
        SharedBuffer(4096, ("linux,cma",), allow_memfd=False, heap_dir=tmp_path)
    with pytest.raises(OSError):
        heap_allocate(4096, "linux,cma", tmp_path)
    with pytest.raises(ValueError, match="positive"):
        SharedBuffer(0)
    assert open_fds() == before


@pytest.mark.device
def test_dma_heap_buffers_import_with_sync_and_a_physical_address() -> None:
    """On the board: a CMA dma-buf imports through pidfd with DMA_BUF_IOCTL_SYNC and DMA_BUF_IOCTL_PHYS working."""
    assert (HEAP_DIR / "linux,cma").exists()
    buffer = SharedBuffer(640 * 480, ("linux,cma",), allow_memfd=False)
    buffer.data[:] = np.arange(buffer.size, dtype=np.uint32).astype(np.uint8)
    importer = DmaBufImporter()
    ref = FrameRef(os.getpid(), buffer.fd, describe_frame(GREY, 640, 480, 0, buffer.size), Header())
    with importer.open(ref) as frame:
        assert importer.sync_supported is True
        assert frame.physical_address() == buffer.physical_address() is not None
        np.testing.assert_array_equal(frame.data, buffer.data)
    buffer.close()
