"""The decoder's result for one frame, shared by decoding, tracking and publishing."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class Detections:
    """Boxes of one frame after NMS.

    ``boxes`` are x1, y1, x2, y2 normalised 0..1 to the model input; ``classes`` are class
    indices. ``instance_masks`` (instance segmentation) holds one uint8 0..255 mask per box over
    that box's region of the prototype grid; ``semantic_mask`` (semantic segmentation) is
    uint8 H x W x classes.
    """

    boxes: NDArray[np.float32]
    scores: NDArray[np.float32]
    classes: NDArray[np.int32]
    instance_masks: tuple[NDArray[np.uint8], ...] | None = None
    semantic_mask: NDArray[np.uint8] | None = field(default=None)

    def __post_init__(self) -> None:
        count = len(self.scores)
        if self.boxes.shape != (count, 4) or self.classes.shape != (count,):
            raise ValueError(
                f"inconsistent detections: boxes {self.boxes.shape}, scores {self.scores.shape}, "
                f"classes {self.classes.shape}"
            )
        if self.instance_masks is not None and len(self.instance_masks) != count:
            raise ValueError(f"{len(self.instance_masks)} instance masks for {count} boxes")

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls) -> Detections:
        """No boxes."""
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32))

    def select(self, keep: NDArray[np.bool_] | NDArray[np.intp]) -> Detections:
        """The subset at ``keep`` (a boolean mask or index array), masks kept aligned with boxes."""
        indices = np.flatnonzero(keep) if keep.dtype == np.bool_ else np.asarray(keep, np.intp)
        masks = None if self.instance_masks is None else tuple(self.instance_masks[i] for i in indices)
        return Detections(self.boxes[indices], self.scores[indices], self.classes[indices], masks,
                          self.semantic_mask)
