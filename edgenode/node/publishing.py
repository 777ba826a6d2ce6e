"""What the node publishes, on which topic, in which order; semantic masks on background workers.

Per frame (the EdgeFirst 2.7 order, with 2.8's output topic): the semantic mask is handed to a
background worker (which publishes ``--mask-topic``, then hands it to the compressor for
``--mask-compressed-topic``), then Detect, the Foxglove annotations, Model, and ModelInfo
(every frame). An empty topic disables its publication.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import zstandard
from numpy.typing import NDArray

from edgenode.adapters.zenoh_bus import Publication, ZenohBus
from edgenode.config import NodeConfig
from edgenode.core.annotations import boxes_and_annotations_cdr, frame_annotations_cdr, loading_annotations
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
from edgenode.core.semantic_masks import compressed, mask_message, slice_classes
from edgenode.messages import (
    Detect,
    Header,
    Mask,
    Model,
    ModelInfo,
    encode,
    schema_name,
)
from edgenode.node.background import NewestWorker

ANNOTATIONS_SCHEMA = "foxglove_msgs/msg/ImageAnnotations"


@dataclass(frozen=True)
class StreamSize:
    """Pixels per normalised unit for annotations: the stream resolution, or 1 x 1 when unknown."""

    width: float = 1.0
    height: float = 1.0


class Publishers:
    """The node's publications and mask workers; safe to call from one thread at a time per method."""

    def __init__(self, bus: ZenohBus, config: NodeConfig) -> None:
        topics = config.topics

        def declare(key: str, schema: str) -> Publication | None:
            return bus.publication(key, schema) if key else None

        self.detect = declare(topics.detect, schema_name(Detect))
        self.info = declare(topics.info, schema_name(ModelInfo))
        self.mask = declare(topics.mask, schema_name(Mask))
        self.mask_compressed = (declare(topics.mask_compressed, schema_name(Mask))
                                if config.mask.compression else None)
        self.output = declare(topics.output, schema_name(Model))
        self.visual = declare(topics.visual, ANNOTATIONS_SCHEMA) if config.visual.enabled else None
        self.label_mode = config.visual.labels
        self.mask_classes = config.mask.classes
        self._compressor_level = config.mask.compression_level
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
    def frame(self, result: FrameResult, info: ModelInfoTemplate, *, has_boxes: bool, status: str,
              size: StreamSize) -> None:
        """Publish one frame's results in the reference order."""
        detections = result.detections
        if detections.semantic_mask is not None and self._mask_worker is not None:
            self._mask_worker.submit(detections.semantic_mask)
        box_cdr, visual_cdr = NO_BOXES, b""
        if has_boxes and self.visual is not None and (self.detect or self.output):  # one pass over the boxes
            box_cdr, visual_cdr = boxes_and_annotations_cdr(result, status=status, label_mode=self.label_mode,
                                                            width=size.width, height=size.height)
        elif has_boxes and self.visual is not None:
            visual_cdr = frame_annotations_cdr(result, status=status, label_mode=self.label_mode, width=size.width,
                                               height=size.height)
        elif has_boxes and (self.detect or self.output):
            box_cdr = box_sequence(result)
        if has_boxes and self.detect is not None:
            self.detect.put(detect_cdr(result, box_cdr))
        if has_boxes and self.visual is not None:
            self.visual.put(visual_cdr)
        if self.output is not None:
            masks = instance_masks(detections)
            if detections.semantic_mask is not None:
                masks.append(mask_message(detections.semantic_mask))
            self.output.put(model_cdr(result, masks, box_cdr))
        if self.info is not None:
            self.info.put(info.encode_at(result.header.stamp))

    def heartbeat(self, header: Header, info: ModelInfoTemplate, model_path: str, size: StreamSize) -> None:
        """While the model loads: an empty Mask and Detect, the loading ModelInfo and annotation."""
        if self.mask is not None:
            self.mask.put(encode(empty_mask()))
        if self.detect is not None:
            self.detect.put(encode(empty_detect(header)))
        if self.info is not None:
            self.info.put(info.encode_at(header.stamp))
        if self.visual is not None:
            self.visual.put(encode(loading_annotations(header.stamp, model_path, size.width, size.height)))

    def counters(self) -> dict[str, int]:
        """Messages sent per topic and mask work dropped (for the stats log)."""
        sent = {f"sent_{name}": pub.sent for name, pub in (
            ("detect", self.detect), ("info", self.info), ("mask", self.mask),
            ("mask_compressed", self.mask_compressed), ("output", self.output), ("visual", self.visual))
            if pub is not None}
        for name, worker in (("mask", self._mask_worker), ("mask_compressed", self._compress_worker)):
            if worker is not None:
                sent[f"{name}_dropped"] = worker.dropped
        return sent

    def close(self) -> None:
        """Let mask work in hand finish, then stop the workers (publishers close with the bus)."""
        for worker in (self._mask_worker, self._compress_worker):
            if worker is not None:
                worker.close()
