"""A Foxglove WebSocket protocol client for the tests, written from the spec (foxglove/ws-protocol), not from
the bridge: it subscribes to advertised channels, receives binary messageData frames, and decodes each
channel with its advertised ros2msg schema through a general ROS 2 CDR decoder (mcap-ros2-support).

Server -> client text frames: ``serverInfo``, ``advertise``, ``unadvertise``, ``status``. Binary frame
``messageData``: opcode 0x01, subscription id (uint32 LE), log time in ns (uint64 LE), payload.
Client -> server: ``{"op": "subscribe", "subscriptions": [{"id", "channelId"}]}``.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from mcap.records import Schema
from mcap_ros2.decoder import DecoderFactory
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from tests.helpers.timing import scaled

SUBPROTOCOL = "foxglove.sdk.v1"  # foxglove-sdk's; "foxglove.websocket.v1" is the older name
MESSAGE_DATA = 0x01


@dataclass
class Received:
    topic: str
    log_time_ns: int
    payload: bytes
    received_ns: int  # CLOCK_REALTIME when the frame was read


@dataclass
class Channel:
    id: int
    topic: str
    encoding: str
    schema_name: str
    schema: str
    schema_encoding: str
    decoder: Callable[[bytes], Any] | None = None


@dataclass
class FoxgloveClient:
    """One connection; ``pump`` reads frames until a condition holds."""

    url: str
    want: Callable[[str], bool] = lambda topic: True
    ping_interval: float | None = 20.0  # websockets' keepalive; None for a client meant to fall behind
    connection: ClientConnection = field(init=False)
    _opened: Any = field(init=False)
    server_info: dict[str, Any] = field(default_factory=dict)
    channels: dict[int, Channel] = field(default_factory=dict)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    messages: dict[str, list[Received]] = field(default_factory=lambda: defaultdict(list))
    _subscriptions: dict[int, int] = field(default_factory=dict)  # subscription id -> channel id
    _factory: DecoderFactory = field(default_factory=DecoderFactory)

    def __post_init__(self) -> None:
        self._opened = connect(self.url, subprotocols=[Subprotocol(SUBPROTOCOL)], max_size=None,
                               open_timeout=scaled(10), ping_interval=self.ping_interval)
        self.connection = self._opened.__enter__()  # websockets 12..17 alike

    def by_topic(self, topic: str) -> Channel:
        return next(channel for channel in self.channels.values() if channel.topic == topic)

    def topics(self) -> set[str]:
        return {channel.topic for channel in self.channels.values()}

    def subscribe(self, channels: Iterable[Channel]) -> None:
        requests = []
        for channel in channels:
            subscription = len(self._subscriptions) + 1
            self._subscriptions[subscription] = channel.id
            requests.append({"id": subscription, "channelId": channel.id})
        if requests:
            self.connection.send(json.dumps({"op": "subscribe", "subscriptions": requests}))

    def _handle(self, frame: str | bytes) -> None:
        if isinstance(frame, str):
            message = json.loads(frame)
            op = message.get("op")
            if op == "serverInfo":
                self.server_info = message
            elif op == "advertise":
                new = []
                for item in message["channels"]:
                    schema = item["schema"]
                    if item.get("schemaEncoding") not in (None, "ros2msg", "ros2idl", "jsonschema", ""):
                        schema = base64.b64decode(schema).decode()  # binary schema encodings come base64
                    channel = Channel(item["id"], item["topic"], item["encoding"], item["schemaName"], schema,
                                      item.get("schemaEncoding", ""))
                    self.channels[channel.id] = channel
                    if self.want(channel.topic):
                        new.append(channel)
                self.subscribe(new)
            elif op == "unadvertise":
                for channel_id in message["channelIds"]:
                    self.channels.pop(channel_id, None)
            elif op == "status":
                self.statuses.append(message)
            return
        if frame[0] == MESSAGE_DATA:
            subscription, log_time = struct.unpack_from("<IQ", frame, 1)
            channel = self.channels.get(self._subscriptions.get(subscription, -1))
            if channel is not None:
                self.messages[channel.topic].append(Received(channel.topic, log_time, bytes(frame[13:]),
                                                             time.time_ns()))

    def pump(self, until: Callable[[], bool], timeout: float, what: str) -> None:
        """Read frames until ``until()``; AssertionError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not until():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                counts = {topic: len(got) for topic, got in self.messages.items()}
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; channels "
                                     f"{sorted(self.topics())}, messages {counts}")
            try:
                self._handle(self.connection.recv(timeout=min(remaining, 0.5)))
            except TimeoutError:
                continue

    def read_for(self, seconds: float) -> None:
        """Handle whatever frames arrive within ``seconds``."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                self._handle(self.connection.recv(timeout=remaining))
            except TimeoutError:
                return

    def decode(self, topic: str, payload: bytes) -> Any:
        """``payload`` decoded by mcap-ros2-support from the channel's advertised schema text alone."""
        channel = self.by_topic(topic)
        assert (channel.encoding, channel.schema_encoding) == ("cdr", "ros2msg")
        if channel.decoder is None:
            schema = Schema(id=channel.id, name=channel.schema_name, encoding="ros2msg", data=channel.schema.encode())
            channel.decoder = self._factory.decoder_for("cdr", schema)
            assert channel.decoder is not None
        return channel.decoder(payload)

    def close(self) -> None:
        try:
            self._opened.__exit__(None, None, None)
        except ConnectionClosed:  # the server was still sending (a client that fell behind)
            pass


