"""Command line of ``edgenode``: EdgeFirst Model Node flags, each with its environment variable.

Precedence: flag, then environment variable, then default. A bad value from either gives one
line on stderr naming the flag (and variable) and exit code 2. ``edgenode status`` (the fleet's
status, :mod:`edgenode.fleet.command`) is the one subcommand; it takes the zenoh flags below.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from edgenode import __version__
from edgenode.config import (
    DECODERS,
    ENGINES,
    LABEL_MODES,
    LOG_FORMATS,
    LOG_LEVELS,
    MAX_FRAME_BYTES,
    NMS_MODES,
    PREPROCESS_BACKENDS,
    RESIZE_MODES,
    SCHEDULES,
    ZENOH_MODES,
    CameraSpec,
    ConfigError,
    DecodeSettings,
    LogSettings,
    MaskSettings,
    ModelSettings,
    NodeConfig,
    PreprocessSettings,
    Topics,
    TrackSettings,
    VisualSettings,
    ZenohSettings,
    parse_camera,
)
from edgenode.entry import EarlyStop

TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("", "false", "0", "no", "off")


class UsageError(Exception):
    """A command line or environment value the node cannot start with."""


def parse_bool(text: str) -> bool:
    """EdgeFirst boolean: ``""``/false/0/no are false, true/1/yes are true (any case)."""
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"expected true/false, 1/0 or yes/no, got {text!r}")


def split_list(text: str) -> list[str]:
    """Split a list value: on commas when it has any (so names may hold spaces), else on whitespace."""
    parts = text.split(",") if "," in text else text.split()
    return [part.strip() for part in parts if part.strip()]


def parse_cfg(text: str) -> tuple[str, str]:
    """A zenoh ``KEY:VALUE`` override; VALUE is JSON5 (``--cfg 'connect/endpoints:["tcp/1.2.3.4:7447"]'``)."""
    key, sep, value = text.partition(":")
    if not sep or not key.strip() or not value.strip():
        raise ValueError(f"expected KEY:VALUE, got {text!r}")
    return key.strip(), value.strip()


def _number(kind: Callable[[str], Any], name: str) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            value = kind(text.strip())
        except ValueError:
            raise ValueError(f"expected {name}, got {text!r}") from None
        if not math.isfinite(value):
            raise ValueError(f"expected a finite number, got {text!r}")
        return value

    return convert


def batch_setting(text: str) -> int:
    """``--batch``: ``auto`` (0) or a number of frames per invoke (raises ConfigError)."""
    word = text.strip().lower()
    if word == "auto":
        return 0
    try:
        frames = int(word)
    except ValueError:
        frames = 0
    if frames < 1:
        raise ConfigError(f"--batch must be auto or a number of frames (1 or more), got {text!r}")
    return frames


as_float = _number(float, "a number")
as_int = _number(int, "an integer")

# RUST_LOG, read as env_logger and tracing's EnvFilter read it: comma-separated directives, each a bare
# level (the global level), a target (everything of that target) or target=level; a trailing /regex is
# env_logger's message filter (not supported: dropped). Levels by name or tracing's number (0 = off).
RUST_LEVELS = {"off": "critical", "error": "error", "warn": "warning", "info": "info", "debug": "debug",
               "trace": "debug", "0": "critical", "1": "error", "2": "warning", "3": "info", "4": "debug", "5": "debug"}
OUR_TARGETS = ("edgefirst_model", "edgenode")  # the reference node's target, and ours


@dataclass(frozen=True)
class RustLog:
    """What RUST_LOG says: our level (None when it names neither a global level nor our target), zenoh's
    own directives (targets starting with ``zenoh``, for zenoh's logger) and the directives ignored."""

    level: str | None
    zenoh: str
    ignored: tuple[str, ...]


def parse_rust_log(text: str) -> RustLog:
    """Read RUST_LOG; the most specific directive naming our target wins over the global level."""
    global_level: str | None = None
    ours: tuple[int, str] | None = None
    zenoh: list[str] = []
    ignored: list[str] = []
    for raw in text.split("/", 1)[0].split(","):
        directive = raw.strip()
        if not directive:
            continue
        target, sep, word = directive.rpartition("=")
        if not sep:
            if directive.lower() in RUST_LEVELS:
                global_level = RUST_LEVELS[directive.lower()]
                continue
            target, word = directive, "trace"
        name = target.split("[", 1)[0].strip()
        if not name or word.strip().lower() not in RUST_LEVELS:
            ignored.append(directive)
            continue
        word = word.strip().lower()
        if name.startswith("zenoh"):
            zenoh.append(f"{target.strip()}={word}")
        if any(our.startswith(name) for our in OUR_TARGETS) and (ours is None or len(name) >= ours[0]):
            ours = (len(name), RUST_LEVELS[word])
    return RustLog(ours[1] if ours else global_level, ",".join(zenoh), tuple(ignored))


@dataclass(frozen=True)
class Option:
    """One flag: its names, environment variable, converter, default and help."""

    flags: tuple[str, ...]
    env: str | None
    convert: Callable[[str], Any] | None
    default: Any
    help: str
    group: str
    kind: str = "value"  # value | bool | list | append
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    env_split: Callable[[str], list[str]] = split_list

    @property
    def dest(self) -> str:
        return self.flags[-1].lstrip("-").replace("-", "_")


def _opt(*flags: str, env: str | None, default: Any, help: str, group: str, convert: Callable[[str], Any] | None = str,
         kind: str = "value", choices: tuple[str, ...] | None = None, metavar: str | None = None,
         env_split: Callable[[str], list[str]] = split_list) -> Option:
    return Option(tuple(flags), env, convert, default, help, group, kind, choices, metavar, env_split)


G_MODEL, G_TOPICS, G_DECODE, G_TRACK, G_MASK, G_VISUAL, G_ZENOH, G_LOG = (
    "model", "topics", "decoder", "tracker", "masks", "visualization", "zenoh", "logging"
)
GROUP_TITLES = {
    G_MODEL: "model and runtime",
    G_TOPICS: "topics (an empty topic disables that publication)",
    G_DECODE: "decoder",
    G_TRACK: "tracker",
    G_MASK: "segmentation masks",
    G_VISUAL: "visualization",
    G_ZENOH: "zenoh",
    G_LOG: "logging",
}

OPTIONS: tuple[Option, ...] = (
    # model and runtime
    _opt("-m", "--model", env="MODEL", default=None, group=G_MODEL, metavar="FILE",
         help="TFLite model to run (required)"),
    _opt("--edgefirst-config", env="EDGEFIRST_CONFIG", default=None, group=G_MODEL, metavar="FILE",
         help="YAML or JSON decoder config overriding the model's embedded edgefirst.yaml (a regular file of at "
              "most 1 MiB)"),
    _opt("--engine", env="ENGINE", default="npu", group=G_MODEL, choices=ENGINES,
         help="npu loads the NPU delegate (falls back to CPU with a log line); cpu runs XNNPACK"),
    _opt("--delegate", env="DELEGATE", default="", group=G_MODEL, metavar="NAME|PATH",
         help="delegate to load: a descriptor name from delegates/ (vx, ethosu, neutron) or a .so path; "
              "overrides --engine"),
    _opt("--threads", env="NUM_THREADS", default=0, convert=as_int, group=G_MODEL, metavar="N",
         help="CPU threads for the TFLite interpreter; 0 = all cores (more than the cores is cut to them, "
              "with a warning)"),
    _opt("--schedule", env="SCHEDULE", default="auto", group=G_MODEL, choices=SCHEDULES,
         help="overlap: prepare the next frame (taken just in time) and publish the last one while the model "
              "runs (an NPU, or free cores); serial: only between invokes, so they never slow a model using "
              "every core; auto: serial when the model runs on the CPU with every core, else overlap"),
    _opt("--batch", env="BATCH", default="auto", group=G_MODEL, metavar="auto|N",
         help="frames of different cameras per invoke, when the model takes a batch or its input can be "
              "resized: auto measures both at load and batches only when it is faster per frame; 1 never "
              "batches"),
    _opt("--cache-dir", env="CACHE_DIR", default=None, group=G_MODEL, metavar="DIR",
         help="where the NPU keeps compiled graphs between starts (default $CACHE_DIRECTORY from systemd, "
              "else ~/.cache/edgenode)"),
    _opt("--decoder-model", env="DECODER_MODEL", default="", group=G_MODEL, choices=DECODERS,
         help="decoder family, overriding the model config's decoder_version (default: the config's, "
              "else guessed from the output shapes)"),
    _opt("--ssd-model", env="SSD_MODEL", default=False, convert=parse_bool, kind="bool", group=G_MODEL,
         help="the model outputs decoded boxes [1,N,1,4] and scores [1,N,C] (SSD style)"),
    _opt("--resize", env="RESIZE", default="stretch", group=G_MODEL, choices=RESIZE_MODES,
         help="stretch the frame to the model input, or letterbox it (pad 114) keeping its aspect"),
    _opt("--preprocess", env="PREPROCESS", default="auto", group=G_MODEL, choices=PREPROCESS_BACKENDS,
         help="image conversion: G2D when available (auto), G2D only, or CPU only"),
    _opt("--max-frame-bytes", env="MAX_FRAME_BYTES", default=MAX_FRAME_BYTES, convert=as_int, group=G_MODEL,
         metavar="BYTES", help="largest camera frame taken (default: 4096x3072 RGBA, 48 MiB); a larger one is "
                               "skipped and counted (too_large) before its fd is touched"),
    # topics
    _opt("--camera-topic", env="CAMERA_TOPIC", default=(CameraSpec("rt/camera/dma"),), convert=parse_camera,
         kind="append", group=G_TOPICS, metavar="[NAME=]KEY",
         help="camera frames (edgefirst_msgs/DmaBuffer or CameraFrame); repeat it (env comma-separated) for "
              "several cameras through one model, each stream named NAME or after its topic"),
    _opt("--camera-info-topic", env="CAMERA_INFO_TOPIC", default=("rt/camera/info",), kind="append",
         group=G_TOPICS, metavar="[NAME=]KEY",
         help="camera resolution (sensor_msgs/CameraInfo), read for --visualization; with several cameras each "
              "stream's is its frame topic with this key's last segment, NAME=KEY sets one stream's"),
    _opt("--detect-topic", env="DETECT_TOPIC", default="rt/model/boxes2d", group=G_TOPICS, metavar="KEY",
         help="boxes (edgefirst_msgs/Detect)"),
    _opt("--info-topic", env="INFO_TOPIC", default="rt/model/info", group=G_TOPICS, metavar="KEY",
         help="model description, every frame (edgefirst_msgs/ModelInfo)"),
    _opt("--mask-topic", env="MASK_TOPIC", default="rt/model/mask", group=G_TOPICS, metavar="KEY",
         help="semantic mask (edgefirst_msgs/Mask)"),
    _opt("--mask-compressed-topic", env="MASK_COMPRESSED_TOPIC", default="rt/model/mask_compressed",
         group=G_TOPICS, metavar="KEY", help="zstd semantic mask, with --mask-compression"),
    _opt("--output-topic", env="OUTPUT_TOPIC", default="", group=G_TOPICS, metavar="KEY",
         help="everything in one message (edgefirst_msgs/Model, EdgeFirst 2.8: rt/model/output); off by default"),
    _opt("--visual-topic", env="VISUAL_TOPIC", default="rt/model/visualization", group=G_TOPICS, metavar="KEY",
         help="overlays (foxglove_msgs/ImageAnnotations), with --visualization"),
    # decoder
    _opt("-t", "--threshold", env="THRESHOLD", default=0.45, convert=as_float, group=G_DECODE, metavar="SCORE",
         help="minimum box score"),
    _opt("-i", "--iou", env="IOU", default=0.45, convert=as_float, group=G_DECODE, metavar="IOU",
         help="NMS overlap above which the lower-scored box is dropped"),
    _opt("--max-boxes", env="MAX_BOXES", default=100, convert=as_int, group=G_DECODE, metavar="N",
         help="most boxes per frame, highest scores first"),
    _opt("--label-offset", env="LABEL_OFFSET", default=0, convert=as_int, group=G_DECODE, metavar="N",
         help="added to each class index before the label lookup (for label files with a background row)"),
    _opt("--classes", env="CLASSES", default=(), convert=str, kind="list", group=G_DECODE, metavar="NAME",
         help="keep only boxes of these labels (space- or comma-separated)"),
    _opt("--nms", env="NMS", default="", group=G_DECODE, choices=NMS_MODES,
         help="class-agnostic or class-aware NMS (default: the model config's, else agnostic)"),
    # tracker
    _opt("--track", env="TRACK", default=False, convert=parse_bool, kind="bool", group=G_TRACK,
         help="follow objects across frames with ByteTrack"),
    _opt("--track-extra-lifespan", env="TRACK_EXTRA_LIFESPAN", default=0.5, convert=as_float, group=G_TRACK,
         metavar="SECONDS", help="how long a lost track is kept, in camera time"),
    _opt("--track-high-conf", env="TRACK_HIGH_CONF", default=0.7, convert=as_float, group=G_TRACK,
         metavar="SCORE", help="score for the first association pass and for starting new tracks"),
    _opt("--track-score", env="TRACK_SCORE", default=0.1, convert=as_float, group=G_TRACK, metavar="SCORE",
         help="decoder threshold while tracking, so low-score boxes can keep tracks alive (EdgeFirst 2.8)"),
    _opt("--track-iou", env="TRACK_IOU", default=0.25, convert=as_float, group=G_TRACK, metavar="IOU",
         help="minimum overlap between a track's prediction and a box to match them"),
    _opt("--track-update", env="TRACK_UPDATE", default=0.25, convert=as_float, group=G_TRACK, metavar="RATE",
         help="Kalman innovation scale (how far a match pulls the track)"),
    # masks
    _opt("--mask-compression", env="MASK_COMPRESSION", default=False, convert=parse_bool, kind="bool",
         group=G_MASK, help="also publish the semantic mask zstd-compressed"),
    _opt("--mask-compression-level", env="MASK_COMPRESSION_LEVEL", default=1, convert=as_int, group=G_MASK,
         metavar="LEVEL", help="zstd level, -7..22"),
    _opt("--mask-classes", env="MASK_CLASSES", default=(), convert=as_int, kind="list", group=G_MASK,
         metavar="INDEX", help="publish only these class channels of the semantic mask"),
    # visualization
    _opt("--visualization", env="VISUALIZATION", default=False, convert=parse_bool, kind="bool",
         group=G_VISUAL, help="publish Foxglove image annotations"),
    _opt("--labels", env="LABELS", default="label", group=G_VISUAL, choices=LABEL_MODES,
         help="annotation text per box"),
    # zenoh
    _opt("--mode", env="MODE", default=None, group=G_ZENOH, choices=ZENOH_MODES,
         help="zenoh session mode (default peer, or the --zenoh-config file's)"),
    _opt("--connect", env="CONNECT", default=(), kind="append", group=G_ZENOH, metavar="ENDPOINT",
         help="endpoint to connect to, e.g. tcp/192.168.1.10:7447 (repeatable; env comma-separated)"),
    _opt("--listen", env="LISTEN", default=(), kind="append", group=G_ZENOH, metavar="ENDPOINT",
         help="endpoint to listen on (repeatable; env comma-separated)"),
    _opt("--no-multicast-scouting", env="NO_MULTICAST_SCOUTING", default=False, convert=parse_bool,
         kind="bool", group=G_ZENOH, help="do not discover peers by multicast"),
    _opt("--zenoh-config", env="ZENOH_CONFIG", default=None, group=G_ZENOH, metavar="FILE",
         help="zenoh JSON5 config file; the flags above and --cfg apply on top"),
    _opt("--zenoh-shared-memory", env="ZENOH_SHARED_MEMORY", default=False, convert=parse_bool, kind="bool",
         group=G_ZENOH, help="let zenoh use shared memory (/dev/shm) with local peers; off, since every peer "
                             "sending large payloads leaves 17 MiB mapped in the node"),
    _opt("--cfg", env="ZENOH_CFG", default=(), convert=parse_cfg, kind="append", group=G_ZENOH,
         metavar="KEY:VALUE", env_split=lambda text: [p for p in text.split(";") if p.strip()],
         help="zenoh config override, VALUE in JSON5, e.g. 'namespace:\"cam1\"' (repeatable; env ';'-separated)"),
    # logging
    _opt("--log-level", env="LOG_LEVEL", default="info", group=G_LOG, choices=LOG_LEVELS,
         help="least severe level logged (default: RUST_LOG's global or edgefirst_model level, else info; "
              "RUST_LOG's zenoh targets, e.g. zenoh=debug, turn on zenoh's own log lines)"),
    _opt("--log-format", env="LOG_FORMAT", default="auto", group=G_LOG, choices=LOG_FORMATS,
         help="console text, JSON lines, or auto: JSON under systemd, text otherwise"),
    _opt("--stats-interval", env="STATS_INTERVAL", default=10.0, convert=as_float, group=G_LOG, metavar="SECONDS",
         help="seconds between log lines with frames per second and per-stage times"),
    _opt("--tracy", env="TRACY", default=False, convert=parse_bool, kind="bool", group=G_LOG,
         help="profile: log every frame's stage timings (debug spans)"),
)
OPTIONS_BY_DEST = {option.dest: option for option in OPTIONS}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _describe(option: Option) -> str:
    extras = []
    if option.env:
        extras.append(f"env {option.env}")
    if option.kind != "bool" and option.default not in (None, (), ""):
        shown = ", ".join(map(str, option.default)) if isinstance(option.default, tuple) else option.default
        extras.append(f"default {shown}")
    return f"{option.help} [{', '.join(extras)}]" if extras else option.help


def build_parser(prog: str = "edgenode") -> argparse.ArgumentParser:
    """The argparse parser; defaults are resolved afterwards so env and defaults are checked alike."""
    parser = _Parser(
        prog=prog,
        description="AI inference node: camera DMA frames in over Zenoh, EdgeFirst detections, masks "
                    "and Foxglove annotations out.",
        epilog="Every flag also reads the environment variable shown (bools: true/1/yes, false/0/no/\"\"). "
               "The status of every node and camera reachable: edgenode status (see edgenode status --help).",
        formatter_class=lambda prog: argparse.HelpFormatter(prog, max_help_position=34, width=110),
    )
    parser.add_argument("--version", action="version", version=f"edgenode {__version__}")
    groups = {key: parser.add_argument_group(title) for key, title in GROUP_TITLES.items()}
    for option in OPTIONS:
        add_option(groups[option.group], option)
    return parser


def add_option(group: Any, option: Option) -> None:
    """Add ``option`` to an argparse parser or group (its value stays None unless given)."""
    common: dict[str, Any] = {"dest": option.dest, "default": None, "help": _describe(option)}
    if option.kind == "bool":
        group.add_argument(*option.flags, nargs="?", const="true", metavar="BOOL", **common)
    elif option.kind == "list":
        group.add_argument(*option.flags, nargs="+", action="extend", metavar=option.metavar, **common)
    elif option.kind == "append":
        group.add_argument(*option.flags, action="append", metavar=option.metavar, **common)
    else:
        group.add_argument(*option.flags, choices=option.choices, metavar=option.metavar, **common)


def _label(option: Option, from_env: bool) -> str:
    flag = option.flags[-1]
    return f"{option.env} (for {flag})" if from_env else flag


def _convert(option: Option, text: str, from_env: bool) -> Any:
    if option.choices is not None and text not in option.choices and not (text == "" and option.default == ""):
        raise UsageError(f"{_label(option, from_env)}: {text!r} is not one of {', '.join(option.choices)}")
    if option.convert is None:
        return text
    try:
        return option.convert(text)
    except ValueError as exc:
        raise UsageError(f"{_label(option, from_env)}: {exc}") from None


def resolve_values(args: argparse.Namespace, environ: Mapping[str, str],
                   options: Sequence[Option] = OPTIONS) -> dict[str, Any]:
    """Each option's value from its flag, else its env var, else its default, converted."""
    values: dict[str, Any] = {}
    for option in options:
        given = getattr(args, option.dest)
        from_env = given is None and option.env is not None and option.env in environ
        if given is None and not from_env:
            values[option.dest] = option.default
            continue
        if option.kind in ("list", "append"):
            if from_env:
                texts = option.env_split(environ[option.env or ""])
            elif option.kind == "list":
                texts = [part for item in given for part in split_list(item)]
            else:
                texts = list(given)
            values[option.dest] = tuple(_convert(option, text, from_env) for text in texts)
            continue
        text = environ[option.env or ""] if from_env else given
        if from_env and text == "" and option.kind != "bool" and option.group != G_TOPICS:
            values[option.dest] = option.default  # EdgeFirst 2.8: an empty variable is unset
            continue
        values[option.dest] = _convert(option, text, from_env)
    return values


def default_cache_dir(environ: Mapping[str, str]) -> Path:
    """systemd's CacheDirectory= (``$CACHE_DIRECTORY``), else ``$XDG_CACHE_HOME``/edgenode or ~/.cache."""
    if environ.get("CACHE_DIRECTORY"):
        return Path(environ["CACHE_DIRECTORY"].split(":")[0])
    base = environ.get("XDG_CACHE_HOME") or str(Path(environ.get("HOME", "/tmp")) / ".cache")
    return Path(base) / "edgenode"


def _rust_log(environ: Mapping[str, str]) -> RustLog:
    """RUST_LOG read; the directives it ignores (as env_logger does) are said in one line on stderr."""
    rust = parse_rust_log(environ.get("RUST_LOG", ""))
    if rust.ignored:
        print(f"edgenode: warning: RUST_LOG: ignoring {', '.join(repr(d) for d in rust.ignored)} "
              "(not a level: off, error, warn, info, debug, trace)", file=sys.stderr)
    return rust


def _log_level(values: dict[str, Any], args: argparse.Namespace, environ: Mapping[str, str], rust: RustLog) -> str:
    """--log-level, else LOG_LEVEL, else RUST_LOG's level for us, else info."""
    if args.log_level is None and not environ.get("LOG_LEVEL"):
        return rust.level or "info"
    return str(values["log_level"])


def zenoh_settings(values: Mapping[str, Any]) -> ZenohSettings:
    """The zenoh group's values as settings (raises ConfigError)."""
    return ZenohSettings(
        mode=values["mode"],
        connect=values["connect"],
        listen=values["listen"],
        multicast_scouting=not values["no_multicast_scouting"],
        config_file=Path(values["zenoh_config"]) if values["zenoh_config"] else None,
        overrides=values["cfg"],
        shared_memory=values["zenoh_shared_memory"],
    )


def camera_info_topics(entries: Sequence[str]) -> tuple[str, tuple[tuple[str, str], ...]]:
    """``--camera-info-topic`` entries: the plain KEY (the last one given; default rt/camera/info, none given:
    disabled) and each ``NAME=KEY`` override."""
    plain = [entry for entry in entries if "=" not in entry]
    overrides = tuple((name.strip(), key.strip()) for name, _, key in
                      (entry.partition("=") for entry in entries if "=" in entry))
    if plain:
        return plain[-1].strip(), overrides
    return ("rt/camera/info" if overrides else ""), overrides


def config_from_values(values: dict[str, Any], cache_dir: Path, log_level: str, zenoh_log: str = "") -> NodeConfig:
    """Assemble the typed config; its sections validate ranges and raise ConfigError."""
    v = values
    cameras: tuple[CameraSpec, ...] = v["camera_topic"]
    info_topic, info_overrides = camera_info_topics(v["camera_info_topic"])
    return NodeConfig(
        model=ModelSettings(
            path=Path(v["model"]),
            edgefirst_config=Path(v["edgefirst_config"]) if v["edgefirst_config"] else None,
            engine=v["engine"],
            delegate=v["delegate"],
            threads=v["threads"],
            cache_dir=Path(v["cache_dir"]) if v["cache_dir"] else cache_dir,
            decoder=v["decoder_model"],
            ssd=v["ssd_model"],
            schedule=v["schedule"],
            batch=batch_setting(v["batch"]),
        ),
        topics=Topics(
            camera=cameras[0].topic if cameras else "",
            camera_info=info_topic,
            detect=v["detect_topic"],
            info=v["info_topic"],
            mask=v["mask_topic"],
            mask_compressed=v["mask_compressed_topic"],
            output=v["output_topic"],
            visual=v["visual_topic"],
        ),
        zenoh=zenoh_settings(v),
        decode=DecodeSettings(
            threshold=v["threshold"],
            iou=v["iou"],
            max_boxes=v["max_boxes"],
            label_offset=v["label_offset"],
            classes=v["classes"],
            nms=v["nms"],
        ),
        preprocess=PreprocessSettings(resize=v["resize"], backend=v["preprocess"],
                                      max_frame_bytes=v["max_frame_bytes"]),
        track=TrackSettings(
            enabled=v["track"],
            extra_lifespan=v["track_extra_lifespan"],
            high_conf=v["track_high_conf"],
            score=v["track_score"],
            iou=v["track_iou"],
            update=v["track_update"],
        ),
        mask=MaskSettings(
            compression=v["mask_compression"],
            compression_level=v["mask_compression_level"],
            classes=v["mask_classes"],
        ),
        visual=VisualSettings(enabled=v["visualization"], labels=v["labels"]),
        log=LogSettings(level=log_level, format=v["log_format"], profile=v["tracy"],
                        stats_interval=v["stats_interval"], zenoh=zenoh_log),
        cameras=cameras if len(cameras) > 1 or any(camera.name for camera in cameras) else (),
        info_overrides=info_overrides,
    )


def parse_config(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> NodeConfig:
    """Flags and environment to a validated NodeConfig; raises UsageError with a one-line reason."""
    environ = os.environ if environ is None else environ
    args = build_parser().parse_args(argv)
    values = resolve_values(args, environ)
    if not values["model"]:
        raise UsageError("no model: pass --model FILE or set MODEL")
    try:
        rust = _rust_log(environ)
        return config_from_values(values, default_cache_dir(environ), _log_level(values, args, environ, rust),
                                  rust.zenoh)
    except ConfigError as exc:
        message = str(exc)
        for option in OPTIONS:  # name the env var when the bad value came from it
            flag = option.flags[-1]
            if option.env and re.match(re.escape(flag) + r"\b", message) and getattr(args, option.dest) is None \
                    and option.env in environ:
                message = f"{message} (from {option.env})"
                break
        raise UsageError(message) from None


def main(argv: Sequence[str] | None = None, early: EarlyStop | None = None) -> int:
    """Read the command line and run the node (``edgenode status ...``: the fleet's status); ``early`` holds a
    stop asked for while starting (:mod:`edgenode.entry`, the console script, installs it before anything else)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["status"]:
        if early is not None:  # the status command stops on Ctrl-C as any command does
            early.restore()
            if early.requested:
                return 0
        from edgenode.fleet.command import main as status

        return status(arguments[1:])
    try:
        config = parse_config(arguments)
    except UsageError as exc:
        print(f"edgenode: error: {exc} (see edgenode --help)", file=sys.stderr)
        return 2
    if early is not None and early.requested:
        return 0
    from edgenode.app import run

    return run(config, early)


if __name__ == "__main__":
    sys.exit(main())
