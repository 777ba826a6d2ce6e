"""Choose the preprocessor: G2D when asked or available (``--preprocess auto|g2d|cpu``), else numpy on the CPU."""

from __future__ import annotations

from typing import Any

from edgenode.adapters.g2d import LIBRARY, G2DPreprocessor, G2DUnavailable
from edgenode.config import PreprocessSettings
from edgenode.core.preprocess import CpuPreprocessor, PreprocessError, Preprocessor
from edgenode.core.tensors import TensorSpec
from edgenode.logs import get_logger


def build_preprocessor(settings: PreprocessSettings, spec: TensorSpec, *, library: str = LIBRARY) -> Preprocessor:
    """The preprocessor for ``spec``; ``auto`` falls back to the CPU with one log line, ``g2d`` fails clearly."""
    log: Any = get_logger("edgenode.preprocess")
    if settings.backend != "cpu":
        try:
            return G2DPreprocessor(spec, settings.resize, library=library)
        except G2DUnavailable as exc:
            if settings.backend == "g2d":
                raise PreprocessError(f"--preprocess g2d: {exc}") from None
            log.info(f"G2D unavailable ({exc}); preprocessing on the CPU")
    return CpuPreprocessor(spec, settings.resize)
