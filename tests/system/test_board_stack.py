"""What the board's software stack needs: the numpy floor (said in one line), the tflite extra on each Python."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from packaging.requirements import Requirement

from edgenode.app import NUMPY_FLOOR, numpy_problem

try:
    import tomllib
except ImportError:  # Python 3.10: hatchling's tomli
    import tomli as tomllib

PROJECT = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]


def test_the_numpy_floor_is_the_packages_and_this_numpy_meets_it() -> None:
    numpy = next(Requirement(line) for line in PROJECT["dependencies"] if line.startswith("numpy"))
    floor = re.fullmatch(r">=(\d+)\.(\d+)", str(numpy.specifier))
    assert floor is not None and tuple(map(int, floor.groups())) == NUMPY_FLOOR
    assert numpy_problem(np.__version__) == ""


@pytest.mark.parametrize("version", ["1.22.3", "1.21.0"])
def test_an_older_numpy_is_one_line_saying_what_to_install(version: str) -> None:
    problem = numpy_problem(version)
    assert problem.startswith(f"edgenode needs numpy 1.23 or newer, found {version}")
    assert "pip install 'numpy>=1.23,<2'" in problem and "\n" not in problem


@pytest.mark.parametrize("version", ["1.23.0", "1.26.4", "2.0.0rc1", "2.4.6", "not-a-version"])
def test_newer_numpys_pass(version: str) -> None:
    assert numpy_problem(version) == ""


@pytest.mark.parametrize(("python", "wants_tflite_runtime"), [("3.10", True), ("3.11", True), ("3.12", False),
                                                             ("3.13", False)])
def test_the_tflite_extra_asks_for_tflite_runtime_only_where_it_has_wheels(python: str,
                                                                            wants_tflite_runtime: bool) -> None:
    board = {"python_version": python, "platform_system": "Linux", "platform_machine": "aarch64", "extra": "tflite"}
    wanted = {Requirement(line).name for line in PROJECT["optional-dependencies"]["tflite"]
              if Requirement(line).marker is None or Requirement(line).marker.evaluate(board)}
    assert wanted == ({"tflite-runtime", "numpy"} if wants_tflite_runtime else {"numpy"})
