"""The staged pipeline: stages overlap, bad frames are skipped, a failing model stops it, stop drains."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import numpy as np
import pytest

from edgenode.node.scheduler import FatalPipelineError, FrameSkipped, Inferred, InvokeResult, Pipeline, Stages
from tests.helpers.timing import scaled


def feed(frames: list[int]) -> Callable[[float], object]:
    pending = list(frames)

    async def next_frame(timeout: float) -> int | None:
        if pending:
            return pending.pop(0)
        await asyncio.sleep(timeout)
        return None

    return next_frame


def stages(frames: list[int], prepare: Callable[[int, np.ndarray], int] | None = None,
           invoke: Callable[[np.ndarray], InvokeResult] | None = None,
           posted: list[int] | None = None) -> Stages[int, int]:
    def default_prepare(frame: int, staging: np.ndarray) -> int:
        staging[...] = frame
        return frame * 10

    def default_invoke(staging: np.ndarray) -> InvokeResult:
        return InvokeResult([staging.copy()], 0, 1, 0)

    def post(item: Inferred[int, int]) -> None:
        assert item.prepared.geometry == item.prepared.frame * 10
        assert int(item.result.outputs[0][0]) == item.prepared.frame  # the staging buffer was not overwritten early
        (posted if posted is not None else []).append(item.prepared.frame)

    return Stages(feed(frames), prepare or default_prepare, invoke or default_invoke, post, (4,), np.dtype("int32"))


def invoke_failing_on(call: int) -> Callable[[np.ndarray], InvokeResult]:
    """An invoke that raises on its ``call``-th run only."""
    calls = {"n": 0}

    def invoke(staging: np.ndarray) -> InvokeResult:
        calls["n"] += 1
        if calls["n"] == call:
            raise RuntimeError("transient")
        return InvokeResult([staging.copy()], 0, 1, 0)

    return invoke


async def run_until(pipeline: Pipeline[int, int], condition: Callable[[], bool], limit: float = 10.0) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(pipeline.run(stop))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + scaled(limit)
    while not condition() and loop.time() < deadline and not task.done():
        await asyncio.sleep(0.01)
    stop.set()
    await task


def test_frames_flow_in_order_through_all_stages() -> None:
    posted: list[int] = []
    pipeline = Pipeline(stages(list(range(1, 21)), posted=posted), poll_seconds=0.01)
    asyncio.run(run_until(pipeline, lambda: len(posted) == 20))
    pipeline.close()
    assert posted == list(range(1, 21))
    assert (pipeline.counters.prepared, pipeline.counters.inferred, pipeline.counters.posted) == (20, 20, 20)


def test_prepare_of_the_next_frame_overlaps_invoke() -> None:
    second_prepared = threading.Event()
    overlapped: list[bool] = []

    def prepare(frame: int, staging: np.ndarray) -> int:
        staging[...] = frame
        if frame == 2:
            second_prepared.set()
        return frame * 10

    def invoke(staging: np.ndarray) -> InvokeResult:
        if int(staging[0]) == 1:  # invoke of frame 1 waits until frame 2 is being prepared
            overlapped.append(second_prepared.wait(timeout=scaled(5)))
        return InvokeResult([staging.copy()], 0, 1, 0)

    posted: list[int] = []
    pipeline = Pipeline(stages([1, 2, 3], prepare, invoke, posted), poll_seconds=0.01)
    asyncio.run(run_until(pipeline, lambda: len(posted) == 3))
    pipeline.close()
    assert overlapped == [True] and posted == [1, 2, 3]


def test_bad_frames_are_skipped_and_counted() -> None:
    def prepare(frame: int, staging: np.ndarray) -> int:
        if frame % 2:
            raise ValueError("stride mismatch")
        staging[...] = frame
        return frame * 10

    posted: list[int] = []
    pipeline = Pipeline(stages(list(range(1, 9)), prepare, posted=posted), poll_seconds=0.01)
    asyncio.run(run_until(pipeline, lambda: len(posted) == 4))
    pipeline.close()
    assert posted == [2, 4, 6, 8] and pipeline.counters.prepare_failed == 4


def test_a_model_that_keeps_failing_stops_the_pipeline() -> None:
    def invoke(staging: np.ndarray) -> InvokeResult:
        raise RuntimeError("NPU timeout")

    pipeline = Pipeline(stages(list(range(1, 50)), invoke=invoke), max_invoke_failures=3, poll_seconds=0.01)
    with pytest.raises(FatalPipelineError, match="3 frames in a row"):
        asyncio.run(run_until(pipeline, lambda: False))
    pipeline.close()
    assert pipeline.counters.invoke_failed == 3


def test_one_failed_invoke_is_skipped() -> None:
    invoke = invoke_failing_on(2)

    posted: list[int] = []
    pipeline = Pipeline(stages([1, 2, 3, 4], invoke=invoke, posted=posted), poll_seconds=0.01)
    asyncio.run(run_until(pipeline, lambda: len(posted) == 3))
    pipeline.close()
    assert posted == [1, 3, 4] and pipeline.counters.invoke_failed == 1


def test_serial_schedule_runs_one_stage_at_a_time_and_takes_fresh_frames() -> None:
    active: set[str] = set()
    lock = threading.Lock()
    clashes: list[str] = []
    taken_while_busy: list[int] = []

    def enter(stage: str) -> None:
        with lock:
            if active:  # serial: one stage at a time
                clashes.append(f"{stage} beside {sorted(active)}")
            active.add(stage)

    def leave(stage: str) -> None:
        with lock:
            active.discard(stage)

    pending = list(range(1, 13))

    async def next_frame(timeout: float) -> int | None:
        if active:
            taken_while_busy.append(pending[0] if pending else -1)
        if pending:
            return pending.pop(0)
        await asyncio.sleep(timeout)
        return None

    def prepare(frame: int, staging: np.ndarray) -> int:
        enter("prepare")
        time.sleep(0.002)
        staging[...] = frame
        leave("prepare")
        return frame * 10

    def invoke(staging: np.ndarray) -> InvokeResult:
        enter("invoke")
        time.sleep(0.005)
        leave("invoke")
        return InvokeResult([staging.copy()], 0, 1, 0)

    posted: list[int] = []

    def post(item: Inferred[int, int]) -> None:
        enter("post")
        time.sleep(0.002)
        posted.append(item.prepared.frame)
        leave("post")

    pipeline = Pipeline(Stages(next_frame, prepare, invoke, post, (4,), np.dtype("int32")), poll_seconds=0.01,
                        overlap=False)
    asyncio.run(run_until(pipeline, lambda: len(posted) == 12))
    pipeline.close()
    assert posted == list(range(1, 13))
    assert clashes == [] and taken_while_busy == []


@pytest.mark.parametrize("overlap", [True, False])
def test_both_schedules_skip_bad_frames_and_failed_invokes(overlap: bool) -> None:
    def prepare(frame: int, staging: np.ndarray) -> int:
        if frame == 3:
            raise ValueError("stride mismatch")
        staging[...] = frame
        return frame * 10

    invoke = invoke_failing_on(2)

    posted: list[int] = []
    pipeline = Pipeline(stages([1, 2, 3, 4, 5], prepare, invoke, posted), poll_seconds=0.01, overlap=overlap)
    asyncio.run(run_until(pipeline, lambda: len(posted) == 3))
    pipeline.close()
    assert posted == [1, 4, 5]
    assert (pipeline.counters.prepare_failed, pipeline.counters.invoke_failed) == (1, 1)


def test_serial_schedule_stops_on_a_failing_model() -> None:
    def invoke(staging: np.ndarray) -> InvokeResult:
        raise RuntimeError("NPU timeout")

    pipeline = Pipeline(stages(list(range(1, 50)), invoke=invoke), max_invoke_failures=3, poll_seconds=0.01,
                        overlap=False)
    with pytest.raises(FatalPipelineError, match="3 frames in a row"):
        asyncio.run(run_until(pipeline, lambda: False))
    pipeline.close()
    assert pipeline.counters.invoke_failed == 3


def test_frames_the_prepare_stage_already_counted_are_not_failures() -> None:
    def prepare(frame: int, staging: np.ndarray) -> int:
        if frame == 2:
            raise FrameSkipped("camera process 42 is gone")
        staging[...] = frame
        return frame * 10

    posted: list[int] = []
    pipeline = Pipeline(stages([1, 2, 3], prepare, posted=posted), poll_seconds=0.01)
    asyncio.run(run_until(pipeline, lambda: len(posted) == 2))
    pipeline.close()
    assert posted == [1, 3] and pipeline.counters.prepare_failed == 0


def test_overlap_takes_the_next_frame_just_in_time_and_never_queues_two() -> None:
    """Overlap: the next frame is taken late in the running invoke, not at its start (so it is
    fresh), but before it ends (so the model does not wait), and at most one frame waits for the model."""
    invokes: dict[int, tuple[float, float]] = {}
    taken: dict[int, float] = {}
    counter = iter(range(1, 1000))

    async def next_frame(timeout: float) -> int:
        frame = next(counter)
        taken[frame] = time.monotonic()
        return frame

    # Stage durations (simulated work) scale with the machine, so the ratios the schedule times by hold.
    def prepare(frame: int, staging: np.ndarray) -> int:
        time.sleep(scaled(0.03))
        staging[...] = frame
        return frame * 10

    def invoke(staging: np.ndarray) -> InvokeResult:
        began = time.monotonic()
        time.sleep(scaled(0.2))
        invokes[int(staging[0])] = (began, time.monotonic())
        return InvokeResult([staging.copy()], 0, 1, 0)

    posted: list[int] = []
    pipeline = Pipeline(stages([], prepare, invoke, posted), poll_seconds=0.01)
    pipeline.stages.next_frame = next_frame
    asyncio.run(run_until(pipeline, lambda: len(posted) >= 6))
    pipeline.close()
    assert posted == list(range(1, len(posted) + 1))  # no frame was prepared and then dropped
    for frame in range(3, 7):  # once the running means are known
        began, ended = invokes[frame - 1]
        assert began + scaled(0.08) < taken[frame] < ended, (frame, taken[frame] - began)  # due about 0.13 s in


@pytest.mark.parametrize("overlap", [False, True], ids=["serial", "overlap"])
def test_serial_prepares_into_the_models_input_and_overlap_into_staging_buffers(overlap: bool) -> None:
    model_input = np.zeros(4, np.int32)
    given: list[np.ndarray] = []

    def invoke(prepared: np.ndarray) -> InvokeResult:
        given.append(prepared)
        return InvokeResult([prepared.copy()], 0, 1, 0)

    posted: list[int] = []
    plan = stages(list(range(1, 7)), invoke=invoke, posted=posted)
    plan.model_input = model_input
    pipeline = Pipeline(plan, poll_seconds=0.01, overlap=overlap)
    asyncio.run(run_until(pipeline, lambda: len(posted) == 6))
    pipeline.close()
    assert posted == list(range(1, 7))
    if overlap:  # the model's input is being read while the next frame is prepared: never prepared into
        assert all(array is not model_input for array in given) and len({id(a) for a in given}) == 3
    else:
        assert all(array is model_input for array in given)
