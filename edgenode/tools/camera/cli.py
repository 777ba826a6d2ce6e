"""Command line of ``edgenode-camera``: a camera simulator publishing frames over Zenoh."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from edgenode.cli import parse_cfg
from edgenode.config import ZENOH_MODES, ConfigError, ZenohSettings
from edgenode.core.pixels import FORMATS, FrameLayoutError, format_by_name
from edgenode.logs import configure_logging, get_logger
from edgenode.messages import CameraFrame, CameraInfo, CompressedImage, DmaBuffer, schema_name
from edgenode.tools.camera.scene import PALETTE, SyntheticScene
from edgenode.tools.camera.simulator import CameraSettings, CameraSimulator
from edgenode.tools.camera.sources import FrameSource, ImageSource, SceneSource, SourceError, VideoSource
from edgenode.tools.camera.status import CameraStatus


class UsageError(Exception):
    """A flag value the simulator cannot run with."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def parse_size(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT``."""
    width, sep, height = text.lower().partition("x")
    try:
        size = int(width), int(height)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    if not sep or min(size) < 16 or max(size) > 16384:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT between 16 and 16384, got {text!r}")
    return size


def _cfg(text: str) -> tuple[str, str]:
    try:
        return parse_cfg(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="edgenode-camera",
                     description="Camera simulator: publishes frames in shared buffers (memfd or /dev/dma_heap) "
                                 "as edgefirst_msgs/DmaBuffer (or CameraFrame), plus sensor_msgs/CameraInfo and "
                                 "JPEG frames (sensor_msgs/CompressedImage).")
    add = parser.add_argument
    add("--topic", default="rt/camera/dma", metavar="KEY", help="frame topic [default rt/camera/dma]")
    add("--info-topic", default="rt/camera/info", metavar="KEY",
        help="CameraInfo topic, empty to disable [default rt/camera/info]")
    add("--fourcc", default="YUYV", metavar="FORMAT",
        help=f"pixel format: {', '.join(f.name for f in FORMATS)} [default YUYV]")
    add("--size", default=(1920, 1080), type=parse_size, metavar="WxH", help="frame size [default 1920x1080]")
    add("--fps", default=30.0, type=float, help="frames per second [default 30]")
    add("--frames", default=0, type=int, metavar="N", help="stop after N frames; 0 = run until stopped")
    add("--ring", default=4, type=int, metavar="N", help="buffers in the ring (2..64) [default 4]")
    add("--camera-frame", action="store_true", help="publish edgefirst_msgs/CameraFrame instead of DmaBuffer")
    add("--frame-id", default="camera", help="header frame_id [default camera]")
    add("--heap", default="system", help="/dev/dma_heap heap to allocate from when present (else memfd) "
                                         "[default system]")
    add("--jpeg-topic", default="rt/camera/jpeg", metavar="KEY",
        help="where JPEG frames go (sensor_msgs/CompressedImage), empty to disable [default rt/camera/jpeg]")
    add("--jpeg-fps", default=10.0, type=float, help="JPEG frames per second, 0 = none [default 10]")
    add("--jpeg-quality", default=80, type=int, metavar="Q", help="JPEG quality 1..100 [default 80]")
    source = parser.add_argument_group("source (default: the synthetic scene)")
    source.add_argument("--images", nargs="+", type=Path, metavar="FILE",
                        help="still images shown in turn (PPM/PGM/.npy; PNG/JPEG with Pillow)")
    source.add_argument("--hold", default=1, type=int, metavar="N", help="frames per image [default 1]")
    source.add_argument("--video", type=Path, metavar="FILE", help="video file, looped (needs OpenCV)")
    source.add_argument("--seed", default=0, type=int, help="synthetic scene seed [default 0]")
    source.add_argument("--objects", default=4, type=int, metavar="N",
                        help=f"synthetic objects, 1..{len(PALETTE)} [default 4]")
    source.add_argument("--ground-truth", type=Path, metavar="FILE",
                        help="write each synthetic frame's object boxes (normalised x1,y1,x2,y2) as JSON lines")
    zenoh = parser.add_argument_group("zenoh")
    zenoh.add_argument("--mode", choices=ZENOH_MODES, help="session mode [default peer]")
    zenoh.add_argument("--connect", action="append", default=[], metavar="ENDPOINT", help="endpoint to connect to")
    zenoh.add_argument("--listen", action="append", default=[], metavar="ENDPOINT", help="endpoint to listen on")
    zenoh.add_argument("--no-multicast-scouting", action="store_true", help="do not discover peers by multicast")
    zenoh.add_argument("--zenoh-config", type=Path, metavar="FILE", help="zenoh JSON5 config file (flags apply on top)")
    zenoh.add_argument("--cfg", action="append", default=[], type=_cfg, metavar="KEY:VALUE",
                       help="zenoh config override, VALUE in JSON5, e.g. 'namespace:\"cam1\"' (repeatable)")
    add("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    return parser


def settings_from(args: argparse.Namespace) -> tuple[CameraSettings, ZenohSettings]:
    try:
        fmt = format_by_name(args.fourcc)
        width, height = args.size
        camera = CameraSettings(topic=args.topic, info_topic=args.info_topic, format=fmt, width=width,
                                height=height, fps=args.fps, frames=args.frames, ring=args.ring,
                                camera_frame=args.camera_frame, frame_id=args.frame_id, heap=args.heap,
                                jpeg_topic=args.jpeg_topic, jpeg_fps=args.jpeg_fps, jpeg_quality=args.jpeg_quality)
        camera.layout()
        zenoh = ZenohSettings(mode=args.mode, connect=tuple(args.connect), listen=tuple(args.listen),
                              multicast_scouting=not args.no_multicast_scouting, config_file=args.zenoh_config,
                              overrides=tuple(args.cfg))
    except (ValueError, FrameLayoutError, ConfigError) as exc:
        raise UsageError(str(exc)) from None
    if args.images and args.video:
        raise UsageError("choose --images or --video, not both")
    return camera, zenoh


def make_source(args: argparse.Namespace, camera: CameraSettings) -> FrameSource:
    try:
        if args.images:
            return ImageSource(list(args.images), camera.format, camera.width, camera.height, args.hold)
        if args.video:
            return VideoSource(args.video, camera.format, camera.width, camera.height)
        scene = SyntheticScene(camera.width, camera.height, count=args.objects, seed=args.seed)
        return SceneSource(scene, camera.format)
    except (SourceError, ValueError) as exc:
        raise UsageError(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``edgenode-camera``; 0 when stopped, 2 on a bad flag, 1 when Zenoh cannot start."""
    try:
        args = build_parser().parse_args(argv)
        camera, zenoh = settings_from(args)
        source = make_source(args, camera)
    except UsageError as exc:
        print(f"edgenode-camera: error: {exc}", file=sys.stderr)
        return 2
    configure_logging(args.log_level, "console")
    log: Any = get_logger("edgenode.camera")
    from edgenode.adapters.zenoh_bus import ZenohBus, ZenohConfigError

    stop = {"now": False}

    def request_stop(signum: int, frame: object) -> None:
        stop["now"] = True

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        bus = ZenohBus.open_when_reachable(zenoh, lambda: stop["now"], log.warning)
    except ZenohConfigError as exc:
        bus = None
        log.error(str(exc))
    if bus is None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        source.close()
        return 0 if stop["now"] else 1
    truth: TextIO | None = None
    simulator = None
    status = None
    try:
        kind = CameraFrame if camera.camera_frame else DmaBuffer
        frames = bus.publication(camera.topic, schema_name(kind))
        info = bus.publication(camera.info_topic, schema_name(CameraInfo)) if camera.info_topic else None
        jpeg = (bus.publication(camera.jpeg_topic, schema_name(CompressedImage))
                if camera.jpeg_topic and camera.jpeg_fps > 0 else None)
        truth = args.ground_truth.open("w", encoding="utf-8") if args.ground_truth else None
        simulator = CameraSimulator(camera, source, frames.put, info.put if info else None, truth,
                                    publish_jpeg=jpeg.put if jpeg else None)
        status = CameraStatus(bus, camera, simulator)
        published = simulator.run(lambda: stop["now"])
        log.info(f"stopped after {published} frames ({simulator.late} times behind schedule)")
        return 0
    except OSError as exc:
        log.error(f"camera simulator failed: {exc}")
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if status is not None:
            status.close()
        if simulator is not None:
            simulator.close()
        else:
            source.close()
        if truth is not None:
            truth.close()
        bus.close()


if __name__ == "__main__":
    sys.exit(main())
