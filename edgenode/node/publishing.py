"""What the node publishes, on which topic, in which order; semantic masks on background workers.

Per frame (the EdgeFirst 2.7 order, with 2.8's output topic): the semantic mask is handed to a
background worker (which publishes ``--mask-topic``, then hands it to the compressor for
``--mask-compressed-topic``), then Detect, the Foxglove annotations, Model, and ModelInfo
(every frame). An empty topic disables its publication. :class:`Publishers` are one camera
stream's topics (declared at start, for the heartbeat too); :meth:`Publishers.for_model` binds
them to the loaded model's fixed facts once, giving the :class:`FramePublisher` the post stage calls.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import zstandard
from numpy.typing import NDArray

from edgenode.config import MaskSettings, Topics, VisualSettings
from edgenode.core.annotations import boxes_and_annotations_cdr, frame_annotations_cdr, loading_annotations
from edgenode.core.ingest import FrameRef
from edgenode.core.model_description import ModelDescription
from edgenode.core.outbound import (
    NO_BOXES,
    FrameResult,
    ModelInfoTemplate,
    box_sequence,
    detect_cdr,
    empty_detect,
    empty_mask,
    instance_masks,
    mask_cdr,
    model_cdr,
)
from edgenode.core.pixels import FrameLayout
from edgenode.core.semantic_masks import compressed, mask_message, slice_classes
from edgenode.messages import Detect, Mask, Model, ModelInfo, encode, schema_name
from edgenode.node.background import NewestWorker
from edgenode.node.bus import Bus, Outlet

ANNOTATIONS_SCHEMA = "foxglove_msgs/msg/ImageAnnotations"


class StreamSize:
    """The camera stream's size in pixels, which annotations are drawn in: the size CameraInfo gives once
    one has come, else each frame's own. Set on the event loop, read on the post thread (one tuple, swapped whole)."""

    def __init__(self) -> None:
        self.known: tuple[int, int] | None = None

    def update(self, width: int, height: int) -> None:
        """The stream's size from a CameraInfo (a zero size is not one)."""
        if width > 0 and height > 0:
            self.known = (width, height)

    def of(self, layout: FrameLayout) -> tuple[float, float]:
        """Width and height for a frame laid out as ``layout``."""
        width, height = self.known or (layout.width, layout.height)
        return float(width), float(height)


