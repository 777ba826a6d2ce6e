"""Typed configuration of the node. Pure: building a config reads no files and no environment.

The CLI (``edgenode.cli``) fills it from flags and EdgeFirst environment variables; the
composition root builds the pipeline from it. Each section validates its own ranges and raises
:class:`ConfigError` with a message that names the setting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

LABEL_MODES = ("index", "label", "score", "label-score", "track")
ZENOH_MODES = ("peer", "client", "router")
ENGINES = ("npu", "cpu")
DECODERS = ("yolov5", "yolov8", "yolo11", "yolo26", "modelpack")
NMS_MODES = ("agnostic", "aware")
RESIZE_MODES = ("stretch", "letterbox")
SCHEDULES = ("auto", "overlap", "serial")
PREPROCESS_BACKENDS = ("auto", "g2d", "cpu")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("auto", "console", "json")
ZSTD_LEVELS = range(-7, 23)
# The largest camera frame taken by default: 12 MP (4096x3072, the i.MX8M Plus ISP's largest mode) in RGBA,
# the widest pixel format the node reads. 48 MiB.
MAX_FRAME_BYTES = 4096 * 3072 * 4
MAX_TRACK_LIFESPAN = 3600.0  # seconds a lost track may be kept (an hour is far past any use)
MAX_STATS_INTERVAL = 86400.0  # seconds between stats lines (a day)
MAX_BATCH = 16
MAX_CAMERAS = 16


class ConfigError(ValueError):
    """A setting with a value the node cannot run with."""


def _unit_interval(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name} must be between 0 and 1, got {value}")


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")


_PORTED = ("tcp", "udp", "tls", "quic", "ws")


def _check_endpoint(flag: str, endpoint: str) -> None:
    """``PROTOCOL/ADDRESS``; the port of an IP protocol is a number in 0..65535 (1.. to connect to)."""
    protocol, sep, address = endpoint.partition("/")
    if not sep or not protocol or not address:
        raise ConfigError(f"{flag} {endpoint!r} is not a zenoh endpoint like tcp/192.168.1.10:7447")
    if protocol.lower() not in _PORTED:
        return
    port = re.split(r"[?#]", address, maxsplit=1)[0].rpartition(":")[2]
    lowest = 1 if flag == "--connect" else 0
    if not port.isdigit() or not lowest <= int(port) <= 65535:
        raise ConfigError(f"{flag} {endpoint}: the port must be a number in {lowest}..65535, got {port!r}")


@dataclass(frozen=True)
class ZenohSettings:
    """How to join the Zenoh network; layered as zenoh-python's examples do.

    Layers, last wins: the JSON5 ``config_file`` (or, without one, the EdgeFirst defaults: peer
    mode, multicast scouting on loopback), then ``mode``/``connect``/``listen``/scouting when
    given and ``shared_memory`` (off unless asked for), then each ``KEY:VALUE`` override (VALUE is JSON5).
    """

    mode: str | None = None
    connect: tuple[str, ...] = ()
    listen: tuple[str, ...] = ()
    multicast_scouting: bool = True
    # The EdgeFirst node scouts on loopback only; an override can widen it.
    multicast_interface: str = "lo"
    config_file: Path | None = None
    overrides: tuple[tuple[str, str], ...] = ()
    shared_memory: bool = False

    def __post_init__(self) -> None:
        if self.mode is not None:
            _one_of("--mode", self.mode, ZENOH_MODES)
        for flag, endpoints in (("--connect", self.connect), ("--listen", self.listen)):
            for endpoint in endpoints:
                _check_endpoint(flag, endpoint)
        for key, _ in self.overrides:
            if not key or key.startswith("/") or key.endswith("/"):
                raise ConfigError(f"--cfg key {key!r} must be a path like transport/unicast/max_links")


@dataclass(frozen=True)
class Topics:
    """Zenoh key expressions; an empty string disables that publication."""

    camera: str = "rt/camera/dma"
    camera_info: str = "rt/camera/info"
    detect: str = "rt/model/boxes2d"
    info: str = "rt/model/info"
    mask: str = "rt/model/mask"
    mask_compressed: str = "rt/model/mask_compressed"
    output: str = ""
    visual: str = "rt/model/visualization"

    def __post_init__(self) -> None:
        if not self.camera:
            raise ConfigError("--camera-topic must not be empty")
        for name in ("camera", "camera_info", "detect", "info", "mask", "mask_compressed", "output", "visual"):
            key = getattr(self, name)
            if key and (key.startswith("/") or key.endswith("/") or "//" in key or any(c in key for c in "?#$ ")):
                flag = "--" + name.replace("_", "-") + "-topic"
                raise ConfigError(f"{flag} {key!r} is not a valid Zenoh key expression")


STREAM_NAME_FORBIDDEN = "/*$?#= ,"


@dataclass(frozen=True)
class CameraSpec:
    """One ``--camera-topic`` entry: the stream's frame topic and its name (``""``: derived from the topics)."""

    topic: str
    name: str = ""

    def __str__(self) -> str:
        return f"{self.name}={self.topic}" if self.name else self.topic


