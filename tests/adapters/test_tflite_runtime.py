"""The TFLite runtime adapter: runtime choice, specs, in-place input, invoke, outputs, load errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from edgenode.adapters.model_file import ModelFileError
from edgenode.adapters.tflite import Runtime, import_runtimes, load_runtime, runtime_order
from edgenode.config import ModelSettings
from edgenode.core.model_config import ModelError
from edgenode.tools.tflite_builder import TensorDef, echo_model


@pytest.fixture(scope="module")
def echo_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "echo.tflite"
    path.write_bytes(echo_model([TensorDef("scores", (1, 3, 5), np.int8, 0.5, 2), TensorDef("boxes", (1, 4, 5))],
                                output_order=[1, 0]).build())
    return path


def test_runtime_order_follows_numpy() -> None:
    assert runtime_order("2.4.6") == ("ai_edge_litert", "tflite_runtime")
    assert runtime_order("1.26.4") == ("tflite_runtime", "ai_edge_litert")
    assert import_runtimes()[0].name in ("ai_edge_litert", "tflite_runtime")


def test_specs_input_view_invoke_and_output_views(echo_path: Path) -> None:
    runtime = load_runtime(echo_path, ModelSettings(echo_path, engine="cpu", threads=1))
    assert runtime.delegate is None
    assert [(s.name, s.shape) for s in runtime.inputs] == [("scores_in", (1, 3, 5)), ("boxes_in", (1, 4, 5))]
    assert [(s.name, s.shape, s.dtype) for s in runtime.outputs] == [("boxes", (1, 4, 5), np.float32),
                                                                     ("scores", (1, 3, 5), np.int8)]
    assert (runtime.outputs[1].scale, runtime.outputs[1].zero_point) == (0.5, 2)
    view = runtime.input_view(0)
    for frame in range(3):                                 # the same view, written in place, every frame
        assert runtime.input_view(0) is view
        view[...] = frame - 1
        runtime.set_input(np.full((1, 4, 5), frame / 2), 1)
        runtime.invoke()
        boxes, scores = runtime.output_views()
        assert (scores == frame - 1).all() and (boxes == np.float32(frame / 2)).all()
    assert not runtime.output_views()[0].flags.owndata      # a view of the runtime's buffer, not a copy


class FakeInterpreter:
    """Records how the adapter drives an interpreter."""

    created: ClassVar[list[dict[str, Any]]] = []
    invokes: ClassVar[int] = 0

    def __init__(self, **kwargs: Any) -> None:
        FakeInterpreter.created.append(kwargs)
        self.arrays = {0: np.zeros((1, 2), np.float32), 1: np.zeros((1, 2), np.float32)}

    def allocate_tensors(self) -> None:
        pass

    def invoke(self) -> None:
        FakeInterpreter.invokes += 1

    def get_input_details(self) -> list[dict[str, Any]]:
        return [{"name": "in", "shape": np.array([1, 2]), "dtype": np.float32, "quantization": (0.0, 0), "index": 0}]

    def get_output_details(self) -> list[dict[str, Any]]:
        return [{"name": "out", "shape": np.array([1, 2]), "dtype": np.float32, "quantization": (0.0, 0), "index": 1}]

    def tensor(self, index: int) -> Any:
        return lambda: self.arrays[index]


def broken(**kwargs: Any) -> Any:
    raise SystemError("<built-in method CreateWrapperFromFile> returned a result with an exception set")


def test_warm_up_and_all_cores(echo_path: Path) -> None:
    FakeInterpreter.created.clear()
    FakeInterpreter.invokes = 0
    runtime = load_runtime(echo_path, ModelSettings(echo_path, engine="cpu"),
                           runtimes=[Runtime("fake", FakeInterpreter, None)])
    assert FakeInterpreter.invokes == 1                     # one warm-up invoke at load
    assert FakeInterpreter.created[0]["num_threads"] == len(os.sched_getaffinity(0))
    runtime.invoke()
    assert FakeInterpreter.invokes == 2


def test_a_runtime_broken_by_numpy_is_skipped(echo_path: Path) -> None:
    runtime = load_runtime(echo_path, ModelSettings(echo_path, engine="cpu", threads=1),
                           runtimes=[Runtime("tflite_runtime", broken, None), Runtime("fake", FakeInterpreter, None)])
    assert runtime.runtime == "fake"
    with pytest.raises(ModelError, match=r"no TFLite runtime works with numpy .*tflite_runtime: SystemError"):
        load_runtime(echo_path, ModelSettings(echo_path, engine="cpu", threads=1),
                     runtimes=[Runtime("tflite_runtime", broken, None)])


def test_corrupt_model_is_a_one_line_error(tmp_path: Path, echo_path: Path) -> None:
    path = tmp_path / "bad.tflite"
    path.write_bytes(echo_path.read_bytes()[:8] + b"\x00" * 64)
    with pytest.raises(ModelFileError, match="is not a valid TFLite model, truncated or corrupt") as error:
        load_runtime(path, ModelSettings(path, engine="cpu", threads=1))
    assert "\n" not in str(error.value)
    with pytest.raises(ModelFileError, match="no such file"):
        load_runtime(tmp_path / "none.tflite", ModelSettings(tmp_path / "none.tflite", engine="cpu"))


def test_more_threads_than_cores_is_said_and_bounded(echo_path: Path) -> None:
    """``--threads 100000`` made every frame wait for seconds; it is cut to the cores the process may use."""
    from structlog.testing import capture_logs

    from edgenode.adapters.tflite import available_cores

    cores = available_cores()
    with capture_logs() as logs:
        runtime = load_runtime(echo_path, ModelSettings(echo_path, engine="cpu", threads=100000))
    assert runtime.threads == cores
    warnings = [log["event"] for log in logs if log["log_level"] == "warning"]
    assert warnings == [f"--threads 100000 is more than the {cores} cores this process may run on; using {cores}"]
    with capture_logs() as logs:
        assert load_runtime(echo_path, ModelSettings(echo_path, engine="cpu", threads=cores)).threads == cores
    assert not [log for log in logs if log["log_level"] == "warning"]


def test_resize_batch_runs_several_frames_in_one_invoke(tmp_path: Path) -> None:
    from tests.helpers.models import conv_model

    path = conv_model(tmp_path / "conv.tflite")
    runtime = load_runtime(path, ModelSettings(path, engine="cpu", threads=1))
    frames = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    alone = []
    for index in range(2):
        runtime.set_input(frames[index:index + 1])
        runtime.invoke()
        alone.append(runtime.output_views()[0].copy())
    runtime.resize_batch(2)
    assert runtime.inputs[0].shape == (2, 32, 32, 3) and runtime.outputs[0].shape == (2, 32, 32, 8)
    runtime.input_view()[...] = frames  # a new view, of the resized input
    runtime.invoke()
    together = runtime.output_views()[0]
    for index in range(2):
        np.testing.assert_allclose(together[index:index + 1], alone[index], rtol=1e-5, atol=1e-5)


def test_a_model_that_cannot_take_a_batch_says_so_and_runs_on(tmp_path: Path) -> None:
    from edgenode.tools.demo.shapes_model import build_shapes_model

    path = tmp_path / "shapes.tflite"
    path.write_bytes(build_shapes_model())  # reshapes to fixed shapes of one frame
    runtime = load_runtime(path, ModelSettings(path, engine="cpu", threads=1))
    with pytest.raises(ModelError, match="cannot take 2 frames"):
        runtime.resize_batch(2)
    assert runtime.inputs[0].shape == (1, 320, 320, 3)
    runtime.input_view()[...] = 0.5
    runtime.invoke()
    assert runtime.output_views()[0].shape == (1, 8, 6400)