def _read_frame(sock: socket.socket, buffer: bytearray) -> tuple[int, bytes]:
    """One unmasked server frame (opcode, payload), reading from ``sock`` into ``buffer`` as needed."""
    def need(count: int) -> None:
        while len(buffer) < count:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            buffer.extend(chunk)

    need(2)
    opcode, length = buffer[0] & 0x0F, buffer[1] & 0x7F
    start = 2
    if length == 126:
        need(4)
        length, start = struct.unpack_from(">H", buffer, 2)[0], 4
    elif length == 127:
        need(10)
        length, start = struct.unpack_from(">Q", buffer, 2)[0], 10
    need(start + length)
    payload = bytes(buffer[start:start + length])
    del buffer[:start + length]
    return opcode, payload


def abrupt_subscriber(host: str, port: int, topic: str, read_bytes: int, timeout: float) -> int:
    """Subscribe to ``topic`` over a raw socket, read ``read_bytes`` of its first data frame, then reset the
    connection in the middle of that frame. Returns the announced size of the frame it cut."""
    sock = socket.create_connection((host, port), timeout=timeout)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                  f"Sec-WebSocket-Protocol: {SUBPROTOCOL}\r\n\r\n").encode())
    buffer = bytearray()
    while b"\r\n\r\n" not in buffer:
        buffer.extend(sock.recv(4096))
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    buffer = bytearray(rest)
    deadline = time.monotonic() + timeout
    channel_id = None
    while channel_id is None:
        assert time.monotonic() < deadline, f"{topic} was never advertised"
        opcode, payload = _read_frame(sock, buffer)
        if opcode == 1:
            message = json.loads(payload)
            if message.get("op") == "advertise":
                channel_id = next((c["id"] for c in message["channels"] if c["topic"] == topic), None)
    request = json.dumps({"op": "subscribe", "subscriptions": [{"id": 1, "channelId": channel_id}]}).encode()
    mask = os.urandom(4)
    sock.sendall(bytes([0x81, 0x80 | 126]) + struct.pack(">H", len(request)) + mask
                 + bytes(b ^ mask[i % 4] for i, b in enumerate(request)) if len(request) > 125 else
                 bytes([0x81, 0x80 | len(request)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(request)))
    while True:  # skip text frames until the head of a binary one
        while len(buffer) < 10:
            buffer.extend(sock.recv(65536))
        if buffer[0] & 0x0F == 2:
            break
        _read_frame(sock, buffer)
    length = buffer[1] & 0x7F
    size = struct.unpack_from(">H", buffer, 2)[0] if length == 126 else (
        struct.unpack_from(">Q", buffer, 2)[0] if length == 127 else length)
    while len(buffer) < read_bytes:
        buffer.extend(sock.recv(min(65536, read_bytes - len(buffer))))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
    sock.close()
    return int(size)
