"""ROS 2 messages edgenode speaks, as pycdr2 classes, with a hardened CDR codec.

Pure logic: no I/O. The definitions in the top-level ``schemas/`` folder are the contract;
``tests/unit/test_messages_definitions.py`` keeps these classes in step with them.
"""

from edgenode.messages.builtin_interfaces import Duration, Time
from edgenode.messages.cdr import CdrError, decode, encode, schema_name
from edgenode.messages.edgefirst_msgs import (
    Box,
    CameraFrame,
    Detect,
    DmaBuffer,
    Mask,
    Model,
    ModelInfo,
    Tensor,
    TensorPlane,
    TensorStamped,
    Track,
)
from edgenode.messages.foxglove_msgs import (
    CircleAnnotation,
    Color,
    ImageAnnotations,
    Point2,
    PointsAnnotation,
    TextAnnotation,
)
from edgenode.messages.sensor_msgs import CameraInfo, CompressedImage, RegionOfInterest
from edgenode.messages.std_msgs import Header

__all__ = [
    "Box",
    "CameraFrame",
    "CameraInfo",
    "CdrError",
    "CircleAnnotation",
    "Color",
    "CompressedImage",
    "Detect",
    "DmaBuffer",
    "Duration",
    "Header",
    "ImageAnnotations",
    "Mask",
    "Model",
    "ModelInfo",
    "Point2",
    "PointsAnnotation",
    "RegionOfInterest",
    "Tensor",
    "TensorPlane",
    "TensorStamped",
    "TextAnnotation",
    "Time",
    "Track",
    "decode",
    "encode",
    "schema_name",
]
