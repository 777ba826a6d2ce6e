"""sensor_msgs: CameraInfo (edgenode reads its width and height) and CompressedImage (the camera's JPEG)."""


from dataclasses import dataclass, field

from pycdr2 import IdlStruct
from pycdr2.types import array, float64, sequence, uint32

from edgenode.messages.std_msgs import Header


@dataclass
class RegionOfInterest(IdlStruct, typename="sensor_msgs.msg.RegionOfInterest"):
    """A sub-window of an image."""

    x_offset: uint32 = 0
    y_offset: uint32 = 0
    height: uint32 = 0
    width: uint32 = 0
    do_rectify: bool = False


@dataclass
class CameraInfo(IdlStruct, typename="sensor_msgs.msg.CameraInfo"):
    """Camera calibration and stream resolution."""

    header: Header = field(default_factory=Header)
    height: uint32 = 0
    width: uint32 = 0
    distortion_model: str = ""
    d: sequence[float64] = field(default_factory=list)
    k: array[float64, 9] = field(default_factory=lambda: [0.0] * 9)
    r: array[float64, 9] = field(default_factory=lambda: [0.0] * 9)
    p: array[float64, 12] = field(default_factory=lambda: [0.0] * 12)
    binning_x: uint32 = 0
    binning_y: uint32 = 0
    roi: RegionOfInterest = field(default_factory=RegionOfInterest)


@dataclass
class CompressedImage(IdlStruct, typename="sensor_msgs.msg.CompressedImage"):
    """An encoded image: ``format`` names the codec ("jpeg"), ``data`` holds the file bytes."""

    header: Header = field(default_factory=Header)
    format: str = ""
    data: bytes = b""
