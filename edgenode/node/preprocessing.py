"""Choose the preprocessor: G2D when asked or available (``--preprocess auto|g2d|cpu``), else numpy on the CPU.

The numpy path converts the frame in two horizontal bands, the second on a helper thread
(numpy releases the GIL inside its loops), when it has a second core the model is not using.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from edgenode.adapters.g2d import LIBRARY, G2DPreprocessor, G2DUnavailable
from edgenode.config import PreprocessSettings
from edgenode.core.preprocess import CpuPreprocessor, PreprocessError, Preprocessor
from edgenode.core.tensors import TensorSpec
from edgenode.logs import get_logger


class BandThreads:
    """Runs a frame's bands: the calling thread takes the first, ``helpers`` pool threads the rest."""

    def __init__(self, helpers: int) -> None:
        self.pool = ThreadPoolExecutor(max_workers=helpers, thread_name_prefix="edgenode-preprocess")

    def __call__(self, jobs: list[Callable[[], None]]) -> None:
        pending = [self.pool.submit(job) for job in jobs[1:]]
        try:
            jobs[0]()
        finally:
            for future in pending:
                future.result()

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def cpu_preprocessor(spec: TensorSpec, resize: str, cores: int | None = None) -> CpuPreprocessor:
    """The numpy preprocessor, on two bands (one helper thread) when there are cores to spare."""
    cores = (os.cpu_count() or 1) if cores is None else cores
    if cores < 2:
        return CpuPreprocessor(spec, resize)
    threads = BandThreads(1)
    try:
        return CpuPreprocessor(spec, resize, bands=2, runner=threads, release=threads.close)
    except BaseException:
        threads.close()
        raise


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
