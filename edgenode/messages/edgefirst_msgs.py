"""edgefirst_msgs: camera frames in, detections, masks and model info out.

``uint8[]`` fields are typed ``bytes``: the same CDR layout as ``sequence[uint8]`` (a u32
count, then the bytes), encoded and decoded in one slice instead of one Python int per byte.
"""


from dataclasses import dataclass, field

from pycdr2 import IdlStruct
from pycdr2.types import float32, int32, int64, sequence, uint8, uint32, uint64

from edgenode.messages.builtin_interfaces import Duration, Time
from edgenode.messages.std_msgs import Header


@dataclass
class DmaBuffer(IdlStruct, typename="edgefirst_msgs.msg.DmaBuffer"):
    """A camera frame in another process's dma-buf (EdgeFirst camera 2.x)."""

    header: Header = field(default_factory=Header)
    pid: uint32 = 0
    fd: int32 = -1
    width: uint32 = 0
    height: uint32 = 0
    stride: uint32 = 0
    fourcc: uint32 = 0
    length: uint32 = 0


@dataclass
class TensorPlane(IdlStruct, typename="edgefirst_msgs.msg.TensorPlane"):
    """One plane of a Tensor, behind a handle or inline."""

    handle: int64 = -1
    offset: uint64 = 0
    stride: uint64 = 0
    size: uint64 = 0
    used: uint64 = 0
    modifier: uint64 = 0
    handle_bytes: bytes = b""
    data: bytes = b""


@dataclass
class Tensor(IdlStruct, typename="edgefirst_msgs.msg.Tensor"):
    """An n-dimensional buffer reference (EdgeFirst schemas 4.x)."""

    STORAGE_SHM = 1
    STORAGE_DMA_BUF = 2

    storage_kind: uint32 = 0
    pid: uint32 = 0
    fence_fd: int32 = -1
    dtype: uint32 = 0
    quant_axis: int32 = -2
    shape: sequence[uint64] = field(default_factory=list)
    strides: sequence[int64] = field(default_factory=list)
    quant_scales: sequence[float32] = field(default_factory=list)
    quant_zero_points: sequence[int32] = field(default_factory=list)
    format: str = ""
    color_space: str = ""
    color_transfer: str = ""
    color_encoding: str = ""
    color_range: str = ""
    planes: sequence[TensorPlane] = field(default_factory=list)


@dataclass
class TensorStamped(IdlStruct, typename="edgefirst_msgs.msg.TensorStamped"):
    """A Tensor with a stamp."""

    header: Header = field(default_factory=Header)
    seq: uint64 = 0
    tensor: Tensor = field(default_factory=Tensor)


@dataclass
class CameraFrame(IdlStruct, typename="edgefirst_msgs.msg.CameraFrame"):
    """A camera frame as a stamped Tensor (successor of DmaBuffer)."""

    header: Header = field(default_factory=Header)
    seq: uint64 = 0
    tensor: Tensor = field(default_factory=Tensor)


@dataclass
class Track(IdlStruct, typename="edgefirst_msgs.msg.Track"):
    """Tracking identity of a box; empty id when untracked."""

    id: str = ""
    lifetime: int32 = 0
    created: Time = field(default_factory=Time)


@dataclass
class Box(IdlStruct, typename="edgefirst_msgs.msg.Box"):
    """A detected object, normalised 0..1 to the full frame."""

    center_x: float32 = 0.0
    center_y: float32 = 0.0
    width: float32 = 0.0
    height: float32 = 0.0
    label: str = ""
    score: float32 = 0.0
    distance: float32 = 0.0
    speed: float32 = 0.0
    track: Track = field(default_factory=Track)


@dataclass
class Detect(IdlStruct, typename="edgefirst_msgs.msg.Detect"):
    """Boxes of one frame; the three Time fields carry durations (preprocess, invoke, decode)."""

    header: Header = field(default_factory=Header)
    input_timestamp: Time = field(default_factory=Time)
    model_time: Time = field(default_factory=Time)
    output_time: Time = field(default_factory=Time)
    boxes: sequence[Box] = field(default_factory=list)


@dataclass
class Mask(IdlStruct, typename="edgefirst_msgs.msg.Mask"):
    """A segmentation mask, HWC bytes, raw (encoding "") or zstd."""

    height: uint32 = 0
    width: uint32 = 0
    length: uint32 = 0
    encoding: str = ""
    mask: bytes = b""
    boxed: bool = False


