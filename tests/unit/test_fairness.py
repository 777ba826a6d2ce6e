"""The policy that picks which camera streams each invoke serves: longest unserved first, then oldest frame."""

from __future__ import annotations

import pytest

from edgenode.core.fairness import Waiting, choose, serve_order


def test_the_stream_served_longest_ago_goes_first() -> None:
    waiting = [Waiting(0, arrived=5.0, served=4.0), Waiting(1, arrived=9.0, served=1.0),
               Waiting(2, arrived=1.0, served=3.0)]
    assert serve_order(waiting) == [1, 2, 0]
    assert choose(waiting) == [1]


def test_a_stream_never_served_goes_before_any_served_one() -> None:
    waiting = [Waiting(0, arrived=1.0, served=0.5), Waiting(1, arrived=8.0)]
    assert choose(waiting) == [1]


def test_between_equals_the_older_frame_then_the_lower_index() -> None:
    assert serve_order([Waiting(0, 3.0), Waiting(1, 2.0), Waiting(2, 2.0)]) == [1, 2, 0]
    assert serve_order([Waiting(0, 3.0, 1.0), Waiting(1, 2.0, 1.0)]) == [1, 0]


def test_a_batch_takes_distinct_streams_up_to_its_size() -> None:
    waiting = [Waiting(index, arrived=float(index)) for index in range(4)]
    assert choose(waiting, 2) == [0, 1]
    assert choose(waiting, 8) == [0, 1, 2, 3]
    assert choose([], 4) == []
    with pytest.raises(ValueError):
        choose(waiting, 0)


def simulate(rates: list[float], invoke_s: float, seconds: float, batch: int = 1) -> list[int]:
    """Cameras at ``rates`` frames a second (0: stopped; frame k arrives at k / rate) and a model taking
    ``invoke_s`` an invoke: how many frames of each stream it served."""
    served: list[float | None] = [None] * len(rates)
    taken = [-1] * len(rates)  # the number of the frame last taken from each camera
    counts = [0] * len(rates)
    for step in range(round(seconds / invoke_s)):
        now = step * invoke_s
        newest = [int(now * rate + 1e-9) if rate else -1 for rate in rates]
        waiting = [Waiting(i, newest[i] / rates[i], served[i]) for i in range(len(rates)) if newest[i] > taken[i]]
        for index in choose(waiting, batch):
            served[index], taken[index] = now, newest[index]
            counts[index] += 1
    return counts


def test_equal_cameras_share_the_model_evenly_and_a_stopped_one_takes_nothing() -> None:
    counts = simulate([30, 30, 30, 0], invoke_s=0.05, seconds=30)
    assert counts[3] == 0
    assert max(counts[:3]) - min(counts[:3]) <= 1
    assert sum(counts) == pytest.approx(30 / 0.05, rel=0.01)  # the model never idles while a frame waits


def test_a_fast_camera_takes_no_turns_from_a_slow_one() -> None:
    counts = simulate([60, 5], invoke_s=0.05, seconds=30)
    assert counts[1] == pytest.approx(5 * 30, rel=0.05)  # every frame of the slow camera
    assert counts[0] == pytest.approx(30 / 0.05 - counts[1], rel=0.02)


def test_batches_serve_every_stream_each_invoke_when_they_fit() -> None:
    counts = simulate([30, 30, 30, 30], invoke_s=0.1, seconds=10, batch=4)
    assert counts == [100, 100, 100, 100]
