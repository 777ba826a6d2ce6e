"""Shared fixtures and markers: real-model data and on-device checks skip with a reason."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from edgenode.logs import forget_errors

REPO = Path(__file__).resolve().parents[1]
SHARED_MODELS = Path(os.environ.get("EDGENODE_TEST_MODELS", REPO.parent / "shared" / "models"))


def on_device() -> bool:
    """True on an i.MX board with the NPU driver and G2D (or when EDGENODE_DEVICE=1 forces it)."""
    if os.environ.get("EDGENODE_DEVICE") == "1":
        return True
    return Path("/dev/galcore").exists() and Path("/dev/dma_heap").is_dir()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing_models = not SHARED_MODELS.is_dir()
    device = on_device()
    for item in items:
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
