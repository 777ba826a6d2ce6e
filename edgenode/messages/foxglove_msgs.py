"""foxglove_msgs: ImageAnnotations and its parts (ROS 2 flavour, CDR)."""


from dataclasses import dataclass, field

from pycdr2 import IdlStruct
from pycdr2.types import float64, sequence, uint8

from edgenode.messages.builtin_interfaces import Time


@dataclass
class Point2(IdlStruct, typename="foxglove_msgs.msg.Point2"):
    """A point in image pixels."""

    x: float64 = 0.0
    y: float64 = 0.0


@dataclass
class Color(IdlStruct, typename="foxglove_msgs.msg.Color"):
    """RGBA, each 0..1."""

    r: float64 = 0.0
    g: float64 = 0.0
    b: float64 = 0.0
    a: float64 = 0.0


@dataclass
class CircleAnnotation(IdlStruct, typename="foxglove_msgs.msg.CircleAnnotation"):
    """A circle overlay."""

    timestamp: Time = field(default_factory=Time)
    position: Point2 = field(default_factory=Point2)
    diameter: float64 = 0.0
    thickness: float64 = 0.0
    fill_color: Color = field(default_factory=Color)
    outline_color: Color = field(default_factory=Color)


@dataclass
class PointsAnnotation(IdlStruct, typename="foxglove_msgs.msg.PointsAnnotation"):
    """Points or a polyline overlay."""

    UNKNOWN = 0
    POINTS = 1
    LINE_LOOP = 2
    LINE_STRIP = 3
    LINE_LIST = 4

    timestamp: Time = field(default_factory=Time)
    type: uint8 = 0
    points: sequence[Point2] = field(default_factory=list)
    outline_color: Color = field(default_factory=Color)
    outline_colors: sequence[Color] = field(default_factory=list)
    fill_color: Color = field(default_factory=Color)
    thickness: float64 = 0.0


@dataclass
class TextAnnotation(IdlStruct, typename="foxglove_msgs.msg.TextAnnotation"):
    """A text overlay."""

    timestamp: Time = field(default_factory=Time)
    position: Point2 = field(default_factory=Point2)
    text: str = ""
    font_size: float64 = 0.0
    text_color: Color = field(default_factory=Color)
    background_color: Color = field(default_factory=Color)


@dataclass
class ImageAnnotations(IdlStruct, typename="foxglove_msgs.msg.ImageAnnotations"):
    """All overlays for one image."""

    circles: sequence[CircleAnnotation] = field(default_factory=list)
    points: sequence[PointsAnnotation] = field(default_factory=list)
    texts: sequence[TextAnnotation] = field(default_factory=list)
