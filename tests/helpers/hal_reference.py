"""Helpers comparing edgenode's decoders with ``edgefirst_hal.Decoder`` (the native reference)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgenode.core.decoder_factory import build_decoder
from edgenode.core.detections import Detections
from edgenode.core.model_config import parse_config_text
from edgenode.core.tensors import TensorSpec

IMAGE = TensorSpec("images", (1, 640, 640, 3), np.dtype(np.uint8), index=0)


@dataclass
class Output:
    """One output: its array, role for HAL, quantisation and optional HAL dshape names."""

    array: np.ndarray
    role: str
    scale: float = 0.0
    zero_point: int = 0
    dims: tuple[str, ...] = ()
    decoder: str = "ultralytics"
    anchors: tuple[tuple[float, float], ...] = ()


def hal_tensor(array: np.ndarray) -> object:
    import edgefirst_hal as hal

    tensor = hal.Tensor(list(array.shape), dtype=str(array.dtype), mem=hal.TensorMemory.MEM)
    tensor.from_numpy(np.ascontiguousarray(array))
    return tensor


def hal_decode(outputs: Sequence[Output], threshold: float, iou: float, aware: bool = False, *,
               version: str = "yolov8", max_boxes: int = 100) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    """HAL's decode of the outputs, as numpy arrays (classes as int32)."""
    import edgefirst_hal as hal

    dim_names = {"batch": hal.DimName.Batch, "num_boxes": hal.DimName.NumBoxes,
                 "num_features": hal.DimName.NumFeatures}
    made = []
    for out in outputs:
        decoder = hal.DecoderType.ModelPack if out.decoder == "modelpack" else hal.DecoderType.Ultralytics
        factory = getattr(hal.Output, out.role)
        if out.dims:
            spec = factory(dshape=[(dim_names[n], s) for n, s in zip(out.dims, out.array.shape, strict=True)],
                           decoder=decoder)
        else:
            spec = factory(shape=list(out.array.shape), decoder=decoder)
        if out.scale:
            spec = spec.with_quantization(out.scale, out.zero_point)
        if out.anchors:
            spec = spec.with_anchors(list(out.anchors))
        made.append(spec)
    versions = {"yolov8": hal.DecoderVersion.Yolov8, "yolo26": hal.DecoderVersion.Yolo26}
    decoder = hal.Decoder.new_from_outputs(made, score_threshold=threshold, iou_threshold=iou,
                                           nms=hal.Nms.ClassAware if aware else hal.Nms.ClassAgnostic,
                                           decoder_version=versions.get(version))
    boxes, scores, classes, masks = decoder.decode([hal_tensor(o.array) for o in outputs], max_boxes=max_boxes)
    return boxes, scores, classes.astype(np.int32), masks


def ours(outputs: Sequence[Output], threshold: float, iou: float, aware: bool = False, *,
         config: str | None = None, max_boxes: int = 100) -> Detections:
    specs = [TensorSpec(f"o{i}", o.array.shape, o.array.dtype, o.scale, o.zero_point, i) for i, o in enumerate(outputs)]
    decoder = build_decoder(parse_config_text(config, "test") if config else None, [IMAGE], specs, threshold=threshold,
                            iou=iou, max_boxes=max_boxes, nms="aware" if aware else "agnostic")
    return decoder.decode([o.array for o in outputs])


def assert_same(found: Detections, reference: tuple[np.ndarray, np.ndarray, np.ndarray, list], box_atol: float = 1e-5,
                score_rtol: float = 1e-6, mask_atol: int = 0) -> None:
    """Same boxes (within float tolerance), scores and classes, in the same order; masks too when given."""
    boxes, scores, classes, masks = reference
    assert len(found) == len(scores), f"{len(found)} boxes, HAL has {len(scores)}"
    np.testing.assert_array_equal(found.classes, classes)
    np.testing.assert_allclose(found.scores, scores, rtol=score_rtol, atol=1e-7)
    np.testing.assert_allclose(found.boxes, boxes.reshape(-1, 4), atol=box_atol)
    if masks and found.instance_masks is not None:
        for mine, reference_mask in zip(found.instance_masks, masks, strict=True):
            theirs = reference_mask[..., 0] if reference_mask.ndim == 3 else reference_mask
            assert mine.shape == theirs.shape
            assert int(np.abs(mine.astype(int) - theirs.astype(int)).max(initial=0)) <= mask_atol
