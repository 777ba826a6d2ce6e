"""dma-buf import: take another process's frame fd with pidfd_getfd and map it read-only, zero copy.

``DmaBufImporter.open(ref)`` returns an :class:`ImportedFrame`; use it as a context manager.
``frame.data`` is a read-only numpy view of the mapping (no copy); CPU reads are bracketed by
``DMA_BUF_IOCTL_SYNC`` START (in ``open``) and END (on close), for dma-bufs only. On exit, or on
any error while opening or closing, the mapping, the imported fd and the pidfd are all closed. A
memfd stands in for a dma-buf wherever the hardware is absent.

The fd comes from whoever published the frame message, so the frame is bounded first (over
``max_frame_bytes`` it is refused before the fd is even taken), and the fd is checked before use.
Two kinds are taken, and nothing done with either is visible to the process that owns it (the
taken fd shares its open file description, offset included):

- a dma-buf (an anonymous inode on the dma-buf file system, ``DMA_BUF_MAGIC``): sized with
  ``lseek`` (its offset means nothing to anyone, and is put back), mapped, CPU access bracketed by
  ``DMA_BUF_IOCTL_SYNC``;
- a regular file (a memfd, tmpfs or disk file): sized with ``fstat``, never seeked, never synced.
  Sealed against shrinking (``F_SEAL_SHRINK``, as the camera simulator seals its buffers), it is
  mapped; any other file could be truncated by its owner while mapped, and reading past its end
  would kill the node with SIGBUS, so the frame's rows are read (``preadv``, positional) into a
  private copy instead.

Everything else (pipes, sockets, devices, directories, other anonymous inodes) is refused.
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

from edgenode.config import MAX_FRAME_BYTES
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
DMA_BUF_MAGIC = 0x444D4142  # statfs f_type of the dma-buf file system (linux/magic.h)
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
_fstatfs = _libc.fstatfs
_fstatfs.argtypes = (ctypes.c_int, ctypes.c_void_p)
_fstatfs.restype = ctypes.c_int


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


def is_dma_buf(fd: int) -> bool:
    """Whether ``fd`` is a dma-buf: its file system's magic (``fstatfs``) is ``DMA_BUF_MAGIC``."""
    info = ctypes.create_string_buffer(256)  # struct statfs; f_type (a C long) comes first on every Linux ABI
    if _fstatfs(fd, info) != 0:
        return False
    return (ctypes.c_long.from_buffer(info).value & 0xFFFFFFFF) == DMA_BUF_MAGIC


def dma_buf_size(fd: int) -> int:
    """Bytes in a dma-buf: its size through ``lseek``, the offset put back where it was.

    Only for dma-bufs: they have no read or write, so their offset is state nobody uses. On a
    regular file the offset is the owner's next write position (see :func:`buffer_kind`).
    """
    where = os.lseek(fd, 0, os.SEEK_CUR)
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        try:
            os.lseek(fd, where, os.SEEK_SET)
        except OSError:
            pass


_NOT_BUFFERS = {stat.S_IFIFO: "a pipe", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
                stat.S_IFBLK: "a block device", stat.S_IFDIR: "a directory", stat.S_IFLNK: "a symbolic link"}
DMA_BUF, FILE = "dma-buf", "file"


def buffer_kind(fd: int, info: os.stat_result) -> tuple[str, int]:
    """(``DMA_BUF`` or ``FILE``, its size in bytes); ValueError naming what else ``fd`` is.

    A regular file is sized with ``fstat``: a taken fd shares its owner's file offset, and
    seeking it would move the owner's next write (a log file opened without O_APPEND would be
    overwritten from the start).
    """
    if is_dma_buf(fd):
        return DMA_BUF, dma_buf_size(fd)
    if stat.S_ISREG(info.st_mode):
        return FILE, info.st_size
    raise ValueError(_NOT_BUFFERS.get(stat.S_IFMT(info.st_mode), "an anonymous inode that is not a dma-buf"))


def fixed_size(fd: int, kind: str) -> bool:
    """Whether the buffer behind ``fd`` cannot shrink while mapped (no SIGBUS): a dma-buf or a shrink-sealed file."""
    if kind == DMA_BUF:
        return True
    try:
        seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
    except OSError:
        return False  # a file system without seals: its owner may truncate it
    return bool(seals & fcntl.F_SEAL_SHRINK)


def packed_layout(layout: FrameLayout) -> FrameLayout:
    """``layout`` with its rows back to back from byte 0 (NV12: the UV rows right after the Y rows)."""
    row = layout.row_bytes
    if layout.format.planar:
        return FrameLayout(layout.format, layout.width, layout.height, row, 0, row * layout.height, layout.width)
    return FrameLayout(layout.format, layout.width, layout.height, row)


