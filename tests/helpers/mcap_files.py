"""Reading recordings back with the ``mcap`` package and decoding them with mcap-ros2-support."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcap.exceptions import McapError
from mcap.reader import NonSeekingReader, make_reader
from mcap_ros2.decoder import DecoderFactory


@dataclass
class Recorded:
    topic: str
    schema_name: str
    log_time_ns: int
    payload: bytes
    decoded: Any


def read_finished(path: Path) -> tuple[Any, Any, list[Recorded]]:
    """A finished file through its index: (header, summary, messages in log-time order, decoded)."""
    with path.open("rb") as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        header, summary = reader.get_header(), reader.get_summary()
        messages = [Recorded(channel.topic, schema.name, message.log_time, message.data, decoded)
                    for schema, channel, message, decoded in reader.iter_decoded_messages()]
    return header, summary, messages


def read_complete_chunks(path: Path) -> tuple[list[Recorded], str]:
    """What a file cut short (kill -9) holds: every message up to the cut, read in file order, and how the
    read ended ("" for a clean end)."""
    factory = DecoderFactory()
    found: list[Recorded] = []
    ended = ""
    with path.open("rb") as stream:
        try:
            for schema, channel, message in NonSeekingReader(stream).iter_messages(log_time_order=False):
                assert schema is not None
                decoder = factory.decoder_for(channel.message_encoding, schema)
                assert decoder is not None
                found.append(Recorded(channel.topic, schema.name, message.log_time, message.data,
                                      decoder(message.data)))
        except (McapError, struct.error, EOFError) as exc:
            ended = f"{type(exc).__name__}: {exc}"
    return found, ended
