"""Build the node's outbound messages (Detect, Model, ModelInfo, heartbeat) from one frame's results.

Follows the EdgeFirst Model Node's filling rules (reference sheet §2-3): boxes as centre/size
normalised to the full frame, labels with an index fallback, timings as durations, tracks as
uuid/lifetime/created. One deliberate fix: an untracked box's ``created`` is the frame stamp
(the 2.8 Model rule) rather than the output duration the 2.7 Detect put there.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edgenode.core.detections import Detections
from edgenode.core.tensors import TensorSpec
from edgenode.messages import Box, Detect, Duration, Header, Mask, Model, ModelInfo, Time, Track, encode
from edgenode.messages.edgefirst_msgs import DTYPE_TO_LEGACY_TYPE

LOADING_MODEL_NAME = "Loading Model..."
_STAMP = struct.Struct("<iI")
_STAMP_OFFSET = 4  # ModelInfo starts with its header's stamp, right after the CDR header

_DTYPE_CODES = {
    "uint8": ModelInfo.DTYPE_U8, "int8": ModelInfo.DTYPE_I8, "uint16": ModelInfo.DTYPE_U16,
    "int16": ModelInfo.DTYPE_I16, "uint32": ModelInfo.DTYPE_U32, "int32": ModelInfo.DTYPE_I32,
    "uint64": ModelInfo.DTYPE_U64, "int64": ModelInfo.DTYPE_I64, "float16": ModelInfo.DTYPE_F16,
    "float32": ModelInfo.DTYPE_F32, "float64": ModelInfo.DTYPE_F64,
}


class TrackLike(Protocol):
    """What the builders read from a tracker's per-box result."""

    @property
    def id(self) -> str: ...

    @property
    def lifetime(self) -> int: ...

    @property
    def created_ns(self) -> int: ...


@dataclass(frozen=True)
class StageTimes:
    """Nanoseconds one frame spent in each stage."""

    preprocess_ns: int = 0
    invoke_ns: int = 0
    output_ns: int = 0
    decode_ns: int = 0
    track_ns: int = 0

    @property
    def post_ns(self) -> int:
        """Decode plus tracking, what Detect reports as its output time."""
        return self.decode_ns + self.track_ns


@dataclass(frozen=True)
class FrameResult:
    """One frame's results, boxes already normalised to the full camera frame."""

    header: Header
    detections: Detections
    labels: Sequence[str]
    tracks: Sequence[TrackLike | None] | None
    times: StageTimes

    def __post_init__(self) -> None:
        if len(self.labels) != len(self.detections):
            raise ValueError(f"{len(self.labels)} labels for {len(self.detections)} boxes")
        if self.tracks is not None and len(self.tracks) != len(self.detections):
            raise ValueError(f"{len(self.tracks)} tracks for {len(self.detections)} boxes")


def dtype_code(dtype: np.dtype) -> int:
    """HAL dtype code of a numpy dtype (DTYPE_UNKNOWN when it has none)."""
    return _DTYPE_CODES.get(np.dtype(dtype).name, ModelInfo.DTYPE_UNKNOWN)


def boxes(result: FrameResult) -> list[Box]:
    """Box messages, aligned one-to-one with the detections and their tracks."""
    xyxy = result.detections.boxes.astype(np.float64)
    centres = (xyxy[:, :2] + xyxy[:, 2:]) / 2.0
    sizes = xyxy[:, 2:] - xyxy[:, :2]
    stamp = result.header.stamp
    out: list[Box] = []
    for i, score in enumerate(result.detections.scores.tolist()):
        info = result.tracks[i] if result.tracks is not None else None
        track = (Track(info.id, int(info.lifetime), Time.from_nanos(info.created_ns)) if info is not None
                 else Track("", 1, Time(stamp.sec, stamp.nanosec)))
        out.append(Box(float(centres[i, 0]), float(centres[i, 1]), float(sizes[i, 0]), float(sizes[i, 1]),
                       result.labels[i], float(score), 0.0, 0.0, track))
    return out


