"""Foxglove ImageAnnotations for one frame, laid out as the EdgeFirst Model Node draws them."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from itertools import repeat
from typing import cast

import numpy as np

from edgenode.core import outbound
from edgenode.core.outbound import FrameResult, TrackLike
from edgenode.messages import Color, ImageAnnotations, Point2, PointsAnnotation, TextAnnotation, Time
from edgenode.messages.compiled_cdr import (
    HEADER,
    STRING_BLOCKS,
    compiled,
    counted_string,
    counted_strings,
    ragged_rows,
)

WHITE = Color(1.0, 1.0, 1.0, 1.0)
TRANSPARENT = Color(0.0, 0.0, 0.0, 0.0)
TEXT_BACKGROUND = Color(0.0, 0.0, 0.0, 0.5)
LINE_THICKNESS = 2.0


_COLOURS_KEPT = 4096
_colours: dict[str, bytes] = {}  # track id -> its colour as four little-endian float64
_WHITE_BYTES = struct.pack("<4d", 1.0, 1.0, 1.0, 1.0)


def track_colour(track_id: str) -> Color:
    """A stable colour per track: the uuid's first three bytes as r, g, b (white when untracked)."""
    digits = track_id.replace("-", "")[:6]
    if len(digits) < 6:
        return WHITE
    try:
        r, g, b = (int(digits[i : i + 2], 16) / 255.0 for i in (0, 2, 4))
    except ValueError:
        return WHITE
    return Color(r, g, b, 1.0)


def box_text(mode: str, class_index: int, label: str, score: float, track_id: str) -> str:
    """Text per ``--labels`` mode: index, label, score, label-score or track."""
    if mode == "index":
        return str(class_index)
    if mode == "score":
        return f"{score:.2f}"
    if mode == "label-score":
        return f"{label} {score:.2f}"
    if mode == "track":
        return track_id[:8] if track_id else f"{score:.2f}"
    return label


def _base(stamp: Time, status: str, width: float, height: float) -> ImageAnnotations:
    status_text = TextAnnotation(stamp, Point2(0.025 * width, 0.95 * height), status, 0.015 * max(width, height),
                                 WHITE, TRANSPARENT)
    # The reference always leads with an empty points annotation; viewers rely on the layout.
    placeholder = PointsAnnotation(stamp, PointsAnnotation.UNKNOWN, [], WHITE, [], TRANSPARENT, LINE_THICKNESS)
    return ImageAnnotations(circles=[], points=[placeholder], texts=[status_text])


def loading_annotations(stamp: Time, model_path: str, width: float, height: float) -> ImageAnnotations:
    """What the heartbeat shows while the model loads."""
    return _base(stamp, f"Loading Model: {model_path}", width, height)


def frame_annotations(result: FrameResult, *, status: str, label_mode: str, width: float, height: float,
                      class_indices: Sequence[int] | None = None) -> ImageAnnotations:
    """Boxes as pixel LINE_LOOPs with a text each; ``width``/``height`` scale normalised coordinates."""
    stamp = result.header.stamp
    annotations = _base(stamp, status, width, height)
    points, texts = list(annotations.points), list(annotations.texts)
    detections = result.detections
    classes = class_indices if class_indices is not None else detections.classes.tolist()
    font = 0.02 * max(width, height)
    for i, (x1, y1, x2, y2) in enumerate(detections.boxes.tolist()):
        info = result.tracks[i] if result.tracks is not None else None
        track_id = info.id if info is not None else ""
        colour = track_colour(track_id)
        left, top, right, bottom = x1 * width, y1 * height, x2 * width, y2 * height
        corners = [Point2(left, top), Point2(right, top), Point2(right, bottom), Point2(left, bottom)]
        points.append(PointsAnnotation(stamp, PointsAnnotation.LINE_LOOP, corners, colour,
                                       [colour] * 4, TRANSPARENT, LINE_THICKNESS))
        text = box_text(label_mode, int(classes[i]), result.labels[i], float(detections.scores[i]), track_id)
        texts.append(TextAnnotation(stamp, Point2(left, top), text, font, colour, TEXT_BACKGROUND))
    return ImageAnnotations(circles=[], points=points, texts=texts)


# --------------------------------------------------------------------------------------------
# frame_annotations straight to CDR, every box at once (byte-identical to encode(frame_annotations(...)))
# --------------------------------------------------------------------------------------------
#
# The CDR body is: circles count (0), points count, the placeholder outline (8-aligned at 8),
# one 288-byte outline per box, texts count, the status text (4 past an 8-byte boundary, for
# every box count), one text per box. Outlines and texts end with float64 fields, so every box's
# outline and text starts 8-aligned: the outlines are rows of 36 float64s, the texts byte rows
# whose text is padded to the next 8-byte boundary. The placeholder and status text are encoded
# once per status and size, and their stamps patched.

