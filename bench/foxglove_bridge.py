"""edgenode-foxglove under a camera's load: latency it adds, its CPU share, and its memory with a slow client.

``python bench/run.py foxglove_bridge [--seconds=60] [--soak-minutes=10]``

(Not ``bench/foxglove.py``: the benchmarks' folder goes on ``sys.path``, where a module named
``foxglove`` would hide foxglove-sdk.)

A publisher process sends, 30 times a second, what a camera and the node publish: a 1920x1080
JPEG (``rt/camera/jpeg``), a Detect and an ImageAnnotations of 10 boxes and a ModelInfo of 80
labels, each stamped with CLOCK_REALTIME at its put. The bridge relays them to one client of the
Foxglove protocol (``tests/helpers/foxglove_client.py``), and a plain Zenoh subscriber in the same
process as the client receives them too.

- latency the bridge adds: Zenoh arrival in the bridge to the hand-over to foxglove-sdk's send
  queue (the bridge's own measure, in its stats line), and side by side in one run, publish to
  WebSocket receipt against publish to Zenoh receipt at the plain subscriber (the difference is the
  bridge plus the WebSocket hop);
- the bridge's CPU share (user + system time over wall time, 100 % = one core);
- then ``--soak-minutes`` with one client that reads a frame every 50 ms (far behind the ~120
  messages a second offered): the bridge's resident memory every 10 s.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
FPS = 30.0


# -- the publisher (a process of its own: python bench/foxglove_bridge.py publish PORT SECONDS) ----------

def publish(port: int, seconds: float) -> None:
    import numpy as np

    import edgenode.messages as m
    from edgenode.adapters.zenoh_bus import ZenohBus
    from edgenode.config import ZenohSettings
    from edgenode.tools.camera.scene import SyntheticScene
    from edgenode.tools.camera.simulator import jpeg_message

    bus = ZenohBus.open(ZenohSettings(listen=(f"tcp/127.0.0.1:{port}",), multicast_scouting=False))
    rgb = SyntheticScene(1920, 1080, seed=1).render(10)
    jpeg = m.decode(m.CompressedImage, jpeg_message(rgb, 1, "camera", 80)).data
    boxes = [m.Box(0.1 + i * 0.08, 0.5, 0.05, 0.1, f"label{i}", 0.9,
                   track=m.Track(f"{i:08d}-0000-4000-8000-000000000000", 5, m.Time(1, 0))) for i in range(10)]
    labels = [f"class{i}" for i in range(80)]
    pubs = {name: bus.publication(f"rt/{name}", m.schema_name(cls)) for name, cls in (
        ("camera/jpeg", m.CompressedImage), ("model/boxes2d", m.Detect), ("model/visualization", m.ImageAnnotations),
        ("model/info", m.ModelInfo))}
    period, next_tick, end = 1.0 / FPS, time.monotonic(), time.monotonic() + seconds
    white = m.Color(1, 1, 1, 1)
    while time.monotonic() < end:
        stamp = m.Time.from_nanos(time.time_ns())
        header = m.Header(stamp, "camera")
        points = [m.PointsAnnotation(stamp, 0, [], white, [], m.Color(), 2.0)] + [
            m.PointsAnnotation(stamp, 2, [m.Point2(100 + 50 * i, 300), m.Point2(150 + 50 * i, 300),
                                          m.Point2(150 + 50 * i, 400), m.Point2(100 + 50 * i, 400)], white,
                               [white] * 4, m.Color(), 2.0) for i in range(10)]
        texts = [m.TextAnnotation(stamp, m.Point2(100 + 50 * i, 300), f"label{i}", 21.6, white, m.Color())
                 for i in range(10)]
        pubs["camera/jpeg"].put(m.encode(m.CompressedImage(header, "jpeg", jpeg)))
        pubs["model/boxes2d"].put(m.encode(m.Detect(header, m.Time(0, 3_000_000), m.Time(0, 20_000_000),
                                                    m.Time(0, 1_000_000), boxes)))
        pubs["model/visualization"].put(m.encode(m.ImageAnnotations([], points, texts)))
        pubs["model/info"].put(m.encode(m.ModelInfo(header, [1, 640, 640, 3], 2, [1, 84, 8400], 8, labels,
                                                    "Detection", "TFLite", "yolov8s")))
        next_tick += period
        delay = next_tick - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            next_tick = time.monotonic()
    bus.close()
    del np


# -- choosing the simulator's JPEG encoder -------------------------------------------------------------

def jpeg_encoders(repeats: int = 30) -> tuple[list[list[object]], dict[str, Any]]:
    """simplejpeg against Pillow (both have aarch64 wheels) on the synthetic scene, interleaved."""
    import io

    import simplejpeg
    from common import interleaved

    from edgenode.tools.camera.scene import SyntheticScene

    try:
        from PIL import Image
    except ImportError:
        Image = None  # noqa: N806
    rows, data = [], {}
    for width, height in ((1280, 720), (1920, 1080)):
        rgb = SyntheticScene(width, height, seed=1).render(10)
        contenders = {"simplejpeg": lambda rgb=rgb: simplejpeg.encode_jpeg(rgb, quality=80, colorspace="RGB",
                                                                            colorsubsampling="420", fastdct=True)}
        if Image is not None:
            def pillow(rgb: Any = rgb) -> bytes:
                out = io.BytesIO()
                Image.fromarray(rgb).save(out, "JPEG", quality=80, subsampling=2)
                return out.getvalue()
            contenders["Pillow"] = pillow
        timings = interleaved(contenders, repeats)
        simple = timings["simplejpeg"].median
        pil = timings["Pillow"].median if "Pillow" in timings else float("nan")
        rows.append([f"{width}x{height}", f"{simple * 1e3:.2f}", f"{pil * 1e3:.2f}", f"{pil / simple:.2f}x",
                     f"{len(contenders['simplejpeg']()) / 1024:.0f}"])
        data[f"{width}x{height}"] = {name: t.samples for name, t in timings.items()}
    return rows, data


# -- the measurement ---------------------------------------------------------------------------------

def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def stats_lines(log: Path) -> list[dict[str, Any]]:
    lines = []
    for text in log.read_text(errors="replace").splitlines():
        if text.startswith("{") and '"stats"' in text:
            try:
                lines.append(json.loads(text))
            except json.JSONDecodeError:
                continue
    return lines


class PlainSubscriber:
    """The same messages straight from Zenoh: (topic, receipt, stamp) via the layout walk of edgenode."""

    def __init__(self, port: int) -> None:
        import zenoh

        from edgenode.foxglove.relay import SchemaBook
        from edgenode.messages.ros2msg import schema_from_encoding
        from edgenode.resources import message_definitions, message_texts

        self._book, self._schema_of = SchemaBook(message_texts(), message_definitions()), schema_from_encoding
        config = zenoh.Config()
        config.insert_json5("connect/endpoints", json.dumps([f"tcp/127.0.0.1:{port}"]))
        config.insert_json5("scouting/multicast/enabled", "false")
        self.session = zenoh.open(config)
        self.arrivals: list[tuple[str, int, int]] = []
        self._lock = threading.Lock()
        self._sub = self.session.declare_subscriber("rt/**", self._on)

    def _on(self, sample: Any) -> None:
        now = time.time_ns()
        name = self._schema_of(str(sample.encoding))
        if name is None:
            return
        stamp = self._book.get(name).shape.inspect(sample.payload.to_bytes()).stamp_ns
        with self._lock:
            self.arrivals.append((str(sample.key_expr), now, stamp or 0))

    def between(self, start: int, end: int) -> list[tuple[str, int, int]]:
        with self._lock:
            return [a for a in self.arrivals if start <= a[1] < end]

    def close(self) -> None:
        self._sub.undeclare()
        self.session.close()


def main(argv: list[str]) -> str:
    parser = argparse.ArgumentParser(prog="bench/run.py foxglove_bridge")
    parser.add_argument("--seconds", type=float, default=60.0, help="relay measurement window")
    parser.add_argument("--soak-minutes", type=float, default=10.0, help="slow-client memory run")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from common import header, save, table
    from endtoend.measure import free_port, percentile, process_cpu_seconds

    from tests.helpers.foxglove_client import FoxgloveClient

    command = ["python", "bench/run.py", "foxglove_bridge", *argv]
    heading = header("Foxglove bridge: 30 fps of JPEG, Detect, ImageAnnotations, ModelInfo to one client",
                     command)  # the revision and date the run starts with
    folder = Path(tempfile.mkdtemp(prefix="bench-foxglove-"))
    zenoh_port, port = free_port(), free_port()
    total = 15 + args.seconds + args.soak_minutes * 60 + 30
    publisher = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "publish", str(zenoh_port),
                                  str(total)], cwd=REPO)
    log = folder / "bridge.log"
    with log.open("wb") as out:
        bridge = subprocess.Popen([sys.executable, "-m", "edgenode.foxglove", "--connect",
                                   f"tcp/127.0.0.1:{zenoh_port}", "--no-multicast-scouting", "--port", str(port),
                                   "--log-format", "json", "--stats-interval", "5"],
                                  stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    plain = PlainSubscriber(zenoh_port)
    data: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + 60
        client = None
        while client is None:
            try:
                client = FoxgloveClient(f"ws://127.0.0.1:{port}")
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        topics = ("/camera/jpeg", "/model/boxes2d", "/model/visualization", "/model/info")
        client.pump(lambda: all(client.messages[t] for t in topics), 60, "every topic")
        client.read_for(5.0)  # warm up
        start_ns, cpu0, wall0 = time.time_ns(), process_cpu_seconds(bridge.pid), time.monotonic()
        client.read_for(args.seconds)
        end_ns, cpu1, wall1 = time.time_ns(), process_cpu_seconds(bridge.pid), time.monotonic()
        client.close()
        relayed = [r for t in topics for r in client.messages[t] if start_ns <= r.received_ns < end_ns]
        ws_ms = [(r.received_ns - r.log_time_ns) / 1e6 for r in relayed]
        direct = [a for a in plain.between(start_ns, end_ns) if a[2]]
        zenoh_ms = [(now - stamp) / 1e6 for _, now, stamp in direct]
        stats = [s for s in stats_lines(log) if "latency_ms_p50" in s]
        cpu_share = 100 * (cpu1 - cpu0) / (wall1 - wall0)
        jpeg_kb = len(client.messages["/camera/jpeg"][-1].payload) / 1024
        data["relay"] = {"messages": len(relayed), "rate": len(relayed) / (wall1 - wall0),
                         "ws_ms": [percentile(ws_ms, q) for q in (50, 99)],
                         "zenoh_ms": [percentile(zenoh_ms, q) for q in (50, 99)],
                         "bridge_ms": [stats[-1]["latency_ms_p50"], stats[-1]["latency_ms_p99"]] if stats else None,
                         "cpu_percent": cpu_share, "jpeg_kb": jpeg_kb}

        # A client that reads one frame every 50 ms, for --soak-minutes, while the bridge's memory is watched.
        slow = FoxgloveClient(f"ws://127.0.0.1:{port}", ping_interval=None)  # its pongs would wait behind data
        slow.pump(lambda: all(slow.messages[t] for t in topics), 60, "every topic (slow client)")
        samples: list[tuple[float, float]] = []
        ages: list[float] = []
        began = time.monotonic()
        next_sample = began
        while time.monotonic() - began < args.soak_minutes * 60:
            if time.monotonic() >= next_sample:
                samples.append((time.monotonic() - began, rss_mb(bridge.pid)))
                next_sample += 10
            slow.pump(lambda: any(slow.messages.values()), 10, "a frame")
            newest = max((v[-1] for v in slow.messages.values() if v), key=lambda r: r.received_ns)
            ages.append((newest.received_ns - newest.log_time_ns) / 1e6)
            for received in slow.messages.values():
                received.clear()  # the client keeps nothing: only the bridge's memory is measured
            time.sleep(0.05)  # the slow reader's pace
        slow.close()
        samples.append((time.monotonic() - began, rss_mb(bridge.pid)))
        data["soak"] = {"rss_mb": samples, "age_ms": [percentile(ages, q) for q in (50, 99)], "reads": len(ages)}
    finally:
        plain.close()
        for process in (bridge, publisher):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
    relay, soak = data["relay"], data["soak"]
    rss = [mb for _, mb in soak["rss_mb"]]
    first_minute = [mb for t, mb in soak["rss_mb"] if t <= 60] or rss[:1]
    rows = [
        ["bridge: Zenoh arrival -> foxglove-sdk send queue", *(f"{v:.2f}" for v in relay["bridge_ms"] or (0, 0))],
        ["publish -> WebSocket receipt (through the bridge)", *(f"{v:.2f}" for v in relay["ws_ms"])],
        ["publish -> Zenoh receipt (plain subscriber, same run)", *(f"{v:.2f}" for v in relay["zenoh_ms"])],
        ["difference: the bridge plus the WebSocket hop", *(f"{a - b:.2f}" for a, b in zip(relay["ws_ms"],
                                                                                             relay["zenoh_ms"],
                                                                                             strict=True))],
    ]
    markdown = (heading
                + f"\nRelayed {relay['messages']} messages in {args.seconds:g} s ({relay['rate']:.0f}/s; JPEG "
                  f"{relay['jpeg_kb']:.0f} KiB, 1920x1080). The machine is shared with other sessions.\n\n"
                + table(["latency", "p50 ms", "p99 ms"], rows)
                + f"\nBridge CPU while relaying: **{relay['cpu_percent']:.1f} %** of one core.\n\n"
                + f"Slow client ({soak['reads']} reads over {args.soak_minutes:g} min, one every 50 ms): bridge RSS "
                  f"{min(first_minute):.1f} MB in the first minute, {max(rss):.1f} MB at most, {rss[-1]:.1f} MB at the "
                  f"end. What it read was {soak['age_ms'][0] / 1e3:.1f} s old (p50; "
                  f"{soak['age_ms'][1] / 1e3:.1f} s p99): the bridge queues at most 64 messages for it and drops "
                  "the oldest, but the TCP buffers of the connection (megabytes on loopback) and the client's own "
                  "queue hold more.\n")
    encoder_rows, data["jpeg"] = jpeg_encoders()
    markdown += ("\nThe camera simulator's JPEG encoder, chosen here: quality 80, 4:2:0, the synthetic scene, "
                 "medians of 30 interleaved runs.\n\n"
                 + table(["frame", "simplejpeg ms", "Pillow ms", "Pillow / simplejpeg", "JPEG KiB"], encoder_rows))
    save("foxglove_bridge", markdown, data)
    return markdown


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "publish":
    publish(int(sys.argv[2]), float(sys.argv[3]))
elif __name__ == "__main__":
    print(main(sys.argv[1:]))
