"""Limited-range BT.709 YUV, the convention of HD camera YUV and of G2D's ``G2D_YUV_BT_709`` mode.

Y is 16..235 and U, V are 16..240 centred on 128; Kr = 0.2126, Kb = 0.0722. The CPU
preprocessing uses :data:`YUV_TO_RGB`; the camera simulator encodes with :func:`encode_rgb`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from edgenode.core.pixels import BGRA, GREY, NV12, RGB, RGBA, UYVY, YUYV, PixelFormat

KR, KB = 0.2126, 0.0722
KG = 1.0 - KR - KB
Y_SCALE = 255.0 / 219.0
C_SCALE = 255.0 / 224.0

# RGB (0..255) = YUV_TO_RGB @ (Y - 16, U - 128, V - 128)
YUV_TO_RGB = np.array([
    [Y_SCALE, 0.0, 2 * (1 - KR) * C_SCALE],
    [Y_SCALE, -2 * (1 - KB) * KB / KG * C_SCALE, -2 * (1 - KR) * KR / KG * C_SCALE],
    [Y_SCALE, 2 * (1 - KB) * C_SCALE, 0.0],
])


def rgb_to_yuv444(rgb: NDArray[np.uint8]) -> NDArray[np.float64]:
    """Limited-range BT.709 Y, U, V (float, unrounded) of an ``(H, W, 3)`` RGB image."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    luma = KR * r + KG * g + KB * b
    y = 16 + luma * (219 / 255)
    u = 128 + (b - luma) / (2 * (1 - KB)) * (224 / 255)
    v = 128 + (r - luma) / (2 * (1 - KR)) * (224 / 255)
    return np.stack([y, u, v], axis=-1)


def _u8(values: NDArray[np.float64]) -> NDArray[np.uint8]:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def encode_rgb(rgb: NDArray[np.uint8], fmt: PixelFormat) -> NDArray[np.uint8]:
    """Dense bytes of ``rgb`` (``(H, W, 3)`` uint8) in ``fmt``, shaped ``(rows, row_bytes)``.

    YUV chroma is the mean of the pixels sharing it (2 for 4:2:2, 2x2 for NV12).
    """
    height, width = rgb.shape[:2]
    if fmt is RGB:
        return np.ascontiguousarray(rgb).reshape(height, width * 3)
    if fmt in (RGBA, BGRA):
        out = np.full((height, width, 4), 255, np.uint8)
        out[..., :3] = rgb if fmt is RGBA else rgb[..., ::-1]
        return out.reshape(height, width * 4)
    if fmt is GREY:
        return _u8(rgb.astype(np.float64) @ np.array([KR, KG, KB]))
    yuv = rgb_to_yuv444(rgb)
    y = _u8(yuv[..., 0])
    if fmt is NV12:
        uv = yuv[..., 1:].reshape(height // 2, 2, width // 2, 2, 2).mean(axis=(1, 3))
        return np.concatenate([y, _u8(uv).reshape(height // 2, width)], axis=0)
    chroma = _u8(yuv[..., 1:].reshape(height, width // 2, 2, 2).mean(axis=2))  # (H, W/2, [U, V])
    packed = np.empty((height, width // 2, 4), np.uint8)
    order = (0, 1, 2, 3) if fmt is YUYV else (1, 0, 3, 2)  # byte positions of Y0, U, Y1, V
    packed[..., order[0]] = y[:, 0::2]
    packed[..., order[1]] = chroma[..., 0]
    packed[..., order[2]] = y[:, 1::2]
    packed[..., order[3]] = chroma[..., 1]
    if fmt not in (YUYV, UYVY):
        raise ValueError(f"cannot encode {fmt.name}")
    return packed.reshape(height, width * 2)
