"""Build the node's outbound messages (Detect, Model, ModelInfo, heartbeat) from one frame's results.

Follows the EdgeFirst Model Node's filling rules (reference sheet §2-3): boxes as centre/size
normalised to the full frame, labels with an index fallback, timings as durations, tracks as
uuid/lifetime/created. One deliberate fix: an untracked box's ``created`` is the frame stamp
(the 2.8 Model rule) rather than the output duration the 2.7 Detect put there.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from operator import attrgetter
from typing import Protocol

import numpy as np

from edgenode.core.detections import Detections
from edgenode.core.tensors import TensorSpec
from edgenode.messages import Box, Detect, Duration, Header, Mask, Model, ModelInfo, Time, Track, encode
from edgenode.messages.compiled_cdr import HEADER, compiled, counted_string, counted_strings, pad_to, ragged_rows
from edgenode.messages.edgefirst_msgs import DTYPE_TO_LEGACY_TYPE

LOADING_MODEL_NAME = "Loading Model..."
_STAMP = struct.Struct("<iI")
_STAMP_OFFSET = 4  # ModelInfo starts with its header's stamp, right after the CDR header
_U32 = struct.Struct("<I")
_STAMP_AND_THREE_TIMES = struct.Struct("<iIiIiIiI")
_FOUR_TIMES = struct.Struct("<iIiIiIiI")
_NANOS = 1_000_000_000
_I32 = (-(2**31), 2**31 - 1)
NO_BOXES = _U32.pack(0)
"""The CDR of an empty box sequence."""
NO_TRACK_ID = _U32.pack(1) + bytes(4)  # the empty track id's string block


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


# --------------------------------------------------------------------------------------------
# The same messages straight to CDR (byte-identical to encode(detect_message(...)) and the rest)
# --------------------------------------------------------------------------------------------


def _seconds(nanos: int) -> tuple[int, int]:
    sec, nanosec = divmod(int(nanos), _NANOS)
    if not _I32[0] <= sec <= _I32[1]:
        raise ValueError(f"time {nanos} ns does not fit a ROS 2 Time (int32 seconds)")
    return sec, nanosec


_ID, _LIFETIME, _CREATED = attrgetter("id"), attrgetter("lifetime"), attrgetter("created_ns")
_ZEROS = np.zeros((1024, 2), "<u4")  # distance and speed of up to 1024 boxes
_SWAPPED = np.array([2, 3, 0, 1])
_HALF_HALF_ONE_ONE = np.array([0.5, 0.5, 1.0, 1.0])
_HALF_HALF_MINUS_ONE = np.array([0.5, 0.5, -1.0, -1.0])


def _track_columns(result: FrameResult) -> tuple[Sequence[str], bytes]:
    """Per box: the track id, and the lifetime, created sec and created nanosec packed as int32 words
    (struct refuses values beyond int32); untracked boxes as the reference fills them."""
    count = len(result.detections)
    stamp = result.header.stamp
    tracks = result.tracks
    if tracks is None:
        ids: Sequence[str] = [""] * count
        numbers: Iterable[int] = (1, stamp.sec, stamp.nanosec) * count
    elif None not in tracks:
        ids = list(map(_ID, tracks))
        created = [divmod(nanos, _NANOS) for nanos in map(_CREATED, tracks)]
        numbers = chain.from_iterable(zip(map(_LIFETIME, tracks), *zip(*created, strict=True), strict=True))
    else:
        untracked = ("", 1, stamp.sec, stamp.nanosec)
        rows = [untracked if info is None else (info.id, info.lifetime, *divmod(info.created_ns, _NANOS))
                for info in tracks]
        ids = [row[0] for row in rows]
        numbers = chain.from_iterable(row[1:] for row in rows)
    try:
        return ids, struct.pack(f"<{3 * count}i", *numbers)
    except struct.error:
        raise ValueError("a track lifetime or creation time does not fit int32") from None


SMALL_FRAME = 128
"""Up to this many boxes the boxes are packed box by box in Python (less fixed cost); beyond it
every box at once with numpy (less cost per box): measured, BENCHMARKS.md. The same bytes."""


def box_sequence(result: FrameResult) -> bytes:
    """The CDR of ``Detect.boxes`` (and ``Model.boxes``) of ``result``: a u32 count, then every Box.

    Every field of a Box is 4 bytes or a string (4-aligned), so the sequence is a run of u32
    words whose bytes do not depend on where it starts: built once per frame for Detect and
    Model. Big frames: a row of u32 words per box, all rows in one concatenation.
    """
    count = len(result.detections)
    if count == 0:
        return NO_BOXES
    if count <= SMALL_FRAME:
        return _small_box_sequence(result)
    if count > len(_ZEROS):
        return _U32.pack(count) + b"".join(box_sequence(part)[4:] for part in _split(result, len(_ZEROS)))
    ids, numbers = _track_columns(result)
    labels, label_bytes = counted_strings(result.labels, 4)
    id_blocks, id_bytes = counted_strings(ids, 4)
    # x1 y1 x2 y2 -> centre x, y, width, height in float64, rounded to float32 once as the message
    # classes' (x1 + x2)/2 and x2 - x1 are (in float32, halving a subnormal would round a second time and
    # could flip the sign of a zero); whole-array operations: strided ones cost more
    xyxy = result.detections.boxes.astype(np.float64)
    xywh = np.multiply(xyxy, _HALF_HALF_ONE_ONE)
    xywh += np.multiply(np.take(xyxy, _SWAPPED, axis=1), _HALF_HALF_MINUS_ONE)
    xywh = xywh.astype("<f4")
    scores = result.detections.scores.astype("<f4", copy=False)
    rows = np.concatenate([xywh.view("<u4"), labels.view("<u4"), scores.view("<u4")[:, None],
                           _ZEROS[:count], id_blocks.view("<u4"), np.frombuffer(numbers, "<u4").reshape(count, 3)],
                          axis=1)
    label_words, id_words = labels.shape[1] // 4, id_blocks.shape[1] // 4
    label_used, id_used = [size // 4 for size in label_bytes], [size // 4 for size in id_bytes]
    body = ragged_rows(rows, [(4, label_used), (7 + label_words, id_used)], [label_words, id_words])
    return _U32.pack(count) + body.tobytes()


def box_struct(label_bytes: int, id_bytes: int) -> struct.Struct:
    """One Box: centre and size, the label's string block, score, distance, speed, the track id's
    string block, lifetime and created (cached per pair of string block sizes)."""
    found = BOX_STRUCTS.get((label_bytes, id_bytes))
    if found is None:
        found = BOX_STRUCTS[label_bytes, id_bytes] = struct.Struct(f"<4f{label_bytes}s3f{id_bytes}siiI")
    return found


BOX_STRUCTS: dict[tuple[int, int], struct.Struct] = {}
"""The cached :func:`box_struct` layouts."""


def _small_box_sequence(result: FrameResult) -> bytes:
    """:func:`box_sequence` box by box (float64 centre and size packed to float32, as the message encoder does)."""
    stamp = result.header.stamp
    tracks: Iterable[TrackLike | None] = (result.tracks if result.tracks is not None
                                          else repeat(None, len(result.detections)))
    parts = [_U32.pack(len(result.detections))]
    try:
        for (x1, y1, x2, y2), label, score, info in zip(result.detections.boxes.tolist(), result.labels,
                                                        result.detections.scores.tolist(), tracks, strict=False):
            label_block = counted_string(label, 4)
            if info is None:
                parts.append(box_struct(len(label_block), 8).pack(
                    (x1 + x2) / 2.0, (y1 + y2) / 2.0, x2 - x1, y2 - y1, label_block, score, 0.0, 0.0, NO_TRACK_ID, 1,
                    stamp.sec, stamp.nanosec))
            else:
                id_block = counted_string(info.id, 4)
                sec, nanosec = divmod(info.created_ns, _NANOS)
                parts.append(box_struct(len(label_block), len(id_block)).pack(
                    (x1 + x2) / 2.0, (y1 + y2) / 2.0, x2 - x1, y2 - y1, label_block, score, 0.0, 0.0, id_block,
                    info.lifetime, sec, nanosec))
    except (struct.error, OverflowError):
        raise ValueError("a track lifetime or creation time does not fit int32") from None
    return b"".join(parts)


def _split(result: FrameResult, size: int) -> Iterable[FrameResult]:
    """``result`` in parts of at most ``size`` boxes (sequences longer than the encoder's scratch)."""
    for start in range(0, len(result.detections), size):
        keep = np.arange(start, min(start + size, len(result.detections)))
        yield FrameResult(result.header, result.detections.select(keep), result.labels[start:start + size],
                          None if result.tracks is None else result.tracks[start:start + size], result.times)


def _frame_id_block(frame_id: str) -> bytes:
    """A header's frame_id string padded to 4 (the stamp before it is 8 bytes), cached."""
    block = _frame_ids.get(frame_id)
    if block is None:
        if len(_frame_ids) >= 64:
            _frame_ids.clear()
        out = bytearray(HEADER)
        compiled(Header)(out, Header(Time(0, 0), frame_id))
        pad_to(out, 4)
        block = _frame_ids[frame_id] = bytes(out[len(HEADER) + 8:])  # after the stamp
    return block


_frame_ids: dict[str, bytes] = {}


def detect_cdr(result: FrameResult, boxes_cdr: bytes | None = None) -> bytes:
    """CDR of :func:`detect_message` (``boxes_cdr``: :func:`box_sequence` of ``result``, if already built)."""
    header, times = result.header, result.times
    try:
        stamp_and_times = _STAMP_AND_THREE_TIMES.pack(
            header.stamp.sec, header.stamp.nanosec, *divmod(times.preprocess_ns, _NANOS),
            *divmod(times.invoke_ns, _NANOS), *divmod(times.post_ns, _NANOS))
    except struct.error:
        raise ValueError("a stamp or stage time does not fit a ROS 2 Time (int32 seconds)") from None
    return b"".join((HEADER, stamp_and_times[:8], _frame_id_block(header.frame_id), stamp_and_times[8:],
                     box_sequence(result) if boxes_cdr is None else boxes_cdr))


def model_cdr(result: FrameResult, masks: Sequence[Mask], boxes_cdr: bytes | None = None) -> bytes:
    """CDR of :func:`model_message` (``boxes_cdr`` as for :func:`detect_cdr`)."""
    out = bytearray(HEADER)
    compiled(Header)(out, result.header)
    pad_to(out, 4)
    times = result.times
    out += _FOUR_TIMES.pack(*_seconds(times.preprocess_ns), *_seconds(times.invoke_ns), *_seconds(times.output_ns),
                            *_seconds(times.post_ns))
    out += box_sequence(result) if boxes_cdr is None else boxes_cdr
    pad_to(out, 4)
    out += _U32.pack(len(masks))
    write_mask = compiled(Mask)
    for mask in masks:
        write_mask(out, mask)
    return bytes(out)


_MASK_SIZES = struct.Struct("<3I")


def mask_cdr(mask: Mask) -> bytes:
    """CDR of a Mask (``encode(mask)``'s bytes), its mask bytes copied once."""
    return b"".join((HEADER, _MASK_SIZES.pack(mask.height, mask.width, mask.length), counted_string(mask.encoding, 4),
                     _U32.pack(len(mask.mask)), mask.mask, b"\x01" if mask.boxed else b"\x00"))
