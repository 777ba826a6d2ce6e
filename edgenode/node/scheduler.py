"""The per-frame pipeline: prepare, invoke and post stages, overlapping or in turn.

Stages run on single-thread executors, never on the event loop. Two schedules:

- **overlap**: while the model runs frame N the CPU prepares frame N+1 and decodes, tracks and
  publishes frame N-1 (each stage on its own thread, linked by one-slot queues); throughput
  approaches the model's own invoke rate when the model runs elsewhere (an NPU) or leaves cores
  free. Frame N+1 is taken just in time: once the model has taken frame N, and only when invoke N
  is due to end within the expected prepare time (plus a margin), so the model never waits for it
  and it is no older than it needs to be.
- **serial**: one stage at a time: prepare, invoke and post frame N in one call on one thread (no
  hand-offs between threads, which cost about 0.7 ms a frame on a busy 2-core machine), then
  take the newest frame. When the model runs on the CPU with every core, work beside an invoke
  only slows it (its threads wait for the one that lost its core, and Python threads contend for
  the GIL): taking turns is faster there. Nothing else touches the model's input meanwhile, so
  the frame is prepared straight into it (``Stages.model_input``) instead of a staging buffer
  that invoke would copy.

The prepare stage takes the newest camera frame only when it is free to work on it, so frames
that arrive meanwhile are dropped by the frame source, never queued. Nothing blocking runs on
the event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np

from edgenode.logs import get_logger


def _log() -> Any:
    """This module's logger, looked up when used (one bound at import escapes tests' log capture)."""
    return get_logger(__name__)

FrameT = TypeVar("FrameT")
GeometryT = TypeVar("GeometryT")

STAGING_BUFFERS = 3  # one being written, one queued, one being copied into the model
SMOOTHING = 0.2  # weight of the newest duration in the running means the overlap schedule times by


def prepare_lead_ns(prepare_ns: float, invoke_ns: float) -> float:
    """How long before an invoke is due to end the overlap schedule takes the next frame.

    The expected prepare time with room for its jitter: a frame ready a little early ages a few
    milliseconds; one ready late leaves the model idle.
    """
    return 1.5 * prepare_ns + 0.1 * invoke_ns + 2e6


def update_mean(mean: float | None, value: float) -> float:
    """A running mean that follows changes in a few frames."""
    return value if mean is None else mean + SMOOTHING * (value - mean)


class FatalPipelineError(RuntimeError):
    """The pipeline cannot go on (e.g. the model keeps failing); the node exits non-zero."""


class FrameSkipped(Exception):
    """Raised by ``prepare`` for a frame it refused and has already counted and logged (e.g. a stale pid)."""


@dataclass
class Prepared(Generic[FrameT, GeometryT]):
    """A frame converted into a staging input buffer; ``taken_ns``: when the prepare stage took it (monotonic)."""

    frame: FrameT
    input: np.ndarray
    geometry: GeometryT
    taken_ns: int
    preprocess_ns: int


@dataclass(frozen=True)
class InvokeResult:
    """Model outputs (copies, safe to use while the next invoke runs) and how long each step took."""

    outputs: list[np.ndarray]
    input_ns: int
    invoke_ns: int
    output_ns: int


@dataclass
class Inferred(Generic[FrameT, GeometryT]):
    """A prepared frame and what the model made of it."""

    prepared: Prepared[FrameT, GeometryT]
    result: InvokeResult


@dataclass
class PipelineCounters:
    """What happened to frames since start."""

    prepared: int = 0
    inferred: int = 0
    posted: int = 0
    prepare_failed: int = 0
    invoke_failed: int = 0
    post_failed: int = 0
    last_progress_ns: int = field(default_factory=time.monotonic_ns)


@dataclass
class Stages(Generic[FrameT, GeometryT]):
    """The blocking work of each stage, supplied by the composition root.

    ``next_frame`` waits (async) for the newest frame or returns None on timeout;
    ``prepare`` fills the given array from the frame and returns its geometry (it must release the
    frame's resources before returning); ``invoke`` runs the model on a prepared array (copying it
    into the model unless it is ``model_input``) and returns copies of the outputs with each step's
    duration; ``post`` decodes, tracks and publishes one inferred frame. ``model_input``, the
    model's own input array, is what the serial schedule prepares into; the overlap schedule
    prepares into staging arrays of ``staging_shape`` and ``staging_dtype``.
    """

    next_frame: Callable[[float], Awaitable[FrameT | None]]
    prepare: Callable[[FrameT, np.ndarray], GeometryT]
    invoke: Callable[[np.ndarray], InvokeResult]
    post: Callable[[Inferred[FrameT, GeometryT]], None]
    staging_shape: tuple[int, ...]
    staging_dtype: np.dtype
    model_input: np.ndarray | None = None


_END = object()


class Pipeline(Generic[FrameT, GeometryT]):
    """Runs the three stages until ``stop`` is set, then drains the frames in flight."""

    def __init__(self, stages: Stages[FrameT, GeometryT], *, max_invoke_failures: int = 10,
                 poll_seconds: float = 0.1, overlap: bool = True) -> None:
        self.stages = stages
        self.counters = PipelineCounters()
        self.max_invoke_failures = max_invoke_failures
        self.poll_seconds = poll_seconds
        self.overlap = overlap
        # Overlap schedule: set once the invoke loop has taken the last prepared frame / while no invoke runs.
        self._taken = asyncio.Event()
        self._model_idle = asyncio.Event()
        self._invoke_started_ns = 0
        self._invoke_failures = 0  # in a row
        self.mean_prepare_ns: float | None = None
        self.mean_invoke_ns: float | None = None
        self._staging: list[np.ndarray] = (
            [stages.model_input] if not overlap and stages.model_input is not None  # serial: prepare into the model
            else [np.zeros(stages.staging_shape, stages.staging_dtype) for _ in range(STAGING_BUFFERS)])
        self._executors = {name: ThreadPoolExecutor(1, thread_name_prefix=f"edgenode-{name}")
                           for name in ("prepare", "invoke", "post")}
        self.waiting_for_frames = True

    def stalled(self, limit_ns: int) -> bool:
        """True when frames are in hand but nothing progressed for ``limit_ns`` (waiting for frames is not a stall)."""
        return not self.waiting_for_frames and time.monotonic_ns() - self.counters.last_progress_ns > limit_ns

    def _touch(self) -> None:
        self.counters.last_progress_ns = time.monotonic_ns()

    async def _run_in(self, stage: str, function: Callable[..., Any], *args: object) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executors[stage], function, *args)

    @staticmethod
    async def _until(event: asyncio.Event, stop: asyncio.Event, timeout: float | None = None) -> bool:
        """Wait for ``event`` (at most ``timeout`` s); False when ``stop`` is set first (a cancellation propagates)."""
        if not event.is_set() and not stop.is_set():
            waiters = {asyncio.ensure_future(event.wait()), asyncio.ensure_future(stop.wait())}
            try:
                await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
        return not stop.is_set()

    async def _just_in_time(self, stop: asyncio.Event) -> bool:
        """Overlap: wait until the model has taken the last frame and the running invoke is due to end
        within the lead time (or has ended); False when ``stop`` is set first."""
        if not await self._until(self._taken, stop):
            return False
        if self._model_idle.is_set() or self.mean_prepare_ns is None or self.mean_invoke_ns is None:
            return True
        lead_ns = prepare_lead_ns(self.mean_prepare_ns, self.mean_invoke_ns)
        wait_s = (self._invoke_started_ns + self.mean_invoke_ns - lead_ns - time.monotonic_ns()) / 1e9
        return await self._until(self._model_idle, stop, wait_s) if wait_s > 0 else True

    # -- one stage for one frame, blocking (on a stage thread); failures are counted and logged here --

    def _prepare_one(self, frame: FrameT, staging: np.ndarray, taken_ns: int) -> Prepared[FrameT, GeometryT] | None:
        """``frame`` converted into ``staging``; None when it was refused or failed."""
        try:
            geometry = self.stages.prepare(frame, staging)
        except FrameSkipped:
            return None
        except Exception as exc:
            self.counters.prepare_failed += 1
            _log().warning("frame skipped: preprocessing failed", error=str(exc), error_type=type(exc).__name__)
            return None
        self.counters.prepared += 1
        prepare_ns = time.monotonic_ns() - taken_ns
        self.mean_prepare_ns = update_mean(self.mean_prepare_ns, prepare_ns)
        return Prepared(frame, staging, geometry, taken_ns, prepare_ns)

    def _invoke_one(self, prepared: Prepared[FrameT, GeometryT]) -> Inferred[FrameT, GeometryT] | None:
        """The model run on ``prepared``; None when it failed, :class:`FatalPipelineError` when it keeps failing."""
        started = time.monotonic_ns()
        try:
            result = self.stages.invoke(prepared.input)
        except Exception as exc:
            self._invoke_failures += 1
            self.counters.invoke_failed += 1
            _log().error("frame skipped: model invoke failed", error=str(exc), error_type=type(exc).__name__,
                      consecutive=self._invoke_failures)
            if self._invoke_failures >= self.max_invoke_failures:
                raise FatalPipelineError(
                    f"the model failed {self._invoke_failures} frames in a row: {exc}") from exc
            return None
        self.mean_invoke_ns = update_mean(self.mean_invoke_ns, time.monotonic_ns() - started)
        self._invoke_failures = 0
        self.counters.inferred += 1
        self._touch()
        return Inferred(prepared, result)

    def _post_one(self, inferred: Inferred[FrameT, GeometryT]) -> None:
        """Decode, track and publish ``inferred``."""
        try:
            self.stages.post(inferred)
        except Exception as exc:
            self.counters.post_failed += 1
            _log().error("frame skipped: decode or publish failed", error=str(exc), error_type=type(exc).__name__)
        else:
            self.counters.posted += 1
            self._touch()

    def _one_frame(self, frame: FrameT, taken_ns: int) -> None:
        """Serial: every stage of one frame, in turn, on one thread."""
        prepared = self._prepare_one(frame, self._staging[0], taken_ns)
        inferred = self._invoke_one(prepared) if prepared is not None else None
        if inferred is not None:
            self._post_one(inferred)

    # -- the schedules --------------------------------------------------------------------------

    async def _next_frame(self) -> FrameT | None:
        self.waiting_for_frames = True
        frame = await self.stages.next_frame(self.poll_seconds)
        self._touch()
        if frame is not None:
            self.waiting_for_frames = False
        return frame

    async def _serial_loop(self, stop: asyncio.Event) -> None:
        """Serial: the newest frame once the last one is published, all its stages in one hand-off."""
        while not stop.is_set():
            frame = await self._next_frame()
            if frame is not None:
                await self._run_in("invoke", self._one_frame, frame, time.monotonic_ns())

    async def _prepare_loop(self, stop: asyncio.Event, out: asyncio.Queue[object]) -> None:
        slot = 0
        while await self._just_in_time(stop):
            frame = await self._next_frame()
            if frame is None:
                continue
            prepared = await self._run_in("prepare", self._prepare_one, frame, self._staging[slot], time.monotonic_ns())
            if prepared is None:
                continue
            slot = (slot + 1) % STAGING_BUFFERS
            self._taken.clear()  # set again once the invoke loop has taken this frame
            await out.put(prepared)
        await out.put(_END)  # only on a normal stop: when cancelled, nobody downstream is waiting

    async def _invoke_loop(self, inbox: asyncio.Queue[object], out: asyncio.Queue[object]) -> None:
        while (item := await inbox.get()) is not _END:
            assert isinstance(item, Prepared)
            self._taken.set()
            self._invoke_started_ns = time.monotonic_ns()
            self._model_idle.clear()
            try:
                inferred = await self._run_in("invoke", self._invoke_one, item)
            finally:
                self._model_idle.set()
            if inferred is not None:
                await out.put(inferred)
        await out.put(_END)

    async def _post_loop(self, inbox: asyncio.Queue[object]) -> None:
        while (item := await inbox.get()) is not _END:
            assert isinstance(item, Inferred)
            await self._run_in("post", self._post_one, item)

    async def run(self, stop: asyncio.Event) -> None:
        """Process frames until ``stop`` is set; frames already prepared are finished, then it returns."""
        self._taken.set()
        self._model_idle.set()
        if self.overlap:
            prepared: asyncio.Queue[object] = asyncio.Queue(maxsize=1)
            inferred: asyncio.Queue[object] = asyncio.Queue(maxsize=1)
            tasks = [
                asyncio.create_task(self._prepare_loop(stop, prepared), name="prepare"),
                asyncio.create_task(self._invoke_loop(prepared, inferred), name="invoke"),
                asyncio.create_task(self._post_loop(inferred), name="post"),
            ]
        else:
            tasks = [asyncio.create_task(self._serial_loop(stop), name="serial")]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                error = task.exception()
                if error is not None:
                    raise error
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def close(self, wait: bool = True) -> None:
        """Release the stage threads, waiting for work in hand unless ``wait`` is False."""
        for executor in self._executors.values():
            executor.shutdown(wait=wait, cancel_futures=True)