def planes(layout: FrameLayout) -> list[tuple[int, int, int, int]]:
    """(first byte, stride, bytes per row, rows) of each plane the frame's pixels occupy."""
    found = [(layout.offset, layout.stride, layout.row_bytes, layout.height)]
    if layout.format.planar:
        found.append((layout.chroma_offset, layout.chroma_stride, layout.width, layout.height // 2))
    return found


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
                 importer: DmaBufImporter, kind: str = DMA_BUF) -> None:
        self.fd = fd
        self.kind = kind
        self.layout = layout
        self.copied = not isinstance(mapping, mmap.mmap)  # a private copy of a file its owner could truncate
        self._mapping: mmap.mmap | bytearray | None = mapping
        self._importer = importer
        self._data: NDArray[np.uint8] | None = np.frombuffer(mapping, np.uint8, count=layout.end)
        self._physical: int | None = -1 if kind == DMA_BUF else None  # only a dma-buf is asked (an ioctl)
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
        """``DMA_BUF_IOCTL_SYNC`` START|READ on a dma-buf (the importer does this before handing the frame out)."""
        if self.kind != DMA_BUF:
            return
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
        """End CPU access, unmap and close the imported fd (idempotent).

        Everything is released even when the end-of-read ``DMA_BUF_IOCTL_SYNC`` fails; that
        failure is raised afterwards (FrameImportError, reason ``sync``).
        """
        if self._mapping is None:
            return
        failure: FrameImportError | None = None
        if self._synced:
            self._synced = False
            try:
                self._importer.sync(self.fd, DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ)
            except FrameImportError as exc:
                failure = exc
        self._data = None
        mapping, self._mapping = self._mapping, None
        try:
            if isinstance(mapping, mmap.mmap):
                mapping.close()
        except BufferError:  # a caller still holds a view: the mapping goes when that view does
            self._importer.late_unmaps += 1
        finally:
            os.close(self.fd)
        if failure is not None:
            raise failure


class DmaBufImporter:
    """Imports frames named by FrameRefs, at most ``max_frame_bytes`` each (``--max-frame-bytes``).

    ``sync_supported`` is whether dma-bufs take ``DMA_BUF_IOCTL_SYNC`` (learnt from dma-bufs only:
    other kinds are never synced, so a memfd or a hostile frame cannot switch it off).
    """

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        if max_frame_bytes < 1:
            raise ValueError(f"max_frame_bytes must be positive, got {max_frame_bytes}")
        self.max_frame_bytes = max_frame_bytes
        self.sync_supported: bool | None = None
        self.late_unmaps = 0
        self.copies = 0  # frames read into a private copy (files their owner could truncate)

    def open(self, ref: FrameRef) -> ImportedFrame:
        """Import and map ``ref``; raises FrameImportError (everything opened so far is closed)."""
        if ref.layout.end > self.max_frame_bytes:
            raise FrameImportError("too_large", f"a {ref.layout.end}-byte frame is over the "
                                                f"{self.max_frame_bytes}-byte cap (--max-frame-bytes); "
                                                f"fd {ref.fd} of pid {ref.pid} not taken")
        fd = take_fd(ref.pid, ref.fd)
        try:
            try:
                kind, size = buffer_kind(fd, os.fstat(fd))
            except ValueError as exc:
                raise FrameImportError("fd_type", f"fd {ref.fd} of pid {ref.pid} is {exc}, not a frame buffer") \
                    from None
            except OSError as exc:
                raise FrameImportError("fd_type", f"fd {ref.fd} of pid {ref.pid} has no size, not a frame buffer "
                                                  f"({exc.strerror})") from None
            if size < ref.layout.end:
                raise FrameImportError("size", f"frame needs {ref.layout.end} bytes but fd {ref.fd} of pid "
                                               f"{ref.pid} holds {size}")
            if fixed_size(fd, kind):
                mapping: mmap.mmap | bytearray = self._map(fd, ref)
                layout = ref.layout
            else:
                mapping, layout = self._copy(fd, ref)
        except BaseException:
            os.close(fd)
            raise
        frame = ImportedFrame(fd, mapping, layout, self, kind)
        frame.begin_cpu_access()
        return frame

    @staticmethod
    def _map(fd: int, ref: FrameRef) -> mmap.mmap:
        try:
            return mmap.mmap(fd, ref.layout.end, mmap.MAP_SHARED, mmap.PROT_READ)
        except (OSError, ValueError) as exc:
            raise FrameImportError("mmap", f"cannot map fd {ref.fd} of pid {ref.pid}: {exc}") from None

    def _copy(self, fd: int, ref: FrameRef) -> tuple[bytearray, FrameLayout]:
        """The frame's rows, read into a packed copy (positional reads: the owner's offset stays;
        a truncated file gives a short read, never SIGBUS), and the copy's layout."""
        layout = packed_layout(ref.layout)
        copy = bytearray(layout.end)
        view = memoryview(copy)
        at = 0
        try:
            for first, stride, row, rows in planes(ref.layout):
                if stride == row:  # dense rows: one read for the plane
                    chunks = [(first, view[at:at + row * rows])]
                else:
                    chunks = [(first + index * stride, view[at + index * row:at + (index + 1) * row])
                              for index in range(rows)]
                for position, target in chunks:
                    try:
                        count = os.preadv(fd, [target], position)
                    except OSError as exc:
                        raise FrameImportError("mmap", f"cannot read fd {ref.fd} of pid {ref.pid}: "
                                                       f"{exc.strerror}") from None
                    if count < len(target):
                        raise FrameImportError("size", f"frame needs {ref.layout.end} bytes but fd {ref.fd} of pid "
                                                       f"{ref.pid} ended before byte {position + len(target)} "
                                                       "(truncated)")
                at += row * rows
        finally:
            view.release()
        self.copies += 1
        return copy, layout

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
