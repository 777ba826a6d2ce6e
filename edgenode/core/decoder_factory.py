"""Build the decoder for a model from its config, output specs and the decode parameters (plain values:
the node's composition root reads them from its config)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from edgenode.core.decoding import CANDIDATE_CAP, DecodeParams, Decoder
from edgenode.core.model_config import ModelConfig, ModelError
from edgenode.core.model_description import label_for
from edgenode.core.model_layout import (
    ANCHOR_GRID_DET,
    ANCHOR_GRID_SEGDET,
    MODELPACK_DET,
    MODELPACK_SEG,
    MODELPACK_SEGDET,
    YOLO_DET,
    YOLO_E2E_DET,
    YOLO_E2E_SEGDET,
    YOLO_SEGDET,
    YOLO_SPLIT_DET,
    YOLO_SPLIT_E2E_DET,
    YOLO_SPLIT_E2E_SEGDET,
    YOLO_SPLIT_SEGDET,
    Layout,
    resolve_layout,
)
from edgenode.core.modelpack import AnchorGridDecoder, ModelPackDecoder
from edgenode.core.tensors import TensorSpec
from edgenode.core.yolo import EndToEndDecoder, YoloDecoder

_DECODERS: dict[str, Callable[[Layout, DecodeParams], Decoder]] = {
    YOLO_DET: YoloDecoder, YOLO_SEGDET: YoloDecoder, YOLO_SPLIT_DET: YoloDecoder, YOLO_SPLIT_SEGDET: YoloDecoder,
    YOLO_E2E_DET: EndToEndDecoder, YOLO_E2E_SEGDET: EndToEndDecoder, YOLO_SPLIT_E2E_DET: EndToEndDecoder,
    YOLO_SPLIT_E2E_SEGDET: EndToEndDecoder, ANCHOR_GRID_DET: AnchorGridDecoder, ANCHOR_GRID_SEGDET: AnchorGridDecoder,
    MODELPACK_DET: ModelPackDecoder, MODELPACK_SEG: ModelPackDecoder, MODELPACK_SEGDET: ModelPackDecoder,
}


def decode_params(layout: Layout, *, threshold: float, iou: float, max_boxes: int, nms: str = "",
                  classes: Sequence[str] = (), label_offset: int = 0, labels: Sequence[str] = (),
                  candidate_cap: int = CANDIDATE_CAP, warn: Callable[[str], None] | None = None) -> DecodeParams:
    """Resolve the parameters against the model: NMS mode (``nms`` beats the config's ``nms:``, which
    beats class-agnostic) and ``classes`` names to class indices (via ``labels`` and ``label_offset``).

    A class is named by its label, or by its index where the labels end (as ``label_for`` names it),
    and only up to the model's class count (any index, for heads that give class ids and no count).
    Names that are not classes of the model are said through ``warn`` and left out; when none is
    left, nothing could ever be published: ModelError.
    """
    mode = nms or layout.nms or "agnostic"
    indices = None
    if classes:
        count = max(layout.num_classes, len(labels) - label_offset, 0)
        names = {label_for(labels, index, label_offset): index for index in range(count)}
        if not layout.num_classes:  # end-to-end heads carry class ids, not a class axis: any index beyond the labels
            names.update({name: int(name) - label_offset for name in classes
                          if name not in names and name.isdigit() and int(name) >= len(labels)})
        unknown = [name for name in classes if name not in names]
        known = [name for name in classes if name in names]
        listed = ", ".join(list(names)[:20]) + (", ..." if len(names) > 20 else "")
        if not known:
            raise ModelError(f"--classes {', '.join(unknown)}: not a label of this model (labels: {listed or 'none'})")
        if unknown and warn is not None:
            warn(f"--classes {', '.join(unknown)}: not a class of this model (labels: {listed}); "
                 f"keeping only {', '.join(known)}")
        indices = tuple(sorted({names[name] for name in known}))
    return DecodeParams(threshold, iou, max_boxes, mode == "aware", indices, candidate_cap)


def decoder_for(layout: Layout, params: DecodeParams) -> Decoder:
    """The decoder implementing ``layout``'s kind."""
    return _DECODERS[layout.kind](layout, params)


def build_decoder(config: ModelConfig | None, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec], *,
                  threshold: float, iou: float, max_boxes: int = 100, nms: str = "", classes: Sequence[str] = (),
                  label_offset: int = 0, family: str = "", ssd: bool = False, labels: Sequence[str] = (),
                  end_to_end: bool | None = None) -> Decoder:
    """Resolve the layout (config, else shapes; ``family`` = ``--decoder-model``, ``ssd`` = ``--ssd-model``)
    and build its decoder. Raises :class:`ModelError` with a one-line fix for unusable models."""
    layout = resolve_layout(config, inputs, outputs, family=family, ssd=ssd, end_to_end=end_to_end)
    return decoder_for(layout, decode_params(layout, threshold=threshold, iou=iou, max_boxes=max_boxes, nms=nms,
                                             classes=classes, label_offset=label_offset, labels=labels))


__all__ = ["build_decoder", "decode_params", "decoder_for"]
