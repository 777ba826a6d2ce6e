"""A deterministic synthetic scene: coloured rectangles bouncing around and crossing one another.

Positions are a closed-form function of the frame index (a triangle wave per axis), so any
frame, and its ground-truth boxes, can be produced on its own, from the seed alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

PALETTE: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("red", (220, 40, 40)), ("green", (40, 200, 60)), ("blue", (40, 80, 230)), ("yellow", (235, 220, 40)),
    ("magenta", (210, 50, 200)), ("cyan", (40, 210, 220)), ("orange", (245, 140, 30)), ("white", (245, 245, 245)),
)


@dataclass(frozen=True)
class SceneObject:
    """One object in one frame: ``box`` is x1, y1, x2, y2 in pixels (x2, y2 exclusive)."""

    id: int
    label: str
    colour: tuple[int, int, int]
    box: tuple[int, int, int, int]

    def normalized(self, width: int, height: int) -> list[float]:
        x1, y1, x2, y2 = self.box
        return [x1 / width, y1 / height, x2 / width, y2 / height]


def _bounce(start: float, speed: float, span: float, index: int) -> float:
    """Position at frame ``index`` of a point moving at ``speed`` that reflects off 0 and ``span``."""
    if span <= 0:
        return 0.0
    travelled = (start + speed * index) % (2 * span)
    return travelled if travelled <= span else 2 * span - travelled


class SyntheticScene:
    """``count`` rectangles over a gradient background, sized for a ``width`` x ``height`` frame."""

    def __init__(self, width: int, height: int, *, count: int = 4, seed: int = 0, align: int = 2) -> None:
        if not 1 <= count <= len(PALETTE):
            raise ValueError(f"object count must be 1..{len(PALETTE)}, got {count}")
        if width < 16 or height < 16:
            raise ValueError(f"scene needs at least 16x16 pixels, got {width}x{height}")
        self.width, self.height, self.align = width, height, align
        rng = np.random.default_rng(seed)
        self._motion = []
        for _ in range(count):
            w = int(width * rng.uniform(0.08, 0.2))
            h = int(height * rng.uniform(0.1, 0.25))
            speed = min(width, height) * rng.uniform(0.004, 0.015)
            angle = rng.uniform(0, 2 * np.pi)
            self._motion.append((w, h, rng.uniform(0, width - w), rng.uniform(0, height - h),
                                 speed * np.cos(angle) * width / height, speed * np.sin(angle)))

    def background(self) -> NDArray[np.uint8]:
        """The static background: soft gradients with a faint grid."""
        y, x = np.mgrid[0:self.height, 0:self.width].astype(np.float32)
        image = np.stack([60 + 50 * x / self.width, 70 + 40 * y / self.height,
                          90 + 30 * (x + y) / (self.width + self.height)], axis=-1)
        grid = ((x.astype(np.int32) // 40 + y.astype(np.int32) // 40) % 2) * 12.0
        background: NDArray[np.uint8] = np.clip(image + grid[..., None], 0, 255).astype(np.uint8)
        return background

    def objects(self, index: int) -> list[SceneObject]:
        """The objects of frame ``index``, back to front."""
        found = []
        a = self.align
        for number, (w, h, x0, y0, vx, vy) in enumerate(self._motion):
            x = int(_bounce(x0, vx, self.width - w, index)) // a * a
            y = int(_bounce(y0, vy, self.height - h, index)) // a * a
            x2 = min(self.width, x + w) // a * a
            y2 = min(self.height, y + h) // a * a
            label, colour = PALETTE[number]
            found.append(SceneObject(number, label, colour, (x, y, x2, y2)))
        return found

    def render(self, index: int) -> NDArray[np.uint8]:
        """Frame ``index`` as RGB (for image-based checks; the simulator draws in the encoded frame)."""
        image = self.background()
        for item in self.objects(index):
            x1, y1, x2, y2 = item.box
            image[y1:y2, x1:x2] = item.colour
        return image
