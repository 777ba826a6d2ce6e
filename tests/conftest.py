"""Shared fixtures and markers: real-model data and on-device checks skip with a reason."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from edgenode.logs import forget_errors
from tests.helpers.timing import SCALE, scaled

REPO = Path(__file__).resolve().parents[1]
SHARED_MODELS = Path(os.environ.get("EDGENODE_TEST_MODELS", REPO.parent / "shared" / "models"))
# The subset CI runs on emulated aarch64 (``pytest -m aarch64``, .ci/aarch64): every layer once (messages,
# decoders, tracker, preprocessing, dma-buf import, the runtime, the pipeline), the real int8 model's boxes
# against x86's, one end-to-end run. Test files or node ids under tests/.
AARCH64_SUBSET = (
    "unit/test_messages_golden.py", "unit/test_decoders.py", "unit/test_bytetrack.py", "unit/test_preprocess_cpu.py",
    "adapters/test_dmabuf.py", "adapters/test_tflite_runtime.py",
    "node/test_pipeline.py", "node/test_golden_boxes.py",
    # Several cameras through one model (the board takes two MIPI cameras): the turns, and two streams' frames
    # each back on their own topics.
    "unit/test_fairness.py",
    # The native kernels' library as built there (the wheel test is CI's own "board wheel" part).
    "unit/test_kernels.py::test_the_loaded_library_was_built_from_these_sources",
    "unit/test_kernels.py::test_the_library_needs_no_glibc_newer_than_2_17",
    "node/test_streams.py::test_each_stream_gets_its_own_boxes_and_tracks_on_its_own_topics[2]",
    # One end-to-end run: camera process (bus.jpg) -> node (the int8 model) -> subscriber. (The demo run's
    # float32 model costs seconds a frame under qemu's soft float: it runs in the full suite.)
    "system/test_end_to_end.py::test_the_real_model_finds_the_people_in_bus_frames",
)


def on_device() -> bool:
    """True on an i.MX board with the NPU driver and G2D (or when EDGENODE_DEVICE=1 forces it)."""
    if os.environ.get("EDGENODE_DEVICE") == "1":
        return True
    return Path("/dev/galcore").exists() and Path("/dev/dma_heap").is_dir()


def pytest_configure(config: pytest.Config) -> None:
    # The native kernels as the sources here say (an edited kernel, a fresh copy of the tree): built when
    # missing or stale, so no test runs a library built from other sources.
    from edgenode.kernels.build import ensure

    ensure()
    if SCALE != 1:  # a slow machine: no per-example deadline for property tests (they check results, not speed)
        from hypothesis import HealthCheck, settings

        settings.register_profile("slow-machine", deadline=None, suppress_health_check=[HealthCheck.too_slow])
        settings.load_profile("slow-machine")


def _scale_timeout(config: pytest.Config, item: pytest.Item) -> None:
    """pytest-timeout's limit for ``item`` (its marker, else --timeout, else the ini value) times the factor."""
    marker = item.get_closest_marker("timeout")
    if marker is not None:
        seconds = marker.args[0] if marker.args else marker.kwargs.get("timeout")
    else:
        seconds = config.getoption("timeout", None) or config.getini("timeout")
    if seconds:
        item.add_marker(pytest.mark.timeout(scaled(float(seconds))), append=False)


def in_aarch64_subset(nodeid: str) -> bool:
    return any(nodeid == f"tests/{entry}" or nodeid.startswith((f"tests/{entry}::", f"tests/{entry}["))
               for entry in AARCH64_SUBSET)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing_models = not SHARED_MODELS.is_dir()
    device = on_device()
    for item in items:
        if in_aarch64_subset(item.nodeid):
            item.add_marker(pytest.mark.aarch64)
        if SCALE != 1:
            _scale_timeout(config, item)
        if "models" in item.keywords and missing_models:
            item.add_marker(pytest.mark.skip(
                reason=f"real test models not found at {SHARED_MODELS} (set EDGENODE_TEST_MODELS)"))
        if "device" in item.keywords and not device:
            item.add_marker(pytest.mark.skip(
                reason="needs an i.MX8M Plus board (/dev/galcore and /dev/dma_heap); set EDGENODE_DEVICE=1 to force"))


@pytest.fixture(scope="session")
def shared_models() -> Path:
    """Folder of the real test models and photos (tests using it carry the ``models`` marker)."""
    return SHARED_MODELS


@pytest.fixture(autouse=True)
def _default_logging() -> Iterator[None]:
    """Each test starts from structlog's defaults: a test that configures logging (level, stream) or logs an error
    leaves no trace."""
    yield
    structlog.reset_defaults()
    forget_errors()