def parse_camera(text: str) -> CameraSpec:
    """``NAME=TOPIC`` or a bare ``TOPIC`` (its name derived later, from every camera's topic)."""
    name, sep, topic = text.strip().partition("=")
    return CameraSpec(topic.strip(), name.strip()) if sep else CameraSpec(text.strip())


def derived_names(topics: tuple[str, ...]) -> tuple[str, ...]:
    """A name for each of ``topics``: the key segments that tell it from the others (the segments every topic
    shares at the start and at the end dropped, the rest joined with ``_``); one topic alone: its last segment.

    ``rt/front/dma``, ``rt/rear/dma`` -> ``front``, ``rear``; ``cam1/rt/camera/dma`` -> ``cam1``.
    """
    split = [topic.split("/") for topic in topics]
    if len(split) < 2:
        return tuple(parts[-1] for parts in split)
    shortest = min(len(parts) for parts in split)
    head = 0
    while head < shortest - 1 and len({parts[head] for parts in split}) == 1:
        head += 1
    tail = 0
    while tail < shortest - head - 1 and len({parts[-1 - tail] for parts in split}) == 1:
        tail += 1
    return tuple("_".join(parts[head:len(parts) - tail]) or parts[-1] for parts in split)


def stream_key(key: str, name: str) -> str:
    """An output topic of stream ``name``: the name inserted before the key's last segment
    (``rt/model/boxes2d`` -> ``rt/model/<name>/boxes2d``); an empty key (disabled) stays empty."""
    if not key:
        return key
    head, sep, last = key.rpartition("/")
    return f"{head}{sep}{name}/{last}"


def derived_info_topic(camera: str, info: str) -> str:
    """Stream ``camera``'s CameraInfo topic: its frame topic with the last segment replaced by that of
    ``--camera-info-topic`` (``rt/front/dma`` with ``rt/camera/info`` -> ``rt/front/info``); empty stays empty."""
    if not info:
        return ""
    head, sep, _ = camera.rpartition("/")
    return f"{head}{sep}{info.rpartition('/')[2]}"


@dataclass(frozen=True)
class StreamTopics:
    """One camera stream of the node: its name and every topic it reads and publishes."""

    name: str
    topics: Topics


