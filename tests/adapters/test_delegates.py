"""Delegate descriptors, the choice of delegate, the NPU graph cache, and loading through the real
external-delegate ABI with a C double compiled here (records what it receives, or refuses)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from structlog.testing import capture_logs

from edgenode.adapters.delegates import (
    DelegateError,
    apply_environment,
    parse_descriptor,
    plan_delegates,
    shipped_descriptors,
)
from edgenode.adapters.tflite import load_runtime
from edgenode.config import ModelSettings
from edgenode.tools.tflite_builder import TensorDef, echo_model
from tests.helpers.native import source

FAKE_DELEGATE = source("fake_delegate.c").read_text()


@pytest.fixture(scope="module")
def libraries(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is needed to build the fake delegate")
    folder = tmp_path_factory.mktemp("delegates")
    (folder / "fake.c").write_text(FAKE_DELEGATE)
    (folder / "other.c").write_text("int unrelated(void) { return 1; }\n")
    built = {}
    for name in ("fake", "other"):
        built[name] = folder / f"lib{name}.so"
        subprocess.run([gcc, "-shared", "-fPIC", "-o", str(built[name]), str(folder / f"{name}.c")], check=True)
    return built


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "echo.tflite"
    path.write_bytes(echo_model([TensorDef("out", (1, 4))]).build())
    return path


@pytest.fixture
def record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "record.txt"
    monkeypatch.setenv("FAKE_DELEGATE_RECORD", str(path))
    for name in ("FAKE_CACHE_DIR", "FAKE_PLAIN_ENV"):
        monkeypatch.setenv(name, "sentinel")   # so monkeypatch restores the environment afterwards
        monkeypatch.delenv(name)
    return path


def descriptor(folder: Path, library: Path, name: str = "fake", options: str = "{}") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(f"""
name: {name}
library: {library}
options: {options}
environment: {{FAKE_PLAIN_ENV: "on"}}
cache:
  environment: {{FAKE_CACHE_DIR: "{{dir}}"}}
