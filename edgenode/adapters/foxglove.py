"""Foxglove adapter: channels and the WebSocket server of ``foxglove-sdk``, for CDR messages with ros2msg schemas.

Thin. Channels live in a ``foxglove.Context`` of their own, so they exist (and are advertised
to every client that connects later) whether or not the server is up yet; the server can start,
fail and start again without touching them.

What the SDK does with clients (foxglove-sdk 0.30, read in its source): ``Channel.log`` never
blocks; for each client subscribed to the channel it puts the message on that client's data
queue, bounded at ``backlog`` messages, dropping the oldest when full, and a task of the SDK's
own runtime writes the queue to the socket. So a client that reads slowly or has vanished holds
at most ``backlog`` messages and never delays the caller. The server speaks the subprotocol
``foxglove.sdk.v1`` (Foxglove app, Lichtblick 1.22.1 and newer). Its log lines arrive through
Python's ``logging`` (loggers ``foxglove.*``).

A race in the SDK (0.30): a new channel is advertised to connected clients before the server
registers it, so a client that subscribes at once (as Foxglove does for a topic its layout shows)
is sometimes refused with "unknown channel" (measured: 2 to 5 of 100 new channels here) and
never asks again. :meth:`FoxgloveHub.watch_refused_subscriptions` reports those refusals (read
from the SDK's log line) so the caller can advertise the channel anew.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from typing import Any

import foxglove
from foxglove.websocket import ChannelView, Client, ServerListener

SCHEMA_ENCODING = "ros2msg"
MESSAGE_ENCODING = "cdr"
_CLIENT_LOGGER = "foxglove.websocket.connected_client"
_REFUSED = re.compile(r"attempted to subscribe to unknown channel: (\d+)")


class FoxgloveServerError(RuntimeError):
    """The WebSocket server cannot start."""


class PortInUse(FoxgloveServerError):
    """Another process listens on the port."""


class FoxgloveChannel:
    """One channel: ``log`` hands a payload and its log time (ns) to every subscribed client."""

    def __init__(self, channel: foxglove.Channel) -> None:
        self._channel = channel
        self.id = channel.id()
        self.topic = channel.topic()

    def log(self, payload: bytes, log_time_ns: int) -> None:
        self._channel.log(payload, log_time=log_time_ns)

    def close(self) -> None:
        self._channel.close()


class _Listener(ServerListener):
    """foxglove-sdk's ServerListener: subscribe/unsubscribe (also on disconnect), on the SDK's threads."""

    def __init__(self, on_subscribe: Callable[[int, str], None], on_unsubscribe: Callable[[int, str], None]) -> None:
        self._on_subscribe, self._on_unsubscribe = on_subscribe, on_unsubscribe

    def on_subscribe(self, client: Client, channel: ChannelView) -> None:
        self._on_subscribe(client.id, channel.topic)

    def on_unsubscribe(self, client: Client, channel: ChannelView) -> None:
        self._on_unsubscribe(client.id, channel.topic)


class FoxgloveHub:
    """A set of channels and, once :meth:`serve` succeeds, the WebSocket server showing them."""

    def __init__(self) -> None:
        self._context = foxglove.Context()
        self._server: Any = None
        self._lock = threading.Lock()
        self._watches: list[logging.Handler] = []

    def channel(self, topic: str, schema_name: str, schema_text: str) -> FoxgloveChannel:
        """A new ``cdr`` channel on ``topic`` with the ``ros2msg`` schema ``schema_text``."""
        schema = foxglove.Schema(name=schema_name, encoding=SCHEMA_ENCODING, data=schema_text.encode())
        return FoxgloveChannel(foxglove.Channel(topic, schema=schema, message_encoding=MESSAGE_ENCODING,
                                                context=self._context))

    def serve(self, host: str, port: int, *, name: str, backlog: int,
              on_subscribe: Callable[[int, str], None], on_unsubscribe: Callable[[int, str], None]) -> int:
        """Start the WebSocket server; the port it listens on. Raises :class:`PortInUse` or
        :class:`FoxgloveServerError` with the SDK's reason."""
        try:
            server = foxglove.start_server(name=name, host=host, port=port, context=self._context,
                                           message_backlog_size=backlog,
                                           server_listener=_Listener(on_subscribe, on_unsubscribe))
        except RuntimeError as exc:
            reason = str(exc).removeprefix("FoxgloveError: ")
            if "Address already in use" in reason:
                raise PortInUse(f"port {port} on {host} is in use") from None
            raise FoxgloveServerError(f"cannot serve on {host}:{port}: {reason}") from None
        with self._lock:
            self._server = server
        return int(server.port)

    @property
    def serving(self) -> bool:
        return self._server is not None

    def watch_refused_subscriptions(self, refused: Callable[[int], None]) -> None:
        """Call ``refused(channel_id)`` (on the SDK's thread) when the server refuses a subscription to a
        channel it has not registered yet."""
        watch = _RefusalWatch(refused)
        logging.getLogger(_CLIENT_LOGGER).addHandler(watch)
        self._watches.append(watch)

    def close(self) -> None:
        """Stop the server (clients are told, then disconnected)."""
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.stop()
        for watch in self._watches:
            logging.getLogger(_CLIENT_LOGGER).removeHandler(watch)
        self._watches.clear()


class _RefusalWatch(logging.Handler):
    def __init__(self, refused: Callable[[int], None]) -> None:
        super().__init__(logging.ERROR)
        self._refused = refused

    def emit(self, record: logging.LogRecord) -> None:
        match = _REFUSED.search(record.getMessage())
        if match:
            self._refused(int(match[1]))


def forward_sdk_logs(level: str) -> None:
    """Route the SDK's own log lines (Rust) into Python logging at ``level`` (first call wins)."""
    foxglove.set_log_level(level.upper())
