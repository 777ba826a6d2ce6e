"""Choose the preprocessor: G2D when asked or available (``--preprocess auto|g2d|cpu``), else OpenCV on the CPU.

The CPU path lets OpenCV use a second thread when it has a second core the model is not using.
"""

from __future__ import annotations

import os
from typing import Any

from edgenode.adapters.g2d import LIBRARY, G2DPreprocessor, G2DUnavailable
from edgenode.config import PreprocessSettings
from edgenode.core.preprocess import CpuPreprocessor, PreprocessError, Preprocessor
from edgenode.core.tensors import TensorSpec
from edgenode.logs import get_logger


def cpu_preprocessor(spec: TensorSpec, resize: str, cores: int | None = None) -> CpuPreprocessor:
    """The OpenCV preprocessor, on two threads when there are cores to spare (``cores``: those free for it)."""
    cores = (os.cpu_count() or 1) if cores is None else cores
    return CpuPreprocessor(spec, resize, threads=2 if cores >= 2 else 1)


def build_preprocessor(settings: PreprocessSettings, spec: TensorSpec, *, library: str = LIBRARY,
                       cores: int | None = None) -> Preprocessor:
    """The preprocessor for ``spec``; ``auto`` falls back to the CPU (on ``cores`` cores) with one log line,
    ``g2d`` fails clearly."""
    log: Any = get_logger("edgenode.preprocess")
    if settings.backend != "cpu":
        try:
            return G2DPreprocessor(spec, settings.resize, library=library)
        except G2DUnavailable as exc:
            if settings.backend == "g2d":
                raise PreprocessError(f"--preprocess g2d: {exc}") from None
            log.info(f"G2D unavailable ({exc}); preprocessing on the CPU")
    return cpu_preprocessor(spec, settings.resize, cores)
