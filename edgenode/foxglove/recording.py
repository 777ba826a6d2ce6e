"""``--record``: the relayed channels written to MCAP files on a thread of their own.

The relay hands each message over without waiting (:meth:`Recorder.record`); a bounded queue
(``queue_bytes``) sits between it and the disk, and what does not fit is counted as dropped, so
a slow disk never slows the relay or grows memory. The writer thread closes a chunk when it
reaches ``chunk_bytes`` or is ``chunk_seconds`` old (what a kill -9 can lose), starts a new file
when the current one reaches ``split_bytes`` or ``split_seconds``, and on a write error (a full
disk) logs one line, stops recording and leaves the relay running. :meth:`Recorder.close`
(SIGTERM) writes what is queued and finishes the file.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


class RecordingFile(Protocol):
    """What the recorder needs of a file (``edgenode.adapters.mcap_file.McapFile``)."""

    path: Path
    messages: int

    def channel(self, key: str, topic: str, schema_name: str, schema_text: str) -> int: ...
    def write(self, channel_id: int, log_time_ns: int, payload: bytes, publish_time_ns: int) -> None: ...
    def flush(self) -> None: ...
    @property
    def size(self) -> int: ...
    def close(self) -> None: ...
    def abandon(self) -> None: ...


@dataclass(frozen=True)
class RecordSettings:
    """Where and how to record; 0 turns a split limit off."""

    path: Path
    split_bytes: int = 0
    split_seconds: float = 0.0
    chunk_bytes: int = 1 << 20
    chunk_seconds: float = 1.0
    compression: str = "zstd"
    queue_bytes: int = 64 << 20

    def __post_init__(self) -> None:
        if self.path.suffix != ".mcap":
            raise ValueError(f"--record {self.path}: the file name must end in .mcap")
        if self.split_bytes < 0 or self.split_seconds < 0:
            raise ValueError("--split-size and --split-duration must be 0 (off) or more")
        if self.chunk_bytes < 1024 or not 0 < self.chunk_seconds <= 60:
            raise ValueError("--chunk-size must be at least 1 KiB and --chunk-seconds in (0, 60]")
        if self.queue_bytes < self.chunk_bytes:
            raise ValueError("the recording queue must hold at least one chunk")

    @property
    def splits(self) -> bool:
        return bool(self.split_bytes or self.split_seconds)

    def file_path(self, part: int) -> Path:
        """``path`` itself, or ``<stem>_0000.mcap``, ``<stem>_0001.mcap``... when splitting."""
        if not self.splits:
            return self.path
        return self.path.with_name(f"{self.path.stem}_{part:04d}{self.path.suffix}")


@dataclass(frozen=True)
class Entry:
    """One message to record: its channel (key, topic, schema) and its bytes and times."""

    key: str
    topic: str
    schema_name: str
    schema_text: str
    log_time_ns: int
    payload: bytes
    publish_time_ns: int


class Recorder:
    """Writes what :meth:`record` receives into files made by ``open_file`` (one per split)."""

    def __init__(self, settings: RecordSettings, open_file: Callable[[Path], RecordingFile], log: Any,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._open_file, self._log, self._clock = open_file, log, clock
        self.part = 0
        self.file: RecordingFile | None = open_file(settings.file_path(0))  # a bad path fails the start
        self.files: list[Path] = [self.file.path]
        self._file_started: float | None = None  # when the current file got its first message
        self._chunk_started: float | None = None
        self._chunk_bytes = 0
        self.recorded = 0
        self.dropped = 0
        self.stopped: str | None = None  # why recording stopped early
        self._queue: deque[Entry] = deque()
        self._queued_bytes = 0
        self._closing = False
        self._wake = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()

    def record(self, entry: Entry) -> None:
        """Queue one message; never blocks. Dropped (and counted) when the queue is full or recording stopped."""
        with self._wake:
            if self.stopped is not None or self._closing:
                return
            if self._queued_bytes + len(entry.payload) > self.settings.queue_bytes:
                self.dropped += 1
                return
            self._queue.append(entry)
            self._queued_bytes += len(entry.payload)
            self._wake.notify()

    @property
    def queued_bytes(self) -> int:
        with self._wake:
            return self._queued_bytes

    def _next(self) -> Entry | None:
        """The next message, or None when a chunk is due to close (or the recorder is closing and empty)."""
        with self._wake:
            while not self._queue:
                if self._closing:
                    return None
                if self._chunk_started is not None:
                    remaining = self._chunk_started + self.settings.chunk_seconds - self._clock()
                    if remaining <= 0:
                        return None
                    self._wake.wait(remaining)
                else:
                    self._wake.wait()
            item = self._queue.popleft()
            self._queued_bytes -= len(item.payload)
            return item

    def _run(self) -> None:
        while True:
            item = self._next()
            try:
                if item is None:
                    if self.file is not None and self._chunk_started is not None:
                        self._close_chunk()
                    with self._wake:
                        if self._closing and not self._queue:
                            return
                    continue
                if self.file is None:
                    continue
                self._write(item)
            except Exception as exc:  # a write error (a full disk), or any other: recording stops, said once
                self._fail(exc)

    def _write(self, item: Entry) -> None:
        assert self.file is not None
        now = self._clock()
        s = self.settings
        if self._file_started is None:
            self._file_started = now  # a file's duration counts from its first message: none is empty
        elif (s.split_seconds and now - self._file_started >= s.split_seconds) or (
                s.split_bytes and self.file.size + self._chunk_bytes >= s.split_bytes):
            self._roll(now)
        channel = self.file.channel(item.key, item.topic, item.schema_name, item.schema_text)
        self.file.write(channel, item.log_time_ns, item.payload, item.publish_time_ns)
        self.recorded += 1
        self._chunk_bytes += len(item.payload)
        if self._chunk_started is None:
            self._chunk_started = now
        if self._chunk_bytes >= s.chunk_bytes or now - self._chunk_started >= s.chunk_seconds:
            self._close_chunk()

    def _close_chunk(self) -> None:
        assert self.file is not None
        self.file.flush()
        self._chunk_started, self._chunk_bytes = None, 0

    def _roll(self, now: float) -> None:
        """Finish the current file and start the next part."""
        assert self.file is not None
        finished, self.file = self.file, None
        self._chunk_started, self._chunk_bytes = None, 0
        finished.close()
        self._log.info(f"recorded {finished.path} ({finished.size / 1e6:.1f} MB, {finished.messages} messages)")
        self.part += 1
        self.file = self._open_file(self.settings.file_path(self.part))
        self.files.append(self.file.path)
        self._file_started = now  # the message that caused the roll opens it

    def _fail(self, exc: Exception) -> None:
        """Stop recording for good after a write error; the relay goes on."""
        path = self.file.path if self.file is not None else self.settings.file_path(self.part)
        if self.file is not None:
            self.file.abandon()
            self.file = None
        with self._wake:
            self.stopped = f"{path}: {getattr(exc, 'strerror', None) or exc}"
            self.dropped += len(self._queue)
            self._queue.clear()
            self._queued_bytes = 0
        self._log.error(f"recording stopped: {self.stopped}; the relay goes on (complete chunks of {path.name} "
                        "stay readable)")

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, finish the file (summary and footer) and stop the thread."""
        with self._wake:
            self._closing = True
            self._wake.notify()
        self._thread.join(timeout)
        if self._thread.is_alive():  # stuck in a write (a hung disk): leave the file to it
            self._log.error(f"recording {self.settings.path}: the writer did not finish within {timeout:g} s")
            return
        if self.file is not None:
            finished, self.file = self.file, None
            try:
                finished.close()
                self._log.info(f"recorded {finished.path} ({finished.size / 1e6:.1f} MB, "
                               f"{finished.messages} messages)")
            except OSError as exc:
                finished.abandon()
                self._log.error(f"recording {finished.path} not finished: {exc.strerror or exc}")
