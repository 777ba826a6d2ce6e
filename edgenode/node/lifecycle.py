"""The node's life: signals, open, load with a heartbeat, run, drain, an ordered close.

Start-up order (as the EdgeFirst node): open Zenoh, subscribe to the camera, heartbeat while
the model loads on its own thread, then declare READY to systemd and run the pipeline until
SIGTERM/SIGINT. Stopping finishes the frames in flight, closes the publishers, Zenoh and every
fd, and returns 0; a start-up failure raises StartupError (one line, exit 1). What the parts are
and how they are built is :mod:`edgenode.node.compose`'s business.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from edgenode.adapters.systemd import SystemdNotifier
from edgenode.adapters.zenoh_bus import ZenohConfigError
from edgenode.core.model_config import ModelError
from edgenode.core.preprocess import PreprocessError
from edgenode.core.status import LOADING, STOPPING, WAITING_FOR_ROUTER
from edgenode.logs import get_logger
from edgenode.node import supervision
from edgenode.node.scheduler import FatalPipelineError
from edgenode.node.status import REFRESH_SECONDS

if TYPE_CHECKING:
    from edgenode.node.bus import Bus
    from edgenode.node.compose import NodeParts, Running, Stream
    from edgenode.node.model_loading import LoadedModel

T = TypeVar("T")

DRAIN_SECONDS = 4.0  # SIGTERM to exit stays within systemd's and the reference's 5 s


class StartupError(Exception):
    """The node cannot start; the message says what to fix, in one line."""


def run_in_thread(loop: asyncio.AbstractEventLoop, function: Callable[[], T], name: str) -> asyncio.Future[T]:
    """Run ``function`` on a daemon thread; a stop during a long model load need not wait for it."""
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def target() -> None:
        try:
            result, error = function(), None
        except BaseException as exc:
            result, error = None, exc
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:
            pass  # the loop is gone: the node already stopped

    threading.Thread(target=target, name=name, daemon=True).start()
    return future


class Node:
    """One inference node: runs the parts ``parts`` builds."""

    def __init__(self, parts: NodeParts, notifier: SystemdNotifier) -> None:
        self.parts = parts
        self.config = parts.config
        self.notifier = notifier
        self.stop = asyncio.Event()
        self.unclean = False  # set when a stage would not stop in time: the process must exit hard
        self.streams: list[Stream] = []
        self.running: Running | None = None
        self.status = parts.status_board()
        self._log: Any = get_logger("edgenode.node")

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        def request_stop(name: str) -> None:
            if not self.stop.is_set():
                self._log.info(f"{name}: shutting down")
                self.notifier.stopping()
                self.status.enter(STOPPING)
            self.stop.set()

        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(signum, request_stop, signal.Signals(signum).name)
            except (NotImplementedError, RuntimeError):  # pragma: no cover - not the main thread
                pass

    async def _open(self) -> Bus | None:
        def no_router(reason: str) -> None:
            self._log.warning(reason)
            self.notifier.status("waiting for the zenoh router")
            self.status.phase = WAITING_FOR_ROUTER  # (on the opening thread; nobody can ask before the bus opens)

        try:
            return await asyncio.to_thread(self.parts.open_bus, self.stop.is_set, no_router)
        except ZenohConfigError as exc:
            raise StartupError(str(exc)) from None

    async def _load(self, streams: list[Stream]) -> LoadedModel | None:
        """The model, loaded on its own thread while the heartbeat publishes on every stream; None when stopped
        first."""
        model = self.config.model
        self.notifier.status(f"loading {model.path.name}")
        self.status.enter(LOADING)
        topics = {"camera_topic": self.config.topics.camera} if len(streams) == 1 else {
            "camera_topics": [stream.frames.topic for stream in streams]}
        self._log.info(f"loading model {model.path}", **topics)
        loaded = asyncio.Event()
        heartbeats = [asyncio.create_task(supervision.heartbeat(stream.frames, stream.publishers, loaded))
                      for stream in streams]
        loading = run_in_thread(asyncio.get_running_loop(), self.parts.load_model, "edgenode-load")
        stopped = asyncio.create_task(self.stop.wait())
        waiting: set[asyncio.Future[Any]] = {loading, stopped}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        loaded.set()
        stopped.cancel()
        for heartbeat in heartbeats:
            heartbeat.cancel()
        await asyncio.gather(*heartbeats, return_exceptions=True)
        if not loading.done():
            self._log.info("stopped while the model was loading")
            return None
        try:
            return loading.result()
        except ModelError as exc:
            raise StartupError(str(exc)) from None

    def _start(self, model: LoadedModel, streams: list[Stream]) -> Running:
        try:
            running = self.parts.running(model, streams)
        except PreprocessError as exc:
            raise StartupError(str(exc)) from None
        description = model.description
        self._log.info(f"running {description.name}", model_types=description.model_types,
                       labels=len(description.labels), preprocess=running.preprocessor.name,
                       delegate=model.runtime.delegate or "cpu", tracking=running.tracking,
                       schedule="overlap" if running.pipeline.overlap else "serial",
                       **({"streams": [stream.name for stream in streams], "batch": running.batch}
                          if len(streams) > 1 else {}))
        self.notifier.ready(f"running {description.name}")
        self.status.started_running(running)
        return running

    async def _run(self, running: Running) -> int:
        """Run the pipeline until stopped, then let the frames in flight finish (for at most DRAIN_SECONDS)."""
        pipeline = asyncio.create_task(running.pipeline.run(self.stop))
        stopping = asyncio.create_task(self.stop.wait())
        try:
            await asyncio.wait({pipeline, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not pipeline.done():
                try:
                    await asyncio.wait_for(asyncio.shield(pipeline), DRAIN_SECONDS)
                except asyncio.TimeoutError:
                    self.unclean = True
                    self._log.error(f"frames in flight did not finish within {DRAIN_SECONDS:g} s; exiting anyway")
                    pipeline.cancel()
                    return 0
            pipeline.result()
        except FatalPipelineError as exc:
            self._log.error(str(exc))
            return 1
        finally:
            stopping.cancel()
        return 0

    def _stalled(self, limit_ns: int) -> bool:
        return self.running is not None and self.running.stalled(limit_ns)

    async def run(self) -> int:
        """Start, run until stopped, clean up; the exit code."""
        self._install_signals(asyncio.get_running_loop())
        self.notifier.status("starting")
        bus = await self._open()
        if bus is None:
            self._log.info("stopped while waiting for the zenoh router")
            self.notifier.stopping()
            self.notifier.close()
            return 0
        tasks: list[asyncio.Task[Any]] = []
        try:
            self.streams = streams = self.parts.streams(bus, asyncio.get_running_loop())
            self.status.announce(bus, streams)
            tasks.append(asyncio.create_task(supervision.refresh_status(self.status.refresh, REFRESH_SECONDS)))
            for stream in streams:
                if stream.camera_info is not None:
                    tasks.append(asyncio.create_task(supervision.follow_camera_info(stream.camera_info, stream.size)))
            if self.notifier.watchdog_interval:
                tasks.append(asyncio.create_task(
                    supervision.watchdog(self.notifier, self.notifier.watchdog_interval, self._stalled, self.stop)))
            model = await self._load(streams)
            if model is None:
                return 0
            self.running = running = self._start(model, streams)
            lines: list[dict[str, Any]] = []

            def report() -> dict[str, Any]:
                lines[:] = running.stats_lines()
                return self.status.record_window(running.totals_line)

            tasks.append(asyncio.create_task(
                supervision.report_stats(report, self.config.log.stats_interval, self.notifier, self.stop,
                                         lines=lambda: lines)))
            return await self._run(running)
        finally:
            self.stop.set()
            self.status.enter(STOPPING)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.running is not None:
                self.running.close(wait=not self.unclean)
            for stream in self.streams:
                stream.close()
            bus.close()
            self.notifier.stopping()
            self.notifier.close()
            self._log.info("stopped")
