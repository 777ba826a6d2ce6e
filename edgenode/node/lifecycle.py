"""The node's life: start-up, a heartbeat while the model loads, the pipeline, stats, a clean stop.

Start-up order (as the EdgeFirst node): open Zenoh, subscribe to the camera, heartbeat while
the model loads on its own thread, then declare READY to systemd and run the pipeline until
SIGTERM/SIGINT. Stopping finishes the frames in flight, closes the publishers, Zenoh and every
fd, and returns 0; a start-up failure raises StartupError (one line, exit 1).
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from edgenode.adapters.camera import CameraFrames
from edgenode.adapters.dmabuf import FrameImportError
from edgenode.adapters.systemd import SystemdNotifier
from edgenode.adapters.tflite import available_cores
from edgenode.adapters.zenoh_bus import Received, ZenohBus, ZenohConfigError
from edgenode.config import NodeConfig
from edgenode.core.bytetrack import ByteTracker, track_thresholds
from edgenode.core.geometry import InputGeometry
from edgenode.core.ingest import FrameRef
from edgenode.core.model_config import ModelError
from edgenode.core.outbound import ModelInfoTemplate
from edgenode.core.preprocess import PreprocessError, Preprocessor
from edgenode.logs import get_logger
from edgenode.messages import CameraInfo, CdrError, decode
from edgenode.node.model_loading import LoadedModel, load_model
from edgenode.node.preprocessing import build_preprocessor
from edgenode.node.publishing import Publishers, StreamSize
from edgenode.node.scheduler import FatalPipelineError, FrameSkipped, InvokeResult, Pipeline, Stages
from edgenode.node.stages import PostStage

T = TypeVar("T")

CAMERA_INFO_WAIT_SECONDS = 10.0
DRAIN_SECONDS = 4.0  # SIGTERM to exit stays within systemd's and the reference's 5 s


class StartupError(Exception):
    """The node cannot start; the message says what to fix, in one line."""


class StreamResolution:
    """The camera's resolution for annotations: from CameraInfo when it comes, else the frame's own size."""

    def __init__(self) -> None:
        self.width = 0
        self.height = 0

    def on_camera_info(self, sample: Received) -> None:
        try:
            info = decode(CameraInfo, sample.payload)
        except CdrError:
            return
        if info.width > 0 and info.height > 0:
            self.width, self.height = info.width, info.height

    def __call__(self, frame: FrameRef) -> StreamSize:
        if self.width and self.height:
            return StreamSize(float(self.width), float(self.height))
        return StreamSize(float(frame.layout.width), float(frame.layout.height))


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


def choose_schedule(schedule: str, delegate: str | None, model_threads: int, cores: int) -> tuple[bool, int]:
    """``--schedule`` resolved: (overlap the stages?, cores the CPU preprocessing may use).

    ``auto`` overlaps unless the model runs on the CPU with every core. While the stages overlap,
    preprocessing keeps off the cores the model's CPU threads use (sharing one slows both).
    """
    on_cpu = delegate is None
    overlap = schedule == "overlap" or (schedule == "auto" and not (on_cpu and model_threads >= cores))
    busy = model_threads if overlap and on_cpu else 0
    return overlap, max(1, cores - busy)


class Node:
    """One inference node built from a NodeConfig."""

    def __init__(self, config: NodeConfig, notifier: SystemdNotifier | None = None) -> None:
        self.config = config
        self.notifier = notifier or SystemdNotifier()
        self.stop = asyncio.Event()
        self.unclean = False  # set when a stage would not stop in time: the process must exit hard
        self.pipeline: Pipeline[FrameRef, InputGeometry] | None = None
        self.frames: CameraFrames | None = None
        self.publishers: Publishers | None = None
        self.post: PostStage | None = None
        self._loading = True
        self._log: Any = get_logger("edgenode.node")

    # -- start-up ----------------------------------------------------------------------------
    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        def request_stop(name: str) -> None:
            if not self.stop.is_set():
                self._log.info(f"{name}: shutting down")
                self.notifier.stopping()
            self.stop.set()

        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(signum, request_stop, signal.Signals(signum).name)
            except (NotImplementedError, RuntimeError):  # pragma: no cover - not the main thread
                pass

    def _load(self) -> LoadedModel:
        decode = self.config.decode
        if self.config.track.enabled:
            decode = replace(decode, threshold=track_thresholds(self.config.track, decode).decoder)
        return load_model(self.config.model, decode, self.config.mask.classes)

    @staticmethod
    def _importable(frames: CameraFrames, ref: FrameRef) -> bool:
        """Import and release ``ref`` in one blocking call: a heartbeat cancelled meanwhile leaks no fd."""
        imported = frames.open(ref)
        if imported is None:
            return False
        imported.close()
        return True

    async def _heartbeat(self, frames: CameraFrames, publishers: Publishers, size: StreamResolution) -> None:
        """While the model loads: placeholders for each camera frame whose buffer imports."""
        loading = ModelInfoTemplate.loading()
        path = str(self.config.model.path)
        while self._loading and not self.stop.is_set():  # the flag, in case a cancellation is lost
            ref = await frames.next(0.1)
            if ref is None:
                continue
            if not await asyncio.to_thread(self._importable, frames, ref):
                continue
            publishers.heartbeat(ref.header, loading, path, size(ref))

    # -- running -----------------------------------------------------------------------------
    def _stages(self, model: LoadedModel, frames: CameraFrames, preprocessor: Preprocessor,
                post: PostStage) -> Stages[FrameRef, InputGeometry]:
        runtime = model.runtime
        spec = runtime.inputs[0]

        def prepare(ref: FrameRef, staging: Any) -> InputGeometry:
            try:
                return frames.convert(ref, preprocessor, staging)
            except FrameImportError as exc:  # counted by reason and logged by CameraFrames
                raise FrameSkipped(str(exc)) from None

        def invoke(staging: Any) -> InvokeResult:
            started = time.perf_counter_ns()
            runtime.set_input(staging)
            copied = time.perf_counter_ns()
            runtime.invoke()
            invoked = time.perf_counter_ns()
            outputs = [view.copy() for view in runtime.output_views()]
            return InvokeResult(outputs, copied - started, invoked - copied, time.perf_counter_ns() - invoked)

        return Stages(frames.next, prepare, invoke, post, spec.shape, spec.dtype)


    async def _report(self) -> None:
        """Every ``--stats-interval`` seconds: throughput, stage times, counters; systemd STATUS."""
        interval = self.config.log.stats_interval
        while not self.stop.is_set():
            try:
                await asyncio.wait_for(self.stop.wait(), interval)
            except asyncio.TimeoutError:
                pass
            if self.post is None or self.pipeline is None or self.frames is None or self.publishers is None:
                continue
            summary = self.post.stats.report(time.monotonic_ns())
            ingest = self.frames.stats
            counters = self.pipeline.counters
            self._log.info("stats", **summary, received=ingest.received, dropped=ingest.dropped,
                           skipped=dict(ingest.skipped), prepare_failed=counters.prepare_failed,
                           invoke_failed=counters.invoke_failed, post_failed=counters.post_failed,
                           **self.publishers.counters())
            self.notifier.status(f"{summary['fps']:.1f} fps, {summary.get('boxes_per_frame', 0):.1f} boxes/frame, "
                                 f"invoke {summary.get('invoke_ms', 0):.1f} ms")

    async def _watchdog(self, interval: float) -> None:
        """Ping systemd while the node makes progress (or is idle waiting for frames, or loading)."""
        limit_ns = int(interval * 2 * 1e9)
        while not self.stop.is_set():
            pipeline = self.pipeline
            stalled = (pipeline is not None and not pipeline.waiting_for_frames
                       and time.monotonic_ns() - pipeline.counters.last_progress_ns > limit_ns)
            if stalled:
                self._log.error("pipeline made no progress; not pinging the systemd watchdog")
            else:
                self.notifier.watchdog()
            try:
                await asyncio.wait_for(self.stop.wait(), interval)
            except asyncio.TimeoutError:
                pass

    async def _run_pipeline(self, pipeline: Pipeline[FrameRef, InputGeometry]) -> int:
        running = asyncio.create_task(pipeline.run(self.stop))
        stopping = asyncio.create_task(self.stop.wait())
        try:
            await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not running.done():
                try:
                    await asyncio.wait_for(asyncio.shield(running), DRAIN_SECONDS)
                except asyncio.TimeoutError:
                    self.unclean = True
                    self._log.error(f"frames in flight did not finish within {DRAIN_SECONDS:g} s; exiting anyway")
                    running.cancel()
                    return 0
            running.result()
        except FatalPipelineError as exc:
            self._log.error(str(exc))
            return 1
        finally:
            stopping.cancel()
        return 0

    async def run(self) -> int:
        """Start, run until stopped, clean up; the exit code."""
        loop = asyncio.get_running_loop()
        self._install_signals(loop)
        config = self.config
        self.notifier.status("starting")

        def no_router(reason: str) -> None:
            self._log.warning(reason)
            self.notifier.status("waiting for the zenoh router")

        try:
            opened = await asyncio.to_thread(ZenohBus.open_when_reachable, config.zenoh, self.stop.is_set, no_router)
        except ZenohConfigError as exc:
            raise StartupError(str(exc)) from None
        if opened is None:
            self._log.info("stopped while waiting for the zenoh router")
            self.notifier.stopping()
            self.notifier.close()
            return 0
        bus = opened
        tasks: list[asyncio.Task[Any]] = []
        preprocessor: Preprocessor | None = None
        try:
            self.publishers = publishers = Publishers(bus, config)
            self.frames = frames = CameraFrames.subscribe(bus, config.topics.camera, loop,
                                                          max_frame_bytes=config.preprocess.max_frame_bytes)
            size = StreamResolution()
            if config.visual.enabled and config.topics.camera_info:
                bus.subscribe(config.topics.camera_info, size.on_camera_info, loop)
                tasks.append(asyncio.create_task(self._warn_without_camera_info(size)))
            if self.notifier.watchdog_interval:
                tasks.append(asyncio.create_task(self._watchdog(self.notifier.watchdog_interval)))
            self.notifier.status(f"loading {config.model.path.name}")
            self._log.info(f"loading model {config.model.path}", camera_topic=config.topics.camera)
            heartbeat = asyncio.create_task(self._heartbeat(frames, publishers, size))
            loading = run_in_thread(loop, self._load, "edgenode-load")
            stopped = asyncio.create_task(self.stop.wait())
            waiting: set[asyncio.Future[Any]] = {loading, stopped}
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            self._loading = False
            stopped.cancel()
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
            if not loading.done():
                self._log.info("stopped while the model was loading")
                return 0
            try:
                model = loading.result()
            except ModelError as exc:
                raise StartupError(str(exc)) from None
            runtime = model.runtime
            overlap, preprocess_cores = choose_schedule(config.model.schedule, runtime.delegate, runtime.threads,
                                                        available_cores())
            try:
                preprocessor = build_preprocessor(config.preprocess, runtime.inputs[0], cores=preprocess_cores)
            except PreprocessError as exc:
                raise StartupError(str(exc)) from None
            tracker = ByteTracker.from_settings(config.track, config.decode) if config.track.enabled else None
            self.post = PostStage(model, publishers, tracker=tracker, threshold=config.decode.threshold,
                                  stream_size=size, status=config.model.path.name, profile=config.log.profile)
            self.pipeline = Pipeline(self._stages(model, frames, preprocessor, self.post), overlap=overlap)
            description = model.description
            self._log.info(f"running {description.name}", model_types=description.model_types,
                           labels=len(description.labels), preprocess=preprocessor.name,
                           delegate=model.runtime.delegate or "cpu", tracking=tracker is not None,
                           schedule="overlap" if overlap else "serial")
            self.notifier.ready(f"running {description.name}")
            tasks.append(asyncio.create_task(self._report()))
            return await self._run_pipeline(self.pipeline)
        finally:
            self.stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.pipeline is not None:
                self.pipeline.close(wait=not self.unclean)
            if preprocessor is not None and not self.unclean:
                preprocessor.close()
            if self.publishers is not None:
                self.publishers.close()
            bus.close()
            self.notifier.stopping()
            self.notifier.close()
            self._log.info("stopped")

    async def _warn_without_camera_info(self, size: StreamResolution) -> None:
        await asyncio.sleep(CAMERA_INFO_WAIT_SECONDS)
        if not size.width:
            self._log.warning(f"no CameraInfo on {self.config.topics.camera_info} after "
                              f"{CAMERA_INFO_WAIT_SECONDS:g} s; annotating in the frames' own pixel size")
