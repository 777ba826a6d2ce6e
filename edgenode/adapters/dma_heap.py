"""Shareable frame buffers: dma-buf from ``/dev/dma_heap/<heap>`` where it exists, else a memfd.

A :class:`SharedBuffer` is mapped read-write; ``data`` is a numpy view of it. CPU access is
bracketed with ``DMA_BUF_IOCTL_SYNC`` (a no-op for memfds). G2D needs a physically contiguous
buffer, which the CMA heap gives and :meth:`SharedBuffer.physical_address` reports.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from edgenode.adapters.dmabuf import (
    DMA_BUF_SYNC_END,
    DMA_BUF_SYNC_READ,
    DMA_BUF_SYNC_START,
    DmaBufImporter,
    physical_address,
)

HEAP_DIR = Path("/dev/dma_heap")
CONTIGUOUS_HEAPS = ("linux,cma", "reserved")
DMA_HEAP_IOCTL_ALLOC = (3 << 30) | (24 << 16) | (ord("H") << 8) | 0  # _IOWR('H', 0, struct dma_heap_allocation_data)
DMA_BUF_SYNC_WRITE = 2


class HeapAllocationError(OSError):
    """A buffer that could not be allocated or mapped."""


def heap_allocate(size: int, heap: str, heap_dir: Path = HEAP_DIR) -> int:
    """A new dma-buf fd of ``size`` bytes from ``heap``; OSError when the heap is missing or refuses."""
    heap_fd = os.open(heap_dir / heap, os.O_RDWR | os.O_CLOEXEC)
    try:
        request = bytearray(struct.pack("=QIIQ", size, 0, os.O_RDWR | os.O_CLOEXEC, 0))
        fcntl.ioctl(heap_fd, DMA_HEAP_IOCTL_ALLOC, request, True)
        return int(struct.unpack("=QIIQ", request)[1])
    finally:
        os.close(heap_fd)


class SharedBuffer:
    """``size`` bytes in a dma-buf (first heap of ``heaps`` that works) or, failing that, a memfd."""

    def __init__(self, size: int, heaps: tuple[str, ...] = ("system",), *, allow_memfd: bool = True,
                 heap_dir: Path = HEAP_DIR, name: str = "edgenode") -> None:
        if size <= 0:
            raise ValueError(f"buffer size must be positive, got {size}")
        self.size = size
        self.kind = "memfd"
        fd = -1
        for heap in heaps:
            try:
                fd = heap_allocate(size, heap, heap_dir)
            except OSError:
                continue
            self.kind = f"dma_heap/{heap}"
            break
        if fd < 0:
            if not allow_memfd:
                raise HeapAllocationError(
                    f"no dma heap of {', '.join(heaps)} under {heap_dir} could allocate {size} bytes")
            fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
            try:
                os.ftruncate(fd, size)
                # Fixed size, like a dma-buf: importers may map it without fearing SIGBUS.
                fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL)
            except OSError:
                os.close(fd)
                raise
        self.fd = fd
        try:
            self._mapping: mmap.mmap | None = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError:
            os.close(fd)
            raise
        self.data: NDArray[np.uint8] = np.frombuffer(self._mapping, np.uint8)
        self._sync = DmaBufImporter()

    def physical_address(self) -> int | None:
        """Physical address (NXP kernels, contiguous heaps), else None."""
        return physical_address(self.fd)

    def begin_write(self) -> None:
        self._sync.sync(self.fd, DMA_BUF_SYNC_START | DMA_BUF_SYNC_WRITE)

    def end_write(self) -> None:
        self._sync.sync(self.fd, DMA_BUF_SYNC_END | DMA_BUF_SYNC_WRITE)

    def begin_read(self) -> None:
        self._sync.sync(self.fd, DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ)

    def end_read(self) -> None:
        self._sync.sync(self.fd, DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ)

    def close(self) -> None:
        """Unmap and close (idempotent)."""
        if self._mapping is None:
            return
        self.data = np.empty(0, np.uint8)
        mapping, self._mapping = self._mapping, None
        try:
            mapping.close()
        except BufferError:
            pass  # a view is still alive; the mapping goes with it
        os.close(self.fd)