_U32 = struct.Struct("<I")
_STAMP = struct.Struct("<iI")
_COUNTS = struct.Struct("<2I")
_CORNERS = np.array([0, 1, 2, 1, 2, 3, 0, 3])  # left top, right top, right bottom, left bottom of x1 y1 x2 y2


_ROWS = 1024  # boxes laid out in one go (more are done in parts)


def _constant_columns() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Columns every box outline shares, as float64 words for ``_ROWS`` boxes: the word after the
    stamp (type LINE_LOOP, four points), the one after the outline colour (four colours), and the
    last five (transparent fill, thickness)."""
    kind = np.zeros(8, np.uint8)
    kind[0] = PointsAnnotation.LINE_LOOP
    kind[4:8] = np.array([4], "<u4").view(np.uint8)
    colours = np.zeros(8, np.uint8)
    colours[0:4] = np.array([4], "<u4").view(np.uint8)
    tail = np.zeros(5)
    tail[4] = LINE_THICKNESS
    return (np.tile(kind.view("<f8"), (_ROWS, 1)), np.tile(colours.view("<f8"), (_ROWS, 1)),
            np.tile(tail, (_ROWS, 1)))


_KIND, _COLOURS_COUNT, _FILL_THICKNESS = _constant_columns()


class _Fixed:
    """The placeholder outline and the status text of one status and stream size, stamped per frame,
    and the constant columns of the box texts."""

    def __init__(self, status: str, width: float, height: float) -> None:
        base = _base(Time(0, 0), status, width, height)
        out = bytearray(HEADER + bytes(8))
        compiled(PointsAnnotation)(out, base.points[0])
        self.placeholder_tail = bytes(out[len(HEADER) + 16:])  # after its stamp
        out = bytearray(HEADER + bytes(4))  # the status text starts 4 past an 8-byte boundary
        compiled(TextAnnotation)(out, base.texts[0])
        self.status_tail = bytes(out[len(HEADER) + 12:])  # after its stamp
        background = (TEXT_BACKGROUND.r, TEXT_BACKGROUND.g, TEXT_BACKGROUND.b, TEXT_BACKGROUND.a)
        self.font_size = np.tile(np.array([0.02 * max(width, height)], "<f8").view(np.uint8), (_ROWS, 1))
        self.background = np.tile(np.array(background, "<f8").view(np.uint8), (_ROWS, 1))

    def stamped(self, stamp: Time, count: int) -> tuple[bytes, bytes]:
        """(circles and points counts + placeholder, texts count + status text) for a frame of ``count`` boxes."""
        stamp_bytes = _STAMP.pack(stamp.sec, stamp.nanosec)
        return (b"".join((_COUNTS.pack(0, count + 1), stamp_bytes, self.placeholder_tail)),
                b"".join((_U32.pack(count + 1), stamp_bytes, self.status_tail)))


_fixed: dict[tuple[str, float, float], _Fixed] = {}


def _fixed_for(status: str, width: float, height: float) -> _Fixed:
    fixed = _fixed.get((status, width, height))
    if fixed is None:
        if len(_fixed) >= 64:
            _fixed.clear()
        fixed = _fixed[status, width, height] = _Fixed(status, width, height)
    return fixed


def _colour_bytes(track_id: str) -> bytes:
    colour = track_colour(track_id)
    return struct.pack("<4d", colour.r, colour.g, colour.b, colour.a)


def _colours_of(result: FrameResult) -> np.ndarray:
    """``(N, 4)`` float64 RGBA of each box (its track's colour, white when untracked), cached per track id."""
    count = len(result.detections)
    tracks = result.tracks
    if tracks is None:
        return np.ones((count, 4))
    ids = ["" if info is None else info.id for info in tracks]
    found = list(map(_colours.get, ids))
    if None in found:
        if len(_colours) >= _COLOURS_KEPT:
            _colours.clear()
        found = [_colours.setdefault(track_id, _colour_bytes(track_id)) for track_id in ids]
    return np.frombuffer(b"".join(cast("list[bytes]", found)), "<f8").reshape(count, 4)


def _texts_of(result: FrameResult, label_mode: str, class_indices: Sequence[int] | None) -> Sequence[str]:
    if label_mode == "label":
        return result.labels
    detections = result.detections
    if label_mode == "score":
        return [f"{score:.2f}" for score in detections.scores.tolist()]
    classes = class_indices if class_indices is not None else detections.classes.tolist()
    if label_mode == "index":
        return [str(int(index)) for index in classes]
    tracks = result.tracks if result.tracks is not None else repeat(None, len(detections))
    return [box_text(label_mode, int(index), label, score, "" if info is None else info.id)
            for index, label, score, info in zip(classes, result.labels, detections.scores.tolist(), tracks,
                                                 strict=False)]


def frame_annotations_cdr(result: FrameResult, *, status: str, label_mode: str, width: float, height: float,
                          class_indices: Sequence[int] | None = None) -> bytes:
    """CDR of :func:`frame_annotations` with the same arguments, every box laid out at once."""
    fixed = _fixed_for(status, width, height)
    stamp = result.header.stamp
    count = len(result.detections)
    points, texts = fixed.stamped(stamp, count)
    if not count:
        return HEADER + points + texts
    if count <= SMALL_FRAME:
        return _one_pass(result, fixed, label_mode, class_indices, (width, height))[1]
    outlines, box_texts = [], []
    for start in range(0, count, _ROWS):
        part = slice(start, min(start + _ROWS, count))
        outline, text = _boxes(result, part, fixed, label_mode, class_indices, size=(width, height))
        outlines.append(outline)
        box_texts.append(text)
    return b"".join((HEADER, points, *outlines, texts, *box_texts))


def _boxes(result: FrameResult, part: slice, fixed: _Fixed, label_mode: str, class_indices: Sequence[int] | None, *,
           size: tuple[float, float]) -> tuple[bytes, bytes]:
    """The outlines and the texts of the boxes ``part`` (at most ``_ROWS``)."""
    stamp = _STAMP.pack(result.header.stamp.sec, result.header.stamp.nanosec)
    if part.start or part.stop < len(result.detections):
        result = FrameResult(result.header, result.detections.select(np.arange(part.start, part.stop)),
                             result.labels[part], None if result.tracks is None else result.tracks[part], result.times)
        class_indices = None if class_indices is None else class_indices[part]
    count = len(result.detections)
    colours = _colours_of(result)
    corners = np.multiply(result.detections.boxes, np.array(size * 2))
    stamps = np.frombuffer(stamp * count, "<f8").reshape(count, 1)
    outlines = np.concatenate([stamps, _KIND[:count], np.take(corners, _CORNERS, axis=1), colours,
                               _COLOURS_COUNT[:count], np.tile(colours, 4), _FILL_THICKNESS[:count]], axis=1)
    # A text: stamp, position, then its u32 length 8-aligned at byte 24, the bytes, zeros to the
    # next 8-byte boundary, and the font size and colours.
    blocks, block_bytes = counted_strings(_texts_of(result, label_mode, class_indices), 8)
    rows = np.concatenate([stamps.view(np.uint8), corners[:, :2].view(np.uint8), blocks, fixed.font_size[:count],
                           colours.view(np.uint8), fixed.background[:count]], axis=1)
    return outlines.tobytes(), ragged_rows(rows, [(24, block_bytes)], [blocks.shape[1]]).tobytes()


SMALL_FRAME = 64
"""Up to this many boxes the outlines and texts are packed box by box in Python (less fixed cost);
beyond it every box at once with numpy (less cost per box): measured, BENCHMARKS.md. Same bytes."""
# A box's PointsAnnotation (8-aligned): stamp, type, point count, the four corners, the outline
# colour, the colour count, the four outline colours, then the fill colour and thickness.
_OUTLINE = struct.Struct("<iIB3xI8d32sI4x128s40s")
_FILL_AND_THICKNESS = struct.pack("<5d", 0.0, 0.0, 0.0, 0.0, LINE_THICKNESS)


def _text_struct(block_bytes: int) -> struct.Struct:
    """One box's TextAnnotation: stamp, position, the text's string block, font size, colours."""
    found = _text_structs.get(block_bytes)
    if found is None:
        found = _text_structs[block_bytes] = struct.Struct(f"<iI2d{block_bytes}s8s32s32s")
    return found


_text_structs: dict[int, struct.Struct] = {}


def boxes_and_annotations_cdr(result: FrameResult, *, status: str, label_mode: str, width: float, height: float,
                              class_indices: Sequence[int] | None = None) -> tuple[bytes, bytes]:
    """(:func:`~edgenode.core.outbound.box_sequence`, :func:`frame_annotations_cdr`) of one frame, for a
    node publishing both: a small frame's boxes are read once for both (the same bytes as the two calls)."""
    count = len(result.detections)
    if count == 0 or count > min(SMALL_FRAME, outbound.SMALL_FRAME):
        return (outbound.box_sequence(result),
                frame_annotations_cdr(result, status=status, label_mode=label_mode, width=width, height=height,
                                      class_indices=class_indices))
    return _one_pass(result, _fixed_for(status, width, height), label_mode, class_indices, (width, height))


def _one_pass(result: FrameResult, fixed: _Fixed, label_mode: str, class_indices: Sequence[int] | None,
              size: tuple[float, float]) -> tuple[bytes, bytes]:
    """Box sequence and annotations of a frame with boxes, box by box in Python, each box read once."""
    count = len(result.detections)
    width, height = size
    stamp = result.header.stamp
    sec, nanosec = stamp.sec, stamp.nanosec
    font, background = fixed.font_size[0].tobytes(), fixed.background[0].tobytes()
    outline, labels, eights, track_parts = _OUTLINE.pack, _label_parts, STRING_BLOCKS[8], _track_parts
    boxes: list[bytes] = [_U32.pack(count)]
    outlines: list[bytes] = []
    texts: list[bytes] = []
    add_box, add_outline, add_text = boxes.append, outlines.append, texts.append
    tracks: Sequence[TrackLike | None] | repeat[None] = (result.tracks if result.tracks is not None
                                                         else repeat(None, count))
    try:
        for (x1, y1, x2, y2), label, score, info, text in zip(
                result.detections.boxes.tolist(), result.labels, result.detections.scores.tolist(), tracks,
                _texts_of(result, label_mode, class_indices), strict=False):
            label_block, label_text, label_struct, box_structs = labels.get(label) or _remember_label(label)
            if info is None:
                id_block, id_bytes, colour, colours = _UNTRACKED_PARTS
                lifetime, created_sec, created_nanosec = 1, sec, nanosec
            else:
                id_block, id_bytes, colour, colours = track_parts.get(info.id) or _remember_track(info.id)
                lifetime = info.lifetime
                created_sec, created_nanosec = divmod(info.created_ns, 1_000_000_000)
            box = box_structs.get(id_bytes) or _box_struct(label_block, id_bytes, box_structs)
            add_box(box.pack((x1 + x2) / 2.0, (y1 + y2) / 2.0, x2 - x1, y2 - y1, label_block, score, 0.0, 0.0,
                             id_block, lifetime, created_sec, created_nanosec))
            left, top, right, bottom = x1 * width, y1 * height, x2 * width, y2 * height
            add_outline(outline(sec, nanosec, PointsAnnotation.LINE_LOOP, 4, left, top, right, top, right, bottom,
                                left, bottom, colour, 4, colours, _FILL_AND_THICKNESS))
            if text is not label:
                block = eights.get(text) or counted_string(text, 8)
                label_text, label_struct = block, _text_struct(len(block))
            add_text(label_struct.pack(sec, nanosec, left, top, label_text, font, colour, background))
    except (struct.error, OverflowError):
        raise ValueError("a track lifetime or creation time does not fit int32") from None
    points, texts_head = fixed.stamped(stamp, count)
    return b"".join(boxes), b"".join((HEADER, points, *outlines, texts_head, *texts))


_PARTS_KEPT = 4096
# label -> its string blocks (4- and 8-aligned), its text layout, its box layouts by track id block size
_label_parts: dict[str, tuple[bytes, bytes, struct.Struct, dict[int, struct.Struct]]] = {}
# track id -> its string block and the block's size, its colour, its colour four times
_track_parts: dict[str, tuple[bytes, int, bytes, bytes]] = {}
_UNTRACKED_PARTS = (outbound.NO_TRACK_ID, len(outbound.NO_TRACK_ID), _WHITE_BYTES, _WHITE_BYTES * 4)


def _box_struct(label_block: bytes, id_bytes: int, structs: dict[int, struct.Struct]) -> struct.Struct:
    found = structs[id_bytes] = outbound.box_struct(len(label_block), id_bytes)
    return found


def _remember_label(label: str) -> tuple[bytes, bytes, struct.Struct, dict[int, struct.Struct]]:
    if len(_label_parts) >= _PARTS_KEPT:
        _label_parts.clear()
    text = counted_string(label, 8)
    parts = _label_parts[label] = (counted_string(label, 4), text, _text_struct(len(text)), {})
    return parts


def _remember_track(track_id: str) -> tuple[bytes, int, bytes, bytes]:
    if len(_track_parts) >= _PARTS_KEPT:
        _track_parts.clear()
    colour = _colour_bytes(track_id)
    block = counted_string(track_id, 4)
    parts = _track_parts[track_id] = (block, len(block), colour, colour * 4)
    return parts