@dataclass(frozen=True)
class ModelSettings:
    """The model file, its metadata override and how to run it."""

    path: Path
    edgefirst_config: Path | None = None
    engine: str = "npu"
    delegate: str = ""
    threads: int = 0
    cache_dir: Path | None = None
    decoder: str = ""
    ssd: bool = False
    schedule: str = "auto"
    batch: int = 0  # frames of different streams per invoke: 0 = auto (measured at load), else at most this

    def __post_init__(self) -> None:
        _one_of("--schedule", self.schedule, SCHEDULES)
        if not 0 <= self.batch <= MAX_BATCH:
            raise ConfigError(f"--batch must be auto or 1 to {MAX_BATCH}, got {self.batch}")
        if self.edgefirst_config is not None and self.edgefirst_config.suffix.lower() not in (
            ".yaml", ".yml", ".json"
        ):
            raise ConfigError(f"--edgefirst-config {self.edgefirst_config} must be a .yaml, .yml or .json file")
        _one_of("--engine", self.engine, ENGINES)
        if self.decoder:
            _one_of("--decoder-model", self.decoder, DECODERS)
        if self.threads < 0:
            raise ConfigError(f"--threads must be 0 (all cores) or more, got {self.threads}")


@dataclass(frozen=True)
class DecodeSettings:
    """Decoder thresholds and box filtering."""

    threshold: float = 0.45
    iou: float = 0.45
    max_boxes: int = 100
    label_offset: int = 0
    classes: tuple[str, ...] = ()
    nms: str = ""

    def __post_init__(self) -> None:
        _unit_interval("--threshold", self.threshold)
        _unit_interval("--iou", self.iou)
        if self.max_boxes < 1:
            raise ConfigError(f"--max-boxes must be at least 1, got {self.max_boxes}")
        if self.nms:
            _one_of("--nms", self.nms, NMS_MODES)


@dataclass(frozen=True)
class PreprocessSettings:
    """How camera frames become model input; frames over ``max_frame_bytes`` are skipped untouched."""

    resize: str = "stretch"
    backend: str = "auto"
    max_frame_bytes: int = MAX_FRAME_BYTES

    def __post_init__(self) -> None:
        _one_of("--resize", self.resize, RESIZE_MODES)
        _one_of("--preprocess", self.backend, PREPROCESS_BACKENDS)
        if self.max_frame_bytes < 1:
            raise ConfigError(f"--max-frame-bytes must be at least 1, got {self.max_frame_bytes}")


@dataclass(frozen=True)
class TrackSettings:
    """ByteTrack settings; ``extra_lifespan`` is seconds of camera time."""

    enabled: bool = False
    extra_lifespan: float = 0.5
    high_conf: float = 0.7
    score: float = 0.1
    iou: float = 0.25
    update: float = 0.25

    def __post_init__(self) -> None:
        if not 0 <= self.extra_lifespan <= MAX_TRACK_LIFESPAN:
            raise ConfigError(f"--track-extra-lifespan must be between 0 and {MAX_TRACK_LIFESPAN:g} seconds, "
                              f"got {self.extra_lifespan}")
        _unit_interval("--track-high-conf", self.high_conf)
        _unit_interval("--track-score", self.score)
        _unit_interval("--track-iou", self.iou)
        if not 0.0 < self.update <= 1.0:
            raise ConfigError(f"--track-update must be in (0, 1], got {self.update}")


@dataclass(frozen=True)
class MaskSettings:
    """Semantic mask publication."""

    compression: bool = False
    compression_level: int = 1
    classes: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.compression_level not in ZSTD_LEVELS:
            raise ConfigError(f"--mask-compression-level must be between -7 and 22, got {self.compression_level}")
        if any(index < 0 for index in self.classes):
            raise ConfigError(f"--mask-classes must be class indices >= 0, got {list(self.classes)}")


@dataclass(frozen=True)
class VisualSettings:
    """Foxglove ImageAnnotations publication."""

    enabled: bool = False
    labels: str = "label"

    def __post_init__(self) -> None:
        _one_of("--labels", self.labels, LABEL_MODES)


