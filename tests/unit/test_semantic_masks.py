"""Semantic masks: channel slicing, the message layout and zstd compression."""

from __future__ import annotations

import numpy as np
import zstandard

import edgenode.messages as m
from edgenode.core.semantic_masks import compressed, mask_message, slice_classes


def sample() -> np.ndarray:
    return np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)


def test_slice_keeps_listed_channels_in_order_and_zero_fills_unknown() -> None:
    out = slice_classes(sample(), [3, 0, 9])
    assert out.shape == (2, 3, 3)
    assert np.array_equal(out[:, :, 0], sample()[:, :, 3])
    assert np.array_equal(out[:, :, 1], sample()[:, :, 0])
    assert not out[:, :, 2].any()
    assert slice_classes(sample(), []) is not None and np.array_equal(slice_classes(sample(), []), sample())


def test_mask_message_is_hwc_with_length_one() -> None:
    message = mask_message(sample())
    assert (message.height, message.width, message.length, message.encoding, message.boxed) == (2, 3, 1, "", False)
    assert message.mask == sample().tobytes()


def test_compressed_decompresses_to_the_same_bytes() -> None:
    message = mask_message(np.tile(sample(), (50, 50, 1)))
    packed = compressed(message, zstandard.ZstdCompressor(level=1))
    assert packed.encoding == "zstd" and len(packed.mask) < len(message.mask)
    assert zstandard.ZstdDecompressor().decompress(packed.mask) == message.mask
    decoded = m.decode(m.Mask, m.encode(packed))
    assert (decoded.height, decoded.width) == (100, 150)
