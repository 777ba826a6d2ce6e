"""Foxglove ImageAnnotations for one frame, laid out as the EdgeFirst Model Node draws them."""

from __future__ import annotations

from collections.abc import Sequence

from edgenode.core.outbound import FrameResult
from edgenode.messages import Color, ImageAnnotations, Point2, PointsAnnotation, TextAnnotation, Time

WHITE = Color(1.0, 1.0, 1.0, 1.0)
TRANSPARENT = Color(0.0, 0.0, 0.0, 0.0)
TEXT_BACKGROUND = Color(0.0, 0.0, 0.0, 0.5)
LINE_THICKNESS = 2.0


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