@dataclass
class Model(IdlStruct, typename="edgefirst_msgs.msg.Model"):
    """Everything one inference produced: timings, boxes and masks."""

    header: Header = field(default_factory=Header)
    input_time: Duration = field(default_factory=Duration)
    model_time: Duration = field(default_factory=Duration)
    output_time: Duration = field(default_factory=Duration)
    decode_time: Duration = field(default_factory=Duration)
    boxes: sequence[Box] = field(default_factory=list)
    masks: sequence[Mask] = field(default_factory=list)


@dataclass
class ModelInfo(IdlStruct, typename="edgefirst_msgs.msg.ModelInfo"):
    """What model is loaded.

    ``input_type``/``output_type`` carry the legacy codes (RAW..STRING); ``input_dtype`` and
    ``output_dtype`` the HAL codes (DTYPE_*), trailing fields that older senders omit.
    """

    RAW = 0
    INT8 = 1
    UINT8 = 2
    INT16 = 3
    UINT16 = 4
    FLOAT16 = 5
    INT32 = 6
    UINT32 = 7
    FLOAT32 = 8
    INT64 = 9
    UINT64 = 10
    FLOAT64 = 11
    STRING = 12

    DTYPE_U8 = 0
    DTYPE_I8 = 1
    DTYPE_U16 = 2
    DTYPE_I16 = 3
    DTYPE_U32 = 4
    DTYPE_I32 = 5
    DTYPE_U64 = 6
    DTYPE_I64 = 7
    DTYPE_F16 = 8
    DTYPE_F32 = 9
    DTYPE_F64 = 10
    DTYPE_UNKNOWN = 255

    header: Header = field(default_factory=Header)
    input_shape: sequence[uint32] = field(default_factory=list)
    input_type: uint8 = 0
    output_shape: sequence[uint32] = field(default_factory=list)
    output_type: uint8 = 0
    labels: sequence[str] = field(default_factory=list)
    model_types: str = ""
    model_format: str = ""
    model_name: str = ""
    input_dtype: uint8 = 255
    output_dtype: uint8 = 255


@dataclass
class ModelInfoV1(IdlStruct, typename="edgefirst_msgs.msg.ModelInfo"):
    """ModelInfo as senders before schemas 4.x wrote it (no dtype fields); decode-only."""

    header: Header = field(default_factory=Header)
    input_shape: sequence[uint32] = field(default_factory=list)
    input_type: uint8 = 0
    output_shape: sequence[uint32] = field(default_factory=list)
    output_type: uint8 = 0
    labels: sequence[str] = field(default_factory=list)
    model_types: str = ""
    model_format: str = ""
    model_name: str = ""


# Legacy element-type code -> HAL dtype code, for ModelInfo without dtype fields.
LEGACY_TYPE_TO_DTYPE: dict[int, int] = {
    ModelInfo.INT8: ModelInfo.DTYPE_I8,
    ModelInfo.UINT8: ModelInfo.DTYPE_U8,
    ModelInfo.INT16: ModelInfo.DTYPE_I16,
    ModelInfo.UINT16: ModelInfo.DTYPE_U16,
    ModelInfo.FLOAT16: ModelInfo.DTYPE_F16,
    ModelInfo.INT32: ModelInfo.DTYPE_I32,
    ModelInfo.UINT32: ModelInfo.DTYPE_U32,
    ModelInfo.FLOAT32: ModelInfo.DTYPE_F32,
    ModelInfo.INT64: ModelInfo.DTYPE_I64,
    ModelInfo.UINT64: ModelInfo.DTYPE_U64,
    ModelInfo.FLOAT64: ModelInfo.DTYPE_F64,
}


DTYPE_TO_LEGACY_TYPE: dict[int, int] = {dtype: legacy for legacy, dtype in LEGACY_TYPE_TO_DTYPE.items()}


def model_info_from_v1(old: ModelInfoV1) -> ModelInfo:
    """Upgrade a decoded pre-4.x ModelInfo, deriving the dtype fields from the legacy codes."""
    unknown = ModelInfo.DTYPE_UNKNOWN
    return ModelInfo(
        header=old.header,
        input_shape=old.input_shape,
        input_type=old.input_type,
        output_shape=old.output_shape,
        output_type=old.output_type,
        labels=old.labels,
        model_types=old.model_types,
        model_format=old.model_format,
        model_name=old.model_name,
        input_dtype=LEGACY_TYPE_TO_DTYPE.get(old.input_type, unknown),
        output_dtype=LEGACY_TYPE_TO_DTYPE.get(old.output_type, unknown),
    )
