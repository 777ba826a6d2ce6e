"""``--schedule`` resolved from the model's placement: overlap or serial, and the preprocessing's cores."""

from __future__ import annotations

import pytest

from edgenode.node.compose import choose_schedule


@pytest.mark.parametrize(("schedule", "delegate", "threads", "cores", "expected"), [
    ("auto", None, 2, 2, (False, 2)),  # the model on every core: take turns, preprocessing on every core
    ("auto", None, 4, 2, (False, 2)),
    ("auto", None, 1, 2, (True, 1)),  # a free core: overlap, preprocessing off the model's core
    ("auto", None, 2, 4, (True, 2)),
    ("auto", "libvx_delegate.so", 4, 4, (True, 4)),  # the NPU runs the model: every core is free
    ("overlap", None, 2, 2, (True, 1)),  # forced overlap beside a model on every core: at least one
    ("serial", None, 1, 4, (False, 4)),
    ("serial", "libvx_delegate.so", 4, 4, (False, 4)),
])
def test_schedule_and_preprocessing_cores(schedule: str, delegate: str | None, threads: int, cores: int,
                                          expected: tuple[bool, int]) -> None:
    assert choose_schedule(schedule, delegate, threads, cores) == expected
