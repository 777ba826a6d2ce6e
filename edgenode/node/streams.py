"""Several camera streams through one model: which frames each invoke takes, and each slice back to its stream.

The pipeline (:mod:`edgenode.node.scheduler`) runs one item per invoke; here an item is a :class:`Batch`:
the newest frame of each of up to ``batch`` streams, chosen by :func:`edgenode.core.fairness.serve_order`
among the streams with a fresh frame (a stream with none is passed over, never waited for). Each frame is
prepared into its own slice of the model's input by its stream's :class:`PrepareStage`, and each slice of
the outputs is decoded, tracked and published by its stream's :class:`PostStage`. One stream and a model of
batch 1 is the node as it always was: one frame, the whole input, the whole outputs.

A frame that cannot be imported, or whose preprocessing fails, is counted on its own stream and leaves its
slice out; the others in the batch go on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgenode.adapters.camera import CameraFrames
from edgenode.core.fairness import Waiting, serve_order
from edgenode.core.geometry import InputGeometry
from edgenode.core.ingest import FrameRef
from edgenode.logs import get_logger
from edgenode.node.scheduler import FrameSkipped, Inferred, InvokeResult, Prepared
from edgenode.node.stages import PostStage, PrepareStage

GAP_CHECK_SECONDS = 0.25  # how often a wait for frames looks for silent streams (their one warning each)


def _log() -> Any:
    return get_logger("edgenode.node")


@dataclass
class StreamRun:
    """One stream while the model runs: its frames, its prepare and post stages, its own failure counts."""

    name: str
    frames: CameraFrames
    prepare: PrepareStage
    post: PostStage
    prepare_failed: int = 0
    post_failed: int = 0
    served: float | None = None  # when an invoke last took its frame (time.monotonic())


@dataclass(frozen=True)
class Batch:
    """The frames one invoke takes: (stream, frame) per input slice, in slice order."""

    frames: tuple[tuple[StreamRun, FrameRef], ...]


@dataclass(frozen=True)
class Slice:
    """One frame prepared into its slice: its geometry (None: skipped) and how long preparing it took."""

    geometry: InputGeometry | None
    preprocess_ns: int


class FairFrames:
    """The next batch: the newest frames of up to ``batch`` streams, those served longest ago first."""

    def __init__(self, runs: Sequence[StreamRun], batch: int = 1) -> None:
        self.runs = list(runs)
        self.batch = batch

    async def _any_pending(self, timeout: float) -> None:
        waiters = [asyncio.ensure_future(run.frames.slot.wait()) for run in self.runs]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def next(self, timeout: float) -> Batch | None:
        """The next batch, or None when ``timeout`` seconds pass without a usable frame on any stream."""
        runs = self.runs
        if len(runs) == 1:  # one stream: its newest frame, exactly as a single-camera node takes it
            ref = await runs[0].frames.next(timeout)
            return Batch(((runs[0], ref),)) if ref is not None else None
        deadline = time.monotonic() + timeout
        while True:
            now = time.monotonic()
            waiting = []
            for index, run in enumerate(runs):
                if run.frames.pending:
                    waiting.append(Waiting(index, run.frames.arrived, run.served))
                else:
                    run.frames.watch(now)  # a silent camera: its one warning, while the others keep the model busy
            taken: list[tuple[StreamRun, FrameRef]] = []
            for index in serve_order(waiting):
                ref = await runs[index].frames.next(0)  # a message waits: no wait here (None: a bad one, counted)
                if ref is not None:
                    taken.append((runs[index], ref))
                    if len(taken) == self.batch:
                        break
            now = time.monotonic()
            if taken:
                for run, _ in taken:
                    run.served = now
                return Batch(tuple(taken))
            if waiting:
                continue  # every waiting message was a bad one: look again
            left = deadline - now
            if left <= 0:
                return None
            await self._any_pending(min(left, GAP_CHECK_SECONDS))


def slice_outputs(outputs: Sequence[np.ndarray], index: int, batch: int) -> list[np.ndarray]:
    """Slice ``index`` of each output of a batched model (the whole outputs when ``batch`` is 1)."""
    if batch == 1:
        return list(outputs)
    return [output[index:index + 1] for output in outputs]


class BatchStages:
    """The pipeline's prepare and post over batches (``batch``: the model input's first dimension)."""

    def __init__(self, batch: int) -> None:
        self.batch = batch

    def prepare(self, item: Batch, into: np.ndarray) -> tuple[Slice, ...]:
        """Each frame into its slice of ``into``; FrameSkipped when none could be prepared."""
        if len(item.frames) == 1:  # the pipeline counts and logs a failure, as for a single-camera node
            run, ref = item.frames[0]
            return (Slice(run.prepare(ref, into[0:1]), 0),)
        slices = []
        for index, (run, ref) in enumerate(item.frames):
            started = time.monotonic_ns()
            try:
                geometry: InputGeometry | None = run.prepare(ref, into[index:index + 1])
            except FrameSkipped:
                geometry = None
            except Exception as exc:
                run.prepare_failed += 1
                geometry = None
                _log().warning("frame skipped: preprocessing failed", stream=run.name, error=str(exc),
                               error_type=type(exc).__name__)
            slices.append(Slice(geometry, time.monotonic_ns() - started))
        if all(piece.geometry is None for piece in slices):
            raise FrameSkipped("no frame of the batch could be prepared")
        return tuple(slices)

    def post(self, inferred: Inferred[Batch, tuple[Slice, ...]]) -> None:
        """Each prepared frame's slice of the outputs to its stream's post stage (one stream's failure is its
        own: counted on it and logged; the others are published)."""
        prepared, result = inferred.prepared, inferred.result
        single = len(prepared.frame.frames) == 1
        for index, ((run, ref), piece) in enumerate(zip(prepared.frame.frames, prepared.geometry, strict=True)):
            if piece.geometry is None:
                continue
            own = InvokeResult(slice_outputs(result.outputs, index, self.batch), result.input_ns, result.invoke_ns,
                               result.output_ns)
            preprocess_ns = prepared.preprocess_ns if single else piece.preprocess_ns
            frame = Prepared(ref, prepared.input, piece.geometry, prepared.taken_ns, preprocess_ns)
            if single:  # the pipeline counts and logs a failure, as for a single-camera node
                run.post(Inferred(frame, own))
                continue
            try:
                run.post(Inferred(frame, own))
            except Exception as exc:
                run.post_failed += 1
                _log().error("frame skipped: decode or publish failed", stream=run.name, error=str(exc),
                             error_type=type(exc).__name__)