@dataclass(frozen=True)
class LogSettings:
    """Log level and format; ``profile`` logs every frame's stage spans (``--tracy``);
    ``stats_interval`` seconds between throughput and stage-time lines; ``zenoh`` zenoh's own log directives."""

    level: str = "info"
    format: str = "auto"
    profile: bool = False
    stats_interval: float = 10.0
    zenoh: str = ""  # zenoh's own log directives (RUST_LOG syntax, zenoh targets only); empty: zenoh stays quiet

    def __post_init__(self) -> None:
        _one_of("--log-level", self.level, LOG_LEVELS)
        _one_of("--log-format", self.format, LOG_FORMATS)
        if not 0 < self.stats_interval <= MAX_STATS_INTERVAL:
            raise ConfigError(f"--stats-interval must be more than 0 and at most {MAX_STATS_INTERVAL:g} seconds, "
                              f"got {self.stats_interval}")


@dataclass(frozen=True)
class NodeConfig:
    """Everything the composition root needs to build the node."""

    model: ModelSettings
    topics: Topics = field(default_factory=Topics)
    zenoh: ZenohSettings = field(default_factory=ZenohSettings)
    decode: DecodeSettings = field(default_factory=DecodeSettings)
    preprocess: PreprocessSettings = field(default_factory=PreprocessSettings)
    track: TrackSettings = field(default_factory=TrackSettings)
    mask: MaskSettings = field(default_factory=MaskSettings)
    visual: VisualSettings = field(default_factory=VisualSettings)
    log: LogSettings = field(default_factory=LogSettings)
    # Every --camera-topic; empty: the one stream of ``topics.camera``. ``info_overrides``: --camera-info-topic
    # NAME=KEY entries (stream name, its CameraInfo topic).
    cameras: tuple[CameraSpec, ...] = ()
    info_overrides: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        self.streams()  # names and topics checked now (ConfigError)

    def streams(self) -> tuple[StreamTopics, ...]:
        """The camera streams and their topics. One stream keeps every topic as configured (the node as it
        always was); with several, each stream's outputs carry its name (:func:`stream_key`) and its
        CameraInfo topic is derived from its frame topic (:func:`derived_info_topic`) unless overridden."""
        cameras = self.cameras or (CameraSpec(self.topics.camera),)
        if len(cameras) > MAX_CAMERAS:
            raise ConfigError(f"--camera-topic: at most {MAX_CAMERAS} cameras, got {len(cameras)}")
        derived = derived_names(tuple(camera.topic for camera in cameras))
        names = tuple(camera.name or name for camera, name in zip(cameras, derived, strict=True))
        for camera, name in zip(cameras, names, strict=True):
            if not camera.topic:
                raise ConfigError(f"--camera-topic {name + '=' if camera.name else ''}: the topic is empty")
            if not name or any(c in STREAM_NAME_FORBIDDEN for c in name):
                raise ConfigError(f"--camera-topic {camera.topic!r}: stream name {name!r} must be one key segment "
                                  f"(no {STREAM_NAME_FORBIDDEN.strip()!r} or spaces); name it NAME=TOPIC")
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ConfigError(f"--camera-topic: stream names must be unique, {', '.join(duplicates)} appears more "
                              "than once; name them NAME=TOPIC")
        unknown = sorted({name for name, _ in self.info_overrides} - set(names))
        if unknown:
            raise ConfigError(f"--camera-info-topic: no camera stream named {', '.join(unknown)} "
                              f"(streams: {', '.join(names)})")
        overrides = dict(self.info_overrides)
        base = self.topics
        if len(cameras) == 1:
            only = replace(base, camera=cameras[0].topic, camera_info=overrides.get(names[0], base.camera_info))
            return (StreamTopics(names[0], only),)
        return tuple(StreamTopics(name, replace(
            base, camera=camera.topic,
            camera_info=overrides.get(name, derived_info_topic(camera.topic, base.camera_info)),
            detect=stream_key(base.detect, name), info=stream_key(base.info, name), mask=stream_key(base.mask, name),
            mask_compressed=stream_key(base.mask_compressed, name), output=stream_key(base.output, name),
            visual=stream_key(base.visual, name))) for camera, name in zip(cameras, names, strict=True))
