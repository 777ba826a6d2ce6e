"""dma-buf import: take another process's frame fd with pidfd_getfd and map it read-only, zero copy.

``DmaBufImporter.open(ref)`` returns an :class:`ImportedFrame`; use it as a context manager.
``frame.data`` is a read-only numpy view of the mapping (no copy); CPU reads are bracketed by
``DMA_BUF_IOCTL_SYNC`` START (in ``open``) and END (on close); fds that do not support it, such
as memfds, are tolerated. On exit, or on any error while opening, the mapping, the imported fd and the pidfd
are all closed. A memfd stands in for a dma-buf wherever the hardware is absent.

The fd comes from whoever published the frame message, so it is checked before use: pipes,
sockets, devices and directories are refused. A dma-buf cannot change size, nor can a memfd
sealed against shrinking (``F_SEAL_SHRINK``, as the camera simulator seals its buffers); any
other file could be truncated by its owner while mapped, and reading past its end would kill
the node with SIGBUS, so such a frame is read into a private copy instead of being mapped.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import mmap
import os
import stat
import struct
from types import TracebackType

import numpy as np
from numpy.typing import NDArray

from edgenode.core.ingest import FrameRef
from edgenode.core.pixels import FrameLayout

SYS_PIDFD_OPEN = 434  # same number on x86-64 and aarch64 (generic syscall table)
SYS_PIDFD_GETFD = 438


def _iow(kind: str, number: int, size: int) -> int:
    return (1 << 30) | (size << 16) | (ord(kind) << 8) | number


DMA_BUF_IOCTL_SYNC = _iow("b", 0, 8)
DMA_BUF_IOCTL_PHYS = _iow("b", 10, ctypes.sizeof(ctypes.c_ulong))  # NXP kernels only
DMA_BUF_SYNC_READ = 1
DMA_BUF_SYNC_START = 0
DMA_BUF_SYNC_END = 4
_NOT_SUPPORTED = (errno.ENOTTY, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOSYS)

PERMISSION_HINT = ("run edgenode as the same user as the camera process, or give it CAP_SYS_PTRACE "
                   "(systemd: AmbientCapabilities=CAP_SYS_PTRACE)")


class FrameImportError(OSError):
    """A frame that could not be imported; ``reason`` is a short counter key (permission, stale_pid, ...)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason

    def __str__(self) -> str:
        return str(self.args[0])


_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


def pidfd_open(pid: int) -> int:
    """A pidfd for ``pid`` (``os.pidfd_open`` where Python has it)."""
    if hasattr(os, "pidfd_open"):
        return os.pidfd_open(pid)
    result = _syscall(SYS_PIDFD_OPEN, ctypes.c_int(pid), ctypes.c_uint(0))
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return int(result)


def pidfd_getfd(pidfd: int, target_fd: int) -> int:
    """A duplicate, in this process, of ``target_fd`` of the process behind ``pidfd`` (syscall 438)."""
    result = _syscall(SYS_PIDFD_GETFD, ctypes.c_int(pidfd), ctypes.c_int(target_fd), ctypes.c_uint(0))
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return int(result)


def take_fd(pid: int, fd: int) -> int:
    """Import ``fd`` of process ``pid``; FrameImportError says why not, and what to do about it."""
    try:
        pidfd = pidfd_open(pid)
    except OSError as exc:
        if exc.errno == errno.ESRCH:
            raise FrameImportError("stale_pid", f"camera process {pid} is gone (camera restarted?)") from None
        raise FrameImportError("pidfd", f"pidfd_open({pid}) failed: {exc.strerror}") from None
    try:
        return pidfd_getfd(pidfd, fd)
    except OSError as exc:
        if exc.errno == errno.EPERM:
            raise FrameImportError(
                "permission", f"not allowed to take fd {fd} from camera process {pid} (pidfd_getfd: EPERM): "
                              f"{PERMISSION_HINT}") from None
        if exc.errno == errno.EBADF:
            raise FrameImportError("closed_fd", f"camera process {pid} has no fd {fd} (buffer closed)") from None
        if exc.errno == errno.ESRCH:
            raise FrameImportError("stale_pid", f"camera process {pid} is gone (camera restarted?)") from None
        raise FrameImportError("pidfd", f"pidfd_getfd({pid}, {fd}) failed: {exc.strerror}") from None
    finally:
        os.close(pidfd)


def buffer_size(fd: int) -> int:
    """Bytes behind ``fd`` (dma-bufs and memfds both report it through lseek)."""
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
        except OSError:
            pass


_NOT_BUFFERS = {stat.S_IFIFO: "a pipe", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
                stat.S_IFBLK: "a block device", stat.S_IFDIR: "a directory", stat.S_IFLNK: "a symbolic link"}


def fixed_size(fd: int, mode: int) -> bool:
    """Whether the buffer behind ``fd`` cannot shrink while mapped (no SIGBUS): a dma-buf or a shrink-sealed memfd.

    A dma-buf's inode has no file type bits (an anonymous inode); a regular file (memfd, tmpfs or
    disk file) is fixed only when sealed with ``F_SEAL_SHRINK``.
    """
    if not stat.S_ISREG(mode):
        return True
    try:
        seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
    except OSError:
        return False  # a file system without seals: its owner may truncate it
    return bool(seals & fcntl.F_SEAL_SHRINK)