class Publishers:
    """One camera stream's publications and mask workers; each method is called from one thread at a time."""

    def __init__(self, bus: Bus, topics: Topics, mask: MaskSettings, visual: VisualSettings, *, size: StreamSize,
                 model_path: str) -> None:
        def declare(key: str, schema: str) -> Outlet | None:
            return bus.publication(key, schema) if key else None

        self.size = size
        self.model_path = model_path
        self.detect = declare(topics.detect, schema_name(Detect))
        self.info = declare(topics.info, schema_name(ModelInfo))
        self.mask = declare(topics.mask, schema_name(Mask))
        self.mask_compressed = declare(topics.mask_compressed, schema_name(Mask)) if mask.compression else None
        self.output = declare(topics.output, schema_name(Model))
        self.visual = declare(topics.visual, ANNOTATIONS_SCHEMA) if visual.enabled else None
        self.label_mode = visual.labels
        self.mask_classes = mask.classes
        self._loading = ModelInfoTemplate.loading()
        self._compressor_level = mask.compression_level
        self._compress_worker: NewestWorker[Mask] | None = None
        if self.mask_compressed is not None:
            self._compress_worker = NewestWorker("mask compression", self._publish_compressed)
        self._mask_worker: NewestWorker[NDArray[np.uint8]] | None = None
        if self.mask is not None or self._compress_worker is not None:
            self._mask_worker = NewestWorker("mask", self._publish_mask)
        self._compressor: Any = None

    # -- background workers ------------------------------------------------------------------
    def _publish_mask(self, mask: NDArray[np.uint8]) -> None:
        message = mask_message(slice_classes(mask, self.mask_classes))
        if self.mask is not None:
            self.mask.put(mask_cdr(message))
        if self._compress_worker is not None:
            self._compress_worker.submit(message)

    def _publish_compressed(self, message: Mask) -> None:
        if self._compressor is None:  # zstd compressors are not thread-safe: one per worker thread
            self._compressor = zstandard.ZstdCompressor(level=self._compressor_level)
        packed = compressed(message, self._compressor)
        assert self.mask_compressed is not None
        self.mask_compressed.put(mask_cdr(packed))

    # -- per frame ---------------------------------------------------------------------------
    def heartbeat(self, frame: FrameRef) -> None:
        """While the model loads: an empty Mask and Detect, the loading ModelInfo and annotation."""
        header = frame.header
        if self.mask is not None:
            self.mask.put(encode(empty_mask()))
        if self.detect is not None:
            self.detect.put(encode(empty_detect(header)))
        if self.info is not None:
            self.info.put(self._loading.encode_at(header.stamp))
        if self.visual is not None:
            width, height = self.size.of(frame.layout)
            self.visual.put(encode(loading_annotations(header.stamp, self.model_path, width, height)))

    def for_model(self, description: ModelDescription, *, status: str) -> FramePublisher:
        """These publications bound to a loaded model (``status``: the text its annotations carry)."""
        return FramePublisher(self, description, status)

    def mask_work(self, mask: NDArray[np.uint8]) -> None:
        """Hand a semantic mask to the background workers (the newest only)."""
        if self._mask_worker is not None:
            self._mask_worker.submit(mask)

    def counters(self) -> dict[str, int]:
        """Messages sent per topic, mask work dropped and failed (for the stats log)."""
        sent = {f"sent_{name}": pub.sent for name, pub in (
            ("detect", self.detect), ("info", self.info), ("mask", self.mask),
            ("mask_compressed", self.mask_compressed), ("output", self.output), ("visual", self.visual))
            if pub is not None}
        for name, worker in (("mask", self._mask_worker), ("mask_compressed", self._compress_worker)):
            if worker is not None:
                sent[f"{name}_dropped"] = worker.dropped
                sent[f"{name}_failed"] = worker.failed
        return sent

    def close(self) -> None:
        """Let mask work in hand finish, then stop the workers (publishers close with the bus)."""
        for worker in (self._mask_worker, self._compress_worker):
            if worker is not None:
                worker.close()


class FramePublisher:
    """Publishes each inferred frame in the reference order, with the model's fixed facts bound once:
    whether it has boxes, its ModelInfo, the annotation status."""

    def __init__(self, publishers: Publishers, description: ModelDescription, status: str) -> None:
        self.publishers = publishers
        self.has_boxes = "Detection" in description.model_types
        self.status = status
        self.info = ModelInfoTemplate.for_model(
            input_spec=description.inputs[0], output_spec=description.outputs[0], labels=description.labels,
            model_types=description.model_types, model_format=description.model_format, model_name=description.name)

    def publish(self, result: FrameResult, layout: FrameLayout) -> None:
        """Publish one frame's results (``layout``: the camera frame's, for the annotations' size)."""
        out = self.publishers
        detections = result.detections
        if detections.semantic_mask is not None:
            out.mask_work(detections.semantic_mask)
        has_boxes = self.has_boxes
        want_boxes = has_boxes and (out.detect is not None or out.output is not None)
        box_cdr, visual_cdr = NO_BOXES, b""
        if has_boxes and out.visual is not None:
            width, height = out.size.of(layout)
            if want_boxes:  # one pass over the boxes for both
                box_cdr, visual_cdr = boxes_and_annotations_cdr(result, status=self.status, label_mode=out.label_mode,
                                                                width=width, height=height)
            else:
                visual_cdr = frame_annotations_cdr(result, status=self.status, label_mode=out.label_mode,
                                                   width=width, height=height)
        elif want_boxes:
            box_cdr = box_sequence(result)
        if has_boxes and out.detect is not None:
            out.detect.put(detect_cdr(result, box_cdr))
        if has_boxes and out.visual is not None:
            out.visual.put(visual_cdr)
        if out.output is not None:
            masks = instance_masks(detections)
            if detections.semantic_mask is not None:
                masks.append(mask_message(detections.semantic_mask))
            out.output.put(model_cdr(result, masks, box_cdr))
        if out.info is not None:
            out.info.put(self.info.encode_at(result.header.stamp))
