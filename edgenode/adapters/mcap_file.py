"""MCAP adapter: one recording file written with the ``mcap`` package (ros2 profile, chunked, compressed).

Thin. Why ``mcap``'s Writer and not foxglove-sdk's MCAP sink: the recorder must split files,
close a chunk on a deadline as well as by size, and turn a full disk into one log line, which
needs every write error in hand; the SDK's sink writes from inside ``Channel.log`` and reports
its errors to its own log. Here each complete chunk (with the schema and channel records it
needs, which the writer puts inside the chunk) is handed to the OS as soon as it is written, so
after a kill -9 every complete chunk still reads back; :meth:`McapFile.close` writes the summary
and footer that make the file indexed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from mcap.writer import CompressionType, Writer

from edgenode import __version__

PROFILE = "ros2"
SCHEMA_ENCODING = "ros2msg"
MESSAGE_ENCODING = "cdr"
COMPRESSIONS = {"zstd": CompressionType.ZSTD, "lz4": CompressionType.LZ4, "none": CompressionType.NONE}


class McapFile:
    """A new MCAP file at ``path`` (never an existing one): channels by key, messages, chunks, close."""

    def __init__(self, path: Path, *, compression: str = "zstd", chunk_bytes: int = 1 << 20) -> None:
        self.path = path
        self._stream: BinaryIO = path.open("xb")  # an existing recording is never overwritten
        try:
            # The writer's own size limit is a backstop only: the recorder closes chunks itself
            # (by size and by age) through flush(), and a chunk the writer closes on its own is
            # pushed to the OS by write() too.
            self._writer = Writer(self._stream, chunk_size=4 * chunk_bytes, compression=COMPRESSIONS[compression])
            self._writer.start(profile=PROFILE, library=f"edgenode {__version__}")
            self._stream.flush()
        except BaseException:
            self._stream.close()
            raise
        self._schemas: dict[str, int] = {}
        self._channels: dict[str, int] = {}
        self._written = self._stream.tell()
        self.messages = 0

    def channel(self, key: str, topic: str, schema_name: str, schema_text: str) -> int:
        """The id of channel ``key`` in this file, registering it (and its schema) on first use."""
        channel_id = self._channels.get(key)
        if channel_id is None:
            schema_id = self._schemas.get(schema_name)
            if schema_id is None:
                schema_id = self._schemas[schema_name] = self._writer.register_schema(
                    schema_name, SCHEMA_ENCODING, schema_text.encode())
            channel_id = self._channels[key] = self._writer.register_channel(topic, MESSAGE_ENCODING, schema_id)
        return channel_id

    def write(self, channel_id: int, log_time_ns: int, payload: bytes, publish_time_ns: int) -> None:
        """Add one message to the open chunk (a chunk the writer completes goes to the OS at once)."""
        self._writer.add_message(channel_id, log_time_ns, payload, publish_time_ns)
        self.messages += 1
        position = self._stream.tell()
        if position != self._written:
            self._stream.flush()
            self._written = position

    def flush(self) -> None:
        """Close the open chunk and hand it to the OS (a kill -9 after this loses nothing written)."""
        self._writer.flush()
        self._written = self._stream.tell()

    @property
    def size(self) -> int:
        """Bytes in the file so far (complete chunks; the open chunk is not counted)."""
        return self._written

    def close(self) -> None:
        """Write the summary and footer, then close the file."""
        try:
            self._writer.finish()
            self._stream.flush()
            os.fsync(self._stream.fileno())
        finally:
            self._stream.close()

    def abandon(self) -> None:
        """Close the file without finishing it (after a write error): its complete chunks stay readable."""
        try:
            self._stream.close()
        except OSError:
            pass
