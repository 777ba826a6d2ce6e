"""``edgenode-view``: a live console view of what a node publishes (Detect and ModelInfo).

One line per Detect: frame stamp, boxes with label, score, track and pixel-free normalised box;
``--json`` prints the same as JSON lines for scripts (and nothing else on stdout: the model's name
and any message goes to stderr). Exits after ``--frames`` messages, or with status 1 when nothing
arrives for ``--timeout`` seconds; a bad flag value exits 2 with one line naming it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import NoReturn

from edgenode.adapters.zenoh_bus import Received, ZenohBus, ZenohConfigError
from edgenode.config import ZENOH_MODES, ConfigError, ZenohSettings
from edgenode.logs import configure_logging
from edgenode.messages import CdrError, Detect, ModelInfo, decode


@dataclass(frozen=True)
class BoxSummary:
    label: str
    score: float
    track: str
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class FrameSummary:
    """What one Detect says, rounded for display."""

    stamp: float
    times_ms: tuple[float, float, float]
    boxes: list[BoxSummary]

    def text(self, fps: float) -> str:
        """One console line."""
        pre, invoke, post = self.times_ms
        parts = [f"{b.label}{'#' + b.track if b.track else ''} {b.score:.2f} {list(b.box)}" for b in self.boxes]
        head = (f"t={self.stamp:.3f} {fps:5.1f} fps  pre {pre} ms  invoke {invoke} ms  post {post} ms  "
                f"{len(self.boxes)} boxes")
        return head + ("  | " + " | ".join(parts) if parts else "")


def describe(detect: Detect) -> FrameSummary:
    """Summarise one Detect."""
    stamp = detect.header.stamp
    times = tuple(round(t.to_nanos() / 1e6, 1) for t in (detect.input_timestamp, detect.model_time, detect.output_time))
    boxes = [BoxSummary(box.label, round(box.score, 3), box.track.id[:8],
                        (round(box.center_x - box.width / 2, 3), round(box.center_y - box.height / 2, 3),
                         round(box.center_x + box.width / 2, 3), round(box.center_y + box.height / 2, 3)))
             for box in detect.boxes]
    return FrameSummary(round(stamp.sec + stamp.nanosec / 1e9, 3), (times[0], times[1], times[2]), boxes)


async def watch(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    try:
        settings = ZenohSettings(mode=args.mode, connect=tuple(args.connect), listen=tuple(args.listen),
                                 multicast_scouting=not args.no_multicast_scouting)
        bus = ZenohBus.open(settings)
    except (ConfigError, ZenohConfigError) as exc:
        print(f"edgenode-view: error: {exc}", file=sys.stderr)
        return 2
    queue: asyncio.Queue[tuple[str, Received]] = asyncio.Queue(maxsize=256)

    def deliver(topic: str) -> Callable[[Received], None]:
        def put(sample: Received) -> None:
            if not queue.full():
                queue.put_nowait((topic, sample))
        return put

    bus.subscribe(args.detect_topic, deliver("detect"), loop)
    bus.subscribe(args.info_topic, deliver("info"), loop)
    seen, last, model = 0, time.monotonic(), ""
    try:
        while args.frames == 0 or seen < args.frames:
            try:
                topic, sample = await asyncio.wait_for(queue.get(), args.timeout)
            except asyncio.TimeoutError:
                print(f"edgenode-view: nothing on {args.detect_topic} for {args.timeout:g} s", file=sys.stderr)
                return 1
            try:
                if topic == "info":
                    name = decode(ModelInfo, sample.payload).model_name
                    if name != model:
                        model = name
                        print(f"model: {model}", file=sys.stderr if args.json else sys.stdout, flush=True)
                    continue
                detect = decode(Detect, sample.payload)
            except CdrError as exc:
                print(f"edgenode-view: bad message on {topic}: {exc}", file=sys.stderr)
                continue
            now = time.monotonic()
            fps, last = 1.0 / max(now - last, 1e-6), now
            summary = describe(detect)
            print(json.dumps(asdict(summary)) if args.json else summary.text(fps), flush=True)
            seen += 1
    finally:
        bus.close()
    return 0


DESCRIPTION = ("Live console view of what an edgenode publishes: one line per Detect message (stamp, stage times, "
               "each box's label, track, score and corners), or JSON lines with --json.")


def seconds(text: str) -> float:
    """A number of seconds above 0 (finite)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, got {text!r}")
    return value


def frame_count(text: str) -> int:
    """0 (until stopped) or a positive number of frames."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (until stopped) or more, got {text!r}")
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line naming the flag (argparse's ``argument --x: ...``), exit 2."""
        self.exit(2, f"{self.prog}: error: {message.removeprefix('argument ')}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="edgenode-view", description=DESCRIPTION)
    add = parser.add_argument
    add("--detect-topic", default="rt/model/boxes2d", metavar="KEY",
        help="topic of the node's boxes (edgefirst_msgs/Detect) [default rt/model/boxes2d]")
    add("--info-topic", default="rt/model/info", metavar="KEY",
        help="topic of the node's model description (edgefirst_msgs/ModelInfo) [default rt/model/info]")
    add("--frames", type=frame_count, default=0, metavar="N", help="stop after N Detect messages (0 = until Ctrl-C)")
    add("--timeout", type=seconds, default=30.0, metavar="SECONDS",
        help="exit 1 when nothing arrives for this long [default 30]")
    add("--json", action="store_true", help="JSON lines on stdout instead of text (everything else on stderr)")
    add("--mode", choices=ZENOH_MODES, default=None, help="zenoh session mode [default peer]")
    add("--connect", action="append", default=[], metavar="ENDPOINT",
        help="zenoh endpoint to connect to, e.g. tcp/192.168.1.10:7447 (repeatable)")
    add("--listen", action="append", default=[], metavar="ENDPOINT", help="zenoh endpoint to listen on (repeatable)")
    add("--no-multicast-scouting", action="store_true", help="do not discover zenoh peers by multicast")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging("warning", "console", stream=sys.stderr)  # zenoh adapter warnings: never on stdout
    try:
        return asyncio.run(watch(args))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