""")
    return path


def runs(runtime: object) -> bool:
    runtime.input_view()[...] = 3.0  # type: ignore[attr-defined]
    runtime.invoke()  # type: ignore[attr-defined]
    return bool((runtime.output_views()[0] == 3.0).all())  # type: ignore[attr-defined]


def test_shipped_descriptors() -> None:
    known = shipped_descriptors()
    assert {"vx", "ethosu", "neutron"} <= set(known)
    vx = known["vx"]
    assert vx.library == "libvx_delegate.so"
    assert vx.cache_environment == {"VIV_VX_ENABLE_CACHE_GRAPH_BINARY": "1", "VIV_VX_CACHE_BINARY_GRAPH_DIR": "{dir}"}
    assert known["ethosu"].library == "libethosu_delegate.so"
    assert known["neutron"].library == "libneutron_delegate.so"


def test_descriptor_errors() -> None:
    with pytest.raises(DelegateError, match="needs at least 'name' and 'library'"):
        parse_descriptor({"name": "x"}, "x.yaml")
    with pytest.raises(DelegateError, match="options must be a mapping"):
        parse_descriptor({"name": "x", "library": "l.so", "options": [1]}, "x.yaml")


def test_choice_of_delegate(tmp_path: Path) -> None:
    none = {"LD_LIBRARY_PATH": ""}
    assert plan_delegates(ModelSettings(Path("m"), engine="cpu"), none) == []
    with capture_logs() as logs:
        assert plan_delegates(ModelSettings(Path("m"), engine="npu"), none) == []
    assert "no NPU delegate installed (looked for libvx_delegate.so" in logs[0]["event"]
    missing = plan_delegates(ModelSettings(Path("m"), delegate="vx", cache_dir=tmp_path), none)
    assert missing[0].name == "vx" and missing[0].library is None
    with pytest.raises(DelegateError, match=r"--delegate /no/such/libvx\.so: no such file"):
        plan_delegates(ModelSettings(Path("m"), delegate="/no/such/libvx.so"), none)
    with pytest.raises(DelegateError, match=r"not a known delegate \(ethosu, neutron, vx\)"):
        plan_delegates(ModelSettings(Path("m"), delegate="tpu"), none)
    with pytest.raises(DelegateError, match="no such descriptor file"):
        plan_delegates(ModelSettings(Path("m"), delegate=str(tmp_path / "x.yaml")), none)


def test_a_library_path_gets_its_descriptor_settings(tmp_path: Path) -> None:
    library = tmp_path / "lib" / "libvx_delegate.so"
    library.parent.mkdir()
    library.write_bytes(b"")
    plan = plan_delegates(ModelSettings(Path("m"), delegate=str(library), cache_dir=tmp_path / "cache"), {})[0]
    assert plan.name == "vx" and plan.library == library
    assert plan.environment == {"VIV_VX_ENABLE_CACHE_GRAPH_BINARY": "1",
                                "VIV_VX_CACHE_BINARY_GRAPH_DIR": str(tmp_path / "cache" / "vx")}
    assert (tmp_path / "cache" / "vx").is_dir()                          # created
    found = plan_delegates(ModelSettings(Path("m"), delegate="vx"), {"LD_LIBRARY_PATH": str(library.parent)})[0]
    assert found.library == library                                     # found through LD_LIBRARY_PATH


def test_unwritable_cache_is_logged_and_skipped(tmp_path: Path) -> None:
    library = tmp_path / "libvx_delegate.so"
    library.write_bytes(b"")
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the cache directory should go")
    with capture_logs() as logs:
        plan = plan_delegates(ModelSettings(Path("m"), delegate=str(library), cache_dir=blocker), {})[0]
    assert plan.environment == {}
    assert any("is not writable" in entry["event"] and "without its compiled-graph cache" in entry["event"]
               for entry in logs)


def test_environment_already_set_is_kept() -> None:
    environ = {"A": "user"}
    apply_environment({"A": "descriptor", "B": "descriptor"}, environ)
    assert environ == {"A": "user", "B": "descriptor"}


def test_delegate_loads_with_its_options_environment_and_cache(libraries: dict[str, Path], model: Path,
                                                               record: Path, tmp_path: Path) -> None:
    path = descriptor(tmp_path, libraries["fake"], options="{device_id: 0, priority: high}")
    runtime = load_runtime(model, ModelSettings(model, delegate=str(path), cache_dir=tmp_path / "cache"))
    assert runtime.delegate == "fake" and runs(runtime)
    lines = record.read_text().splitlines()
    assert lines[:2] == ["option device_id=0", "option priority=high"]
    assert lines[2] == f"env FAKE_CACHE_DIR={tmp_path / 'cache' / 'fake'} FAKE_PLAIN_ENV=on"   # set before loading


def test_engine_npu_picks_an_installed_npu_descriptor(libraries: dict[str, Path], model: Path, record: Path,
                                                      tmp_path: Path) -> None:
    folder = tmp_path / "descriptors"
    folder.mkdir()
    descriptor(folder, libraries["fake"], name="vx")
    runtime = load_runtime(model, ModelSettings(model, engine="npu", cache_dir=tmp_path), descriptors=folder)
    assert runtime.delegate == "vx" and runs(runtime)


@pytest.mark.parametrize(("options", "reason"), [
    ("{fail: 1}", "failed to load: Failed to load delegate from .*: the fake delegate was told to fail"),
    ("{fail_prepare: 1}", "cannot run this model"),
])
def test_failing_delegate_falls_back_to_xnnpack(libraries: dict[str, Path], model: Path, record: Path, *,
                                                tmp_path: Path, options: str, reason: str) -> None:
    path = descriptor(tmp_path, libraries["fake"], options=options)
    with capture_logs() as logs:
        runtime = load_runtime(model, ModelSettings(model, delegate=str(path), cache_dir=tmp_path))
    assert runtime.delegate is None and runs(runtime)
    warnings = [entry["event"] for entry in logs if entry["log_level"] == "warning"]
    assert len(warnings) == 1
    assert re.search(reason, warnings[0])
    assert warnings[0].endswith("running on the CPU with XNNPACK")


def test_not_a_delegate_or_missing_library_falls_back(libraries: dict[str, Path], model: Path,
                                                      tmp_path: Path) -> None:
    with capture_logs() as logs:
        runtime = load_runtime(model, ModelSettings(model, delegate=str(libraries["other"])))
    assert runtime.delegate is None
    assert "is not a TFLite external delegate (no tflite_plugin_create_delegate" in logs[-2]["event"]
    path = descriptor(tmp_path, tmp_path / "missing" / "libgone.so")
    with capture_logs() as logs:
        runtime = load_runtime(model, ModelSettings(model, delegate=str(path)))
    assert runtime.delegate is None and "libgone.so is not installed" in logs[0]["event"]


@pytest.mark.device
@pytest.mark.models
def test_vx_delegate_on_the_npu_with_graph_cache(shared_models: Path, tmp_path: Path) -> None:
    """On an i.MX8M Plus: the model runs on the NPU, its compiled graph lands in the cache, and a
    second load reuses it instead of compiling again."""
    path = shared_models / "yolov8s-fall-int8.tflite"
    settings = ModelSettings(path, engine="npu", cache_dir=tmp_path)
    runtime = load_runtime(path, settings)
    assert runtime.delegate == "vx"
    cached = {p: p.stat().st_mtime_ns for p in (tmp_path / "vx").iterdir()}
    assert cached, "the NPU driver wrote no compiled graph to the cache"
    del runtime
    again = load_runtime(path, settings)
    assert again.delegate == "vx"
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "vx").iterdir()} == cached
    again.input_view()[...] = np.int8(0)
    again.invoke()
