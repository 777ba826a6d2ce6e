"""Where the camera frame lands inside the model input, and mapping boxes back to the frame.

Stretch (the EdgeFirst Model Node's behaviour) fills the whole input, so model-normalised
boxes already are frame-normalised. Letterbox keeps the aspect ratio, centres the frame and
pads the rest; its boxes are shifted and scaled back. Either way they are clipped to the frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

LETTERBOX_PAD = 114


@dataclass(frozen=True)
class InputGeometry:
    """The frame's content rectangle inside a ``input_width`` x ``input_height`` model input, in pixels."""

    frame_width: int
    frame_height: int
    input_width: int
    input_height: int
    left: int
    top: int
    width: int
    height: int

    @classmethod
    def stretch(cls, frame_width: int, frame_height: int, input_width: int, input_height: int) -> InputGeometry:
        """The whole frame resized to the whole input."""
        return cls(frame_width, frame_height, input_width, input_height, 0, 0, input_width, input_height)

    @classmethod
    def letterbox(cls, frame_width: int, frame_height: int, input_width: int, input_height: int) -> InputGeometry:
        """The frame scaled to fit, aspect kept, centred (odd padding goes right/bottom)."""
        scale = min(input_width / frame_width, input_height / frame_height)
        width = min(input_width, max(1, round(frame_width * scale)))
        height = min(input_height, max(1, round(frame_height * scale)))
        return cls(frame_width, frame_height, input_width, input_height,
                   (input_width - width) // 2, (input_height - height) // 2, width, height)

    @property
    def is_identity(self) -> bool:
        """True when model-normalised coordinates already are frame-normalised."""
        return (self.left, self.top, self.width, self.height) == (0, 0, self.input_width, self.input_height)

    @property
    def content_normalized(self) -> tuple[float, float, float, float]:
        """The content rectangle as normalised x0, y0, x1, y1 of the model input."""
        return (self.left / self.input_width, self.top / self.input_height,
                (self.left + self.width) / self.input_width, (self.top + self.height) / self.input_height)

    def boxes_to_frame(self, boxes: NDArray[np.float32]) -> NDArray[np.float32]:
        """Map ``(N, 4)`` model-normalised x1, y1, x2, y2 boxes to frame-normalised ones, clipped to 0..1.

        Decoders give boxes a little past the input's edge (a box centred near it); published
        coordinates stay inside the frame. Identity geometry returns ``boxes`` itself when they
        are inside already (no copy); otherwise a new float32 array.
        """
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"boxes must be (N, 4), got {boxes.shape}")
        if self.is_identity:
            if not boxes.size or (boxes.min() >= 0.0 and boxes.max() <= 1.0):
                return boxes
            return np.clip(boxes, 0.0, 1.0).astype(np.float32, copy=False)
        scale = np.array([self.input_width / self.width, self.input_height / self.height] * 2, np.float32)
        shift = np.array([self.left / self.width, self.top / self.height] * 2, np.float32)
        mapped = boxes.astype(np.float32) * scale - shift
        np.clip(mapped, 0.0, 1.0, out=mapped)
        return mapped
