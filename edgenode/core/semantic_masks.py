"""Semantic segmentation masks as EdgeFirst publishes them: HWC bytes, optional channel slice, zstd."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import zstandard
from numpy.typing import NDArray

from edgenode.messages import Mask


def slice_classes(mask: NDArray[np.uint8], classes: Sequence[int]) -> NDArray[np.uint8]:
    """Keep the listed class channels of an H x W x C mask, in that order; an index >= C gives zeros."""
    if not classes:
        return mask
    height, width, channels = mask.shape
    out = np.zeros((height, width, len(classes)), np.uint8)
    for position, index in enumerate(classes):
        if index < channels:
            out[:, :, position] = mask[:, :, index]
    return out


def mask_classes_problem(classes: Sequence[int], channels: int | None) -> str | None:
    """What is wrong with ``--mask-classes`` for a model whose semantic mask has ``channels`` class
    channels (None: the model has no semantic mask), or None when nothing is."""
    if not classes:
        return None
    if channels is None:
        return f"--mask-classes {', '.join(map(str, classes))}: this model has no semantic mask; nothing to select"
    beyond = [index for index in classes if index >= channels]
    if not beyond:
        return None
    return (f"--mask-classes {', '.join(map(str, beyond))}: the model's semantic mask has {channels} class channels "
            f"(0..{channels - 1}); those channels are published as zeros")


def mask_message(mask: NDArray[np.uint8]) -> Mask:
    """Mask with all class channels interleaved (HWC) and length 1, as the reference sends it."""
    height, width = int(mask.shape[0]), int(mask.shape[1])
    return Mask(height, width, 1, "", np.ascontiguousarray(mask).tobytes(), False)


def compressed(message: Mask, compressor: zstandard.ZstdCompressor) -> Mask:
    """The same Mask with its bytes zstd-compressed (one frame with its content size) and encoding "zstd"."""
    return Mask(message.height, message.width, message.length, "zstd", compressor.compress(message.mask),
                message.boxed)