def detect_message(result: FrameResult, box_list: list[Box] | None = None) -> Detect:
    """Detect: the camera header, the three stage durations stuffed into Time, the boxes."""
    times = result.times
    return Detect(
        header=result.header,
        input_timestamp=Time.from_nanos(times.preprocess_ns),
        model_time=Time.from_nanos(times.invoke_ns),
        output_time=Time.from_nanos(times.post_ns),
        boxes=box_list if box_list is not None else boxes(result),
    )


def model_message(result: FrameResult, masks: Sequence[Mask], box_list: list[Box] | None = None) -> Model:
    """Model (EdgeFirst 2.8 output topic): durations, boxes and masks of one frame."""
    times = result.times
    return Model(
        header=result.header,
        input_time=Duration.from_nanos(times.preprocess_ns),
        model_time=Duration.from_nanos(times.invoke_ns),
        output_time=Duration.from_nanos(times.output_ns),
        decode_time=Duration.from_nanos(times.post_ns),
        boxes=box_list if box_list is not None else boxes(result),
        masks=list(masks),
    )


def instance_masks(detections: Detections) -> list[Mask]:
    """One boxed Mask per box (its region of the prototype grid), for Model.masks."""
    if detections.instance_masks is None:
        return []
    return [Mask(int(mask.shape[0]), int(mask.shape[1]), 1, "", np.ascontiguousarray(mask, np.uint8).tobytes(), True)
            for mask in detections.instance_masks]


class ModelInfoTemplate:
    """ModelInfo is the same every frame but for its stamp: encode once, patch 8 bytes per frame."""

    def __init__(self, message: ModelInfo) -> None:
        message.header = Header(Time(0, 0), "")
        self.message = message
        self._encoded = encode(message)

    @classmethod
    def for_model(cls, *, input_spec: TensorSpec, output_spec: TensorSpec, labels: Sequence[str], model_types: str,
                  model_format: str, model_name: str) -> ModelInfoTemplate:
        """The ModelInfo of a loaded model: input tensor 0, output tensor 0 (as the reference reports)."""
        input_dtype, output_dtype = dtype_code(input_spec.dtype), dtype_code(output_spec.dtype)
        return cls(ModelInfo(
            input_shape=[int(d) for d in input_spec.shape],
            input_type=DTYPE_TO_LEGACY_TYPE.get(input_dtype, ModelInfo.RAW),
            output_shape=[int(d) for d in output_spec.shape],
            output_type=DTYPE_TO_LEGACY_TYPE.get(output_dtype, ModelInfo.RAW),
            labels=list(labels),
            model_types=model_types,
            model_format=model_format,
            model_name=model_name,
            input_dtype=input_dtype,
            output_dtype=output_dtype,
        ))

    @classmethod
    def loading(cls) -> ModelInfoTemplate:
        """The placeholder the heartbeat sends while the model loads."""
        return cls(ModelInfo(input_shape=[0, 0, 0, 0], output_shape=[0, 0, 0, 0], model_name=LOADING_MODEL_NAME,
                             input_dtype=ModelInfo.DTYPE_UNKNOWN, output_dtype=ModelInfo.DTYPE_UNKNOWN))

    def encode_at(self, stamp: Time) -> bytes:
        """CDR bytes of this ModelInfo stamped ``stamp`` (frame_id stays empty)."""
        out = bytearray(self._encoded)
        _STAMP.pack_into(out, _STAMP_OFFSET, stamp.sec, stamp.nanosec)
        return bytes(out)


def empty_detect(header: Header) -> Detect:
    """Heartbeat Detect: the camera header, zero times, no boxes."""
    return Detect(header=header)


def empty_mask() -> Mask:
    """Heartbeat Mask: 0 x 0, length 1, no bytes."""
    return Mask(0, 0, 1, "", b"", False)
