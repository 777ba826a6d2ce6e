"""``edgenode-view``: a live console view of what a node publishes (Detect and ModelInfo).

One line per Detect: frame stamp, boxes with label, score, track and pixel-free normalised box;
``--json`` prints the same as JSON lines for scripts. Exits after ``--frames`` messages, or with
status 1 when nothing arrives for ``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from edgenode.adapters.zenoh_bus import Received, ZenohBus, ZenohConfigError
from edgenode.config import ZENOH_MODES, ZenohSettings
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
    settings = ZenohSettings(mode=args.mode, connect=tuple(args.connect), listen=tuple(args.listen),
                             multicast_scouting=not args.no_multicast_scouting)
    try:
        bus = ZenohBus.open(settings)
    except ZenohConfigError as exc:
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
                        print(f"model: {model}", flush=True)
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edgenode-view", description=__doc__.split("\n\n")[0])
    parser.add_argument("--detect-topic", default="rt/model/boxes2d")
    parser.add_argument("--info-topic", default="rt/model/info")
    parser.add_argument("--frames", type=int, default=0, help="stop after this many Detect messages (0 = never)")
    parser.add_argument("--timeout", type=float, default=30.0, help="give up after this many quiet seconds")
    parser.add_argument("--json", action="store_true", help="JSON lines instead of text")
    parser.add_argument("--mode", choices=ZENOH_MODES, default=None)
    parser.add_argument("--connect", action="append", default=[])
    parser.add_argument("--listen", action="append", default=[])
    parser.add_argument("--no-multicast-scouting", action="store_true")
    try:
        return asyncio.run(watch(parser.parse_args(argv)))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
