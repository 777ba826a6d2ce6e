"""Description of a model tensor, shared by the runtime adapter, preprocessing and decoders."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape, element type and (per-tensor) quantisation of one model input or output.

    ``scale == 0`` means not quantised. A real value is ``(q - zero_point) * scale``.
    ``index`` is the runtime's own tensor index.
    """

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    scale: float = 0.0
    zero_point: int = 0
    index: int = -1

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0

    def dequantize(self, values: np.ndarray) -> np.ndarray:
        """Real values of ``values`` (float32); unquantised tensors are only cast."""
        real: np.ndarray = values.astype(np.float32, copy=False)
        if self.quantized:
            real = (real - np.float32(self.zero_point)) * np.float32(self.scale)
        return real

    def quantize(self, real: float) -> float:
        """``real`` in this tensor's quantised domain (unrounded), for thresholding without dequantising."""
        if not self.quantized:
            return real
        return real / self.scale + self.zero_point


def one_frame(spec: TensorSpec) -> TensorSpec:
    """``spec`` with a batch of one: what one frame's slice of a batched tensor looks like."""
    if not spec.shape or spec.shape[0] == 1:
        return spec
    return replace(spec, shape=(1, *spec.shape[1:]))
