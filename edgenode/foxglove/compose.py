"""The bridge's composition root and lifecycle: Zenoh in, foxglove-sdk server and MCAP recorder out.

Start-up: logging, the Zenoh session (waiting for a router in client mode, as the node does),
the recorder (a path it cannot create stops the start with one line), the relay and its
subscriptions, then the WebSocket server. A port in use is said once and retried until it is
free, the relay (and the recording) running meanwhile. Every ``--stats-interval`` seconds one
line says what was relayed. SIGTERM or Ctrl-C: the subscriptions close first, then the recorder
writes what it holds and finishes its file, then the server stops; exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import statistics
import threading
from pathlib import Path
from typing import Any

from edgenode.adapters.foxglove import FoxgloveHub, FoxgloveServerError, PortInUse, forward_sdk_logs
from edgenode.adapters.mcap_file import McapFile
from edgenode.adapters.zenoh_bus import ZenohBus, ZenohConfigError, key_matcher
from edgenode.foxglove.config import BridgeConfig
from edgenode.foxglove.recording import Recorder, RecordingFile
from edgenode.foxglove.relay import Relay, SchemaBook
from edgenode.logs import configure_logging, get_logger
from edgenode.resources import message_definitions, message_texts

PORT_RETRY_FIRST, PORT_RETRY_MAX = 0.5, 5.0


class StartupError(Exception):
    """The bridge cannot start; the message is the one line to show."""


class Clients:
    """Who is subscribed to what, from the server's callbacks (on the SDK's threads)."""

    def __init__(self, log: Any) -> None:
        self._log = log
        self._lock = threading.Lock()
        self._topics: dict[int, set[str]] = {}

    def subscribed(self, client: int, topic: str) -> None:
        with self._lock:
            topics = self._topics.setdefault(client, set())
            first = not topics
            topics.add(topic)
        if first:
            self._log.info(f"client {client} connected: first subscription {topic}")
        self._log.debug(f"client {client} subscribed to {topic}")

    def unsubscribed(self, client: int, topic: str) -> None:
        with self._lock:
            topics = self._topics.get(client, set())
            topics.discard(topic)
            last = not topics and self._topics.pop(client, None) is not None
        self._log.debug(f"client {client} unsubscribed from {topic}")
        if last:
            self._log.info(f"client {client} has no subscriptions left (unsubscribed or disconnected)")

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._topics)


class Bridge:
    """The running bridge: relay, server, recorder."""

    def __init__(self, config: BridgeConfig) -> None:
        self.config = config
        self.log: Any = get_logger("edgenode.foxglove")
        self.hub = FoxgloveHub()
        self.clients = Clients(self.log)
        self.recorder: Recorder | None = None
        self.relay: Relay | None = None
        self.port: int | None = None
        self.stopping = asyncio.Event()
        self.exit_code = 0

    def open_recorder(self) -> Recorder | None:
        settings = self.config.record
        if settings is None:
            return None

        def open_file(path: Path) -> RecordingFile:
            return McapFile(path, compression=settings.compression, chunk_bytes=settings.chunk_bytes)

        try:
            recorder = Recorder(settings, open_file, self.log)
        except FileExistsError as exc:
            raise StartupError(f"--record {exc.filename}: the file exists; choose another name") from None
        except OSError as exc:
            raise StartupError(f"--record {exc.filename or settings.path}: {exc.strerror or exc}") from None
        self.log.info(f"recording to {recorder.files[0]}")
        return recorder

    async def serve(self) -> None:
        """Start the WebSocket server, retrying while the port is in use."""
        c = self.config
        delay, told = PORT_RETRY_FIRST, False
        while not self.stopping.is_set():
            try:
                self.port = self.hub.serve(c.host, c.port, name=c.name, backlog=c.backlog,
                                           on_subscribe=self.clients.subscribed,
                                           on_unsubscribe=self.clients.unsubscribed)
            except PortInUse as exc:
                if not told:
                    self.log.warning(f"{exc} (another bridge or foxglove_bridge?); retrying until it is free, "
                                     "relaying and recording meanwhile")
                    told = True
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), delay)
                delay = min(delay * 2, PORT_RETRY_MAX)
                continue
            except FoxgloveServerError as exc:
                self.log.error(str(exc))
                self.exit_code = 1
                self.stopping.set()
                return
            shown = "127.0.0.1" if c.host in ("0.0.0.0", "::", "") else c.host
            self.log.info(f"serving Foxglove on ws://{shown}:{self.port}"
                          + (" (all interfaces: use this machine's address from elsewhere)"
                             if shown != c.host else "")
                          + "; in Foxglove: Open connection, Foxglove WebSocket, this URL")
            return

    async def report(self) -> None:
        """One line of what was relayed every ``stats_interval`` seconds."""
        assert self.relay is not None
        previous = 0
        interval = self.config.log.stats_interval
        while True:
            await asyncio.sleep(interval)
            total = self.relay.totals()
            latencies = sorted(self.relay.latencies_ns)
            fields: dict[str, Any] = {"relayed": total["relayed"],
                                      "rate": round((total["relayed"] - previous) / interval, 1),
                                      "channels": total["channels"], "clients": self.clients.count}
            previous = total["relayed"]
            if latencies:
                fields["latency_ms_p50"] = round(statistics.median(latencies) / 1e6, 3)
                fields["latency_ms_p99"] = round(latencies[int(0.99 * (len(latencies) - 1))] / 1e6, 3)
            fields.update({name: total[name] for name in ("unknown", "malformed", "oversize", "mismatched")
                           if total[name]})
            if self.recorder is not None:
                fields["recorded"] = self.recorder.recorded
                fields["record_dropped"] = self.recorder.dropped
                if self.recorder.stopped:
                    fields["recording_stopped"] = self.recorder.stopped
            self.log.info("stats", **fields)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        c = self.config
        bus = await loop.run_in_executor(None, lambda: ZenohBus.open_when_reachable(
            c.zenoh, self.stopping.is_set, self.log.warning))
        if bus is None:
            return 0
        tasks: list[asyncio.Task[None]] = []
        try:
            excluded = key_matcher(c.exclude)
            self.recorder = self.open_recorder()
            self.relay = Relay(self.hub, SchemaBook(message_texts(), message_definitions()), excluded, self.log,
                               self.recorder, max_bytes=c.max_message_bytes)
            relay = self.relay

            def refused(channel_id: int) -> None:  # on the SDK's thread
                with contextlib.suppress(RuntimeError):  # the loop is closed: stopping
                    loop.call_soon_threadsafe(relay.readvertise, channel_id)

            self.hub.watch_refused_subscriptions(refused)
            for key in c.topics:
                bus.subscribe(key, self.relay.deliver, loop, max_bytes=c.max_message_bytes)
            self.log.info(f"relaying {' '.join(c.topics)}" + (f" except {' '.join(c.exclude)}" if c.exclude else ""))
            tasks = [asyncio.create_task(self.serve()), asyncio.create_task(self.report())]
            await self.stopping.wait()
            self.log.info("stopping")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            bus.close()
            if self.recorder is not None:
                await loop.run_in_executor(None, self.recorder.close)
            self.hub.close()
        return self.exit_code


def run(config: BridgeConfig) -> int:
    """Run the bridge: 0 on a clean stop, 1 when it cannot start."""
    configure_logging(config.log.level, config.log.format)
    forward_sdk_logs(config.log.level)
    log: Any = get_logger("edgenode.foxglove")
    try:
        return asyncio.run(Bridge(config).run())
    except (StartupError, ZenohConfigError, FoxgloveServerError) as exc:
        log.error(str(exc))
        return 1
    except KeyboardInterrupt:
        return 0