def physical_address(fd: int) -> int | None:
    """The dma-buf's physical address via NXP's ``DMA_BUF_IOCTL_PHYS``, or None where unsupported."""
    out = bytearray(ctypes.sizeof(ctypes.c_ulong))
    try:
        fcntl.ioctl(fd, DMA_BUF_IOCTL_PHYS, out, True)
    except OSError:
        return None
    value = int.from_bytes(out, "little")
    return value or None


class ImportedFrame:
    """An imported, mapped frame (a :class:`edgenode.core.preprocess.FrameBuffer`); close it, or use ``with``."""

    def __init__(self, fd: int, mapping: mmap.mmap | bytearray, layout: FrameLayout,
                 importer: DmaBufImporter) -> None:
        self.fd = fd
        self.layout = layout
        self.copied = not isinstance(mapping, mmap.mmap)  # a private copy of a file its owner could truncate
        self._mapping: mmap.mmap | bytearray | None = mapping
        self._importer = importer
        self._data: NDArray[np.uint8] | None = np.frombuffer(mapping, np.uint8, count=layout.end)
        self._physical: int | None = None if self.copied else -1
        self._synced = False

    @property
    def data(self) -> NDArray[np.uint8]:
        """Read-only view of the buffer's bytes from its start (zero copy)."""
        if self._data is None:
            raise ValueError("frame is closed")
        return self._data

    def physical_address(self) -> int | None:
        """Physical address for G2D, None when the kernel has no DMA_BUF_IOCTL_PHYS (or it is not a dma-buf)."""
        if self._physical == -1:
            self._physical = physical_address(self.fd)
        return self._physical

    def begin_cpu_access(self) -> None:
        """``DMA_BUF_IOCTL_SYNC`` START|READ (the importer does this before handing the frame out)."""
        try:
            self._synced = self._importer.sync(self.fd, DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> ImportedFrame:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """End CPU access, unmap and close the imported fd (idempotent)."""
        if self._mapping is None:
            return
        if self._synced:
            self._importer.sync(self.fd, DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ)
            self._synced = False
        self._data = None
        mapping, self._mapping = self._mapping, None
        try:
            if isinstance(mapping, mmap.mmap):
                mapping.close()
        except BufferError:  # a caller still holds a view: the mapping goes when that view does
            self._importer.late_unmaps += 1
        os.close(self.fd)


class DmaBufImporter:
    """Imports frames named by FrameRefs; remembers whether DMA_BUF_IOCTL_SYNC is supported."""

    def __init__(self) -> None:
        self.sync_supported: bool | None = None
        self.late_unmaps = 0
        self.copies = 0  # frames read into a private copy (files their owner could truncate)

    def open(self, ref: FrameRef) -> ImportedFrame:
        """Import and map ``ref``; raises FrameImportError (everything opened so far is closed)."""
        fd = take_fd(ref.pid, ref.fd)
        try:
            mode = os.fstat(fd).st_mode
            kind = _NOT_BUFFERS.get(stat.S_IFMT(mode))
            if kind is not None:
                raise FrameImportError("fd_type", f"fd {ref.fd} of pid {ref.pid} is {kind}, not a frame buffer")
            try:
                size = buffer_size(fd)
            except OSError as exc:
                raise FrameImportError("fd_type", f"fd {ref.fd} of pid {ref.pid} has no size, not a frame buffer "
                                                  f"({exc.strerror})") from None
            if size < ref.layout.end:
                raise FrameImportError("size", f"frame needs {ref.layout.end} bytes but fd {ref.fd} of pid "
                                               f"{ref.pid} holds {size}")
            mapping = self._map(fd, ref) if fixed_size(fd, mode) else self._copy(fd, ref)
        except BaseException:
            os.close(fd)
            raise
        frame = ImportedFrame(fd, mapping, ref.layout, self)
        frame.begin_cpu_access()
        return frame

    @staticmethod
    def _map(fd: int, ref: FrameRef) -> mmap.mmap:
        try:
            return mmap.mmap(fd, ref.layout.end, mmap.MAP_SHARED, mmap.PROT_READ)
        except (OSError, ValueError) as exc:
            raise FrameImportError("mmap", f"cannot map fd {ref.fd} of pid {ref.pid}: {exc}") from None

    def _copy(self, fd: int, ref: FrameRef) -> bytearray:
        """The frame's bytes, read (a truncated file gives a short read, never SIGBUS)."""
        copy = bytearray(ref.layout.end)
        try:
            count = os.preadv(fd, [copy], 0)
        except OSError as exc:
            raise FrameImportError("mmap", f"cannot read fd {ref.fd} of pid {ref.pid}: {exc.strerror}") from None
        if count < ref.layout.end:
            raise FrameImportError("size", f"frame needs {ref.layout.end} bytes but fd {ref.fd} of pid {ref.pid} "
                                           f"gave {count} (truncated)")
        self.copies += 1
        return copy

    def sync(self, fd: int, flags: int) -> bool:
        """``DMA_BUF_IOCTL_SYNC``; False (once learnt, without trying again) where the fd type lacks it."""
        if self.sync_supported is False:
            return False
        try:
            fcntl.ioctl(fd, DMA_BUF_IOCTL_SYNC, struct.pack("=Q", flags))
        except OSError as exc:
            if exc.errno in _NOT_SUPPORTED:
                if self.sync_supported is None:
                    self.sync_supported = False
                return False
            raise FrameImportError("sync", f"DMA_BUF_IOCTL_SYNC failed: {exc.strerror}") from None
        self.sync_supported = True
        return True
