"""edgenode-foxglove in real processes: camera simulator -> node -> bridge -> a Foxglove protocol client that
decodes every channel from its advertised ros2msg schema (mcap-ros2-support, not edgenode's classes), the
recording read back with the mcap package, and the faults: a busy port, unknown and malformed messages, a
client gone mid-message, kill -9, a full disk; and edgenode-demo --foxglove."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import simplejpeg
import zenoh

import edgenode.messages as m
from edgenode.tools.demo.shapes_model import build_shapes_model
from tests.helpers.foxglove_client import FoxgloveClient, abrupt_subscriber
from tests.helpers.mcap_files import read_complete_chunks, read_finished
from tests.helpers.processes import (
    PYTHON,
    Listener,
    Process,
    camera_args,
    endpoint,
    free_port,
    node_args,
    processes,
    start_router,
)
from tests.helpers.timing import scaled

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
WIDTH, HEIGHT = 960, 540
LIVE_TOPICS = ("/camera/jpeg", "/model/boxes2d", "/model/visualization", "/model/info")


def bridge_args(port: int, connect: list[int], *extra: str) -> list[str]:
    return ["edgenode.foxglove", *(arg for p in connect for arg in ("--connect", endpoint(p))),
            "--no-multicast-scouting", "--port", str(port), "--log-format", "json", *extra]


def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + scaled(seconds)
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {scaled(seconds):g} s waiting for {what}"
        time.sleep(0.05)


def events(process: Process) -> list[str]:
    return [str(line.get("event", "")) for line in process.json_lines()]


def said(process: Process, text: str) -> int:
    return sum(text in event for event in events(process))


def wait_said(process: Process, text: str, seconds: float = 20) -> None:
    wait_until(lambda: said(process, text) > 0 or process.popen.poll() is not None, seconds, repr(text))
    assert said(process, text), f"the process ended without saying {text!r}:\n{process.text()[-3000:]}"


class Publisher:
    """A zenoh peer in the test process that the bridge connects to."""

    def __init__(self, port: int) -> None:
        config = zenoh.Config()
        config.insert_json5("listen/endpoints", json.dumps([endpoint(port)]))
        config.insert_json5("scouting/multicast/enabled", "false")
        self.session = zenoh.open(config)

    def put(self, key: str, payload: bytes, encoding: str) -> None:
        self.session.put(key, payload, encoding=zenoh.Encoding(encoding))

    def close(self) -> None:
        self.session.close()


@contextlib.contextmanager
def publisher(port: int) -> Iterator[Publisher]:
    pub = Publisher(port)
    try:
        yield pub
    finally:
        pub.close()


def detect_payload(index: int, boxes: int = 3) -> bytes:
    stamp = m.Time(1_800_000_000 + index // 100, (index % 100) * 10_000_000 + 1)
    return m.encode(m.Detect(m.Header(stamp, "camera"), m.Time(0, 1000), m.Time(0, 2000), m.Time(0, 3000),
                             [m.Box(0.5, 0.5, 0.1, 0.1, f"box{index}", 0.9, track=m.Track("t", 1, stamp))] * boxes))


DETECT = "application/cdr;edgefirst_msgs/msg/Detect"


# -- camera -> node -> bridge -> client ----------------------------------------------------------

@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("foxglove_live")
    model = folder / "shapes.tflite"
    model.write_bytes(build_shapes_model())
    camera_port, node_port, port = free_port(), free_port(), free_port()
    truth = folder / "truth.jsonl"
    record = folder / "run.mcap"
    with processes(folder) as start:
        camera = start("camera", *camera_args(camera_port, "--size", f"{WIDTH}x{HEIGHT}", "--fps", "15",
                                              "--jpeg-fps", "15", "--ground-truth", str(truth)))
        node = start("node", *node_args(model, camera_port, node_port, "--track", "--visualization"))
        bridge = start("bridge", *bridge_args(port, [camera_port, node_port], "--record", str(record),
                                              "--stats-interval", "1"))
        listener = Listener(["rt/model/boxes2d", "rt/model/visualization", "rt/camera/jpeg"],
                            [camera_port, node_port])
        try:
            wait_said(bridge, "serving Foxglove on ws://127.0.0.1:")
            client = FoxgloveClient(f"ws://127.0.0.1:{port}")
            try:
                def enough() -> bool:
                    if not all(len(client.messages[t]) >= 20 for t in LIVE_TOPICS):
                        return False
                    recent = client.messages["/model/boxes2d"][-20:]  # from the model, not the loading heartbeat
                    if not all(client.decode("/model/boxes2d", r.payload).model_time.nanosec for r in recent):
                        return False
                    if listener.count("rt/model/boxes2d") < 10:  # the direct subscriber, to compare bytes
                        return False
                    jpeg = {r.log_time_ns for r in client.messages["/camera/jpeg"]}
                    return len(jpeg & {r.log_time_ns for r in client.messages["/model/visualization"]}) >= 5
                client.pump(enough, scaled(90), "20 messages on every live topic")
                wait_until(lambda: any(line.get("event") == "stats" and line.get("clients") == 1
                                       for line in bridge.json_lines()), 20, "a stats line with the client")
            finally:
                client.close()
            bridge_code = bridge.stop()
            node.stop()
            camera.stop()
            zenoh_samples = {key: [payload for payload, _ in listener.received(key)]
                             for key in ("rt/model/boxes2d", "rt/model/visualization", "rt/camera/jpeg")}
        finally:
            listener.close()
    return {"client": client, "zenoh": zenoh_samples, "bridge_code": bridge_code, "bridge": bridge,
            "record": record, "truth": [json.loads(line) for line in truth.read_text().splitlines()]}


def test_channels_are_advertised_with_ros2msg_schemas(live: dict[str, Any]) -> None:
    client: FoxgloveClient = live["client"]
    types = {c.topic: (c.schema_name, c.encoding, c.schema_encoding) for c in client.channels.values()}
    assert types["/camera/jpeg"] == ("sensor_msgs/msg/CompressedImage", "cdr", "ros2msg")
    assert types["/camera/info"] == ("sensor_msgs/msg/CameraInfo", "cdr", "ros2msg")
    assert types["/model/boxes2d"] == ("edgefirst_msgs/msg/Detect", "cdr", "ros2msg")
    assert types["/model/info"] == ("edgefirst_msgs/msg/ModelInfo", "cdr", "ros2msg")
    assert types["/model/visualization"] == ("foxglove_msgs/msg/ImageAnnotations", "cdr", "ros2msg")
    assert not any("dma" in topic for topic in types)  # the raw-frame announcements stay out


def test_the_camera_image_is_a_jpeg_of_the_stream_size(live: dict[str, Any]) -> None:
    client: FoxgloveClient = live["client"]
    for received in client.messages["/camera/jpeg"]:
        image = client.decode("/camera/jpeg", received.payload)
        data = bytes(image.data)
        assert image.format == "jpeg" and data[:2] == b"\xff\xd8"
        assert simplejpeg.decode_jpeg_header(data)[:2] == (HEIGHT, WIDTH)
        assert received.log_time_ns == image.header.stamp.sec * 10**9 + image.header.stamp.nanosec


def test_detect_and_annotations_are_the_node_bytes_and_decode_with_its_fields(live: dict[str, Any]) -> None:
    client: FoxgloveClient = live["client"]
    from edgefirst.schemas import edgefirst_msgs as em
    from edgefirst.schemas import foxglove_msgs as fm

    published = set(live["zenoh"]["rt/model/boxes2d"]) | set(live["zenoh"]["rt/model/visualization"])
    since = min(em.Detect.from_cdr(payload).stamp.to_nanos() for payload in live["zenoh"]["rt/model/boxes2d"])
    compared = [received.payload in published for topic in ("/model/boxes2d", "/model/visualization")
                for received in client.messages[topic] if received.log_time_ns > since]
    assert len(compared) >= 10 and all(compared)  # relayed unchanged: the node's own bytes
    for received in client.messages["/model/boxes2d"]:
        ours, reference = client.decode("/model/boxes2d", received.payload), em.Detect.from_cdr(received.payload)
        assert (ours.header.stamp.sec, ours.header.stamp.nanosec) == (reference.stamp.sec, reference.stamp.nanosec)
        assert received.log_time_ns == reference.stamp.to_nanos()
        assert ours.model_time.nanosec == reference.model_time.to_nanos()  # 0 while the model loads
        assert [(b.label, b.track.id, b.track.lifetime) for b in ours.boxes] == [
            (b.label, b.track_id, b.track_lifetime) for b in reference.boxes]
        assert [b.score for b in ours.boxes] == pytest.approx([b.score for b in reference.boxes])
    for received in client.messages["/model/visualization"]:
        ours = client.decode("/model/visualization", received.payload)
        reference = fm.ImageAnnotation.from_cdr(received.payload)
        assert [t.text for t in ours.texts] == [t.text for t in reference.texts]
        assert [[(p.x, p.y) for p in a.points] for a in ours.points] == [[(p.x, p.y) for p in a.points]
                                                                          for a in reference.points]
        stamp = ours.points[0].timestamp
        assert received.log_time_ns == stamp.sec * 10**9 + stamp.nanosec


def test_annotations_are_in_the_pixels_of_the_image_they_belong_to(live: dict[str, Any]) -> None:
    client: FoxgloveClient = live["client"]
    truth = {record["stamp_ns"]: record for record in live["truth"]}
    images = {r.log_time_ns for r in client.messages["/camera/jpeg"]}
    overlaps = []
    for received in client.messages["/model/visualization"]:
        if received.log_time_ns not in images:  # annotations of a frame whose JPEG the client also got
            continue
        expected = [[x * WIDTH, y * HEIGHT, x2 * WIDTH, y2 * HEIGHT]
                    for x, y, x2, y2 in (o["box"] for o in truth[received.log_time_ns]["objects"])]
        for outline in client.decode("/model/visualization", received.payload).points[1:]:
            xs, ys = [p.x for p in outline.points], [p.y for p in outline.points]
            box = [min(xs), min(ys), max(xs), max(ys)]
            assert 0 <= box[0] < box[2] <= WIDTH and 0 <= box[1] < box[3] <= HEIGHT
            overlaps.append(max(iou(box, other) for other in expected))
    assert len(overlaps) >= 10
    # In the image's own pixels: boxes in any other scale (0..1, the model's 320x320) would not overlap at all.
    assert sum(overlap > 0.8 for overlap in overlaps) >= 0.9 * len(overlaps), sorted(overlaps)[:10]


def iou(a: list[float], b: list[float]) -> float:
    x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_the_recording_decodes_the_same_way(live: dict[str, Any]) -> None:
    client: FoxgloveClient = live["client"]
    header, summary, recorded = read_finished(live["record"])  # SIGTERM finished it: indexed
    assert header.profile == "ros2" and summary.statistics.message_count == len(recorded)
    assert {c.topic for c in summary.channels.values()} >= {*LIVE_TOPICS, "/camera/info"}
    assert {index.compression for index in summary.chunk_indexes} == {"zstd"}
    by_payload = {r.payload: r for r in recorded}
    for topic in LIVE_TOPICS:
        for received in client.messages[topic]:
            assert by_payload[received.payload].log_time_ns == received.log_time_ns
    for r in recorded:
        if r.topic == "/camera/jpeg":
            assert bytes(r.decoded.data)[:2] == b"\xff\xd8"
        elif r.topic == "/model/boxes2d":
            assert r.log_time_ns == r.decoded.header.stamp.sec * 10**9 + r.decoded.header.stamp.nanosec


def test_sigterm_finishes_the_file_and_exits_0(live: dict[str, Any]) -> None:
    bridge: Process = live["bridge"]
    assert live["bridge_code"] == 0
    assert said(bridge, "stopping") == 1 and said(bridge, f"recorded {live['record']}") == 1
    stats = [line for line in bridge.json_lines() if line.get("event") == "stats"]
    assert stats and stats[-1]["relayed"] > 0 and "latency_ms_p99" in stats[-1]


# -- faults ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("where", "said_"), [("missing/run.mcap", "No such file or directory"),
                                             ("exists.mcap", "the file exists; choose another name")])
def test_a_recording_it_cannot_create_stops_the_start_with_one_line(tmp_path: Path, where: str, said_: str) -> None:
    (tmp_path / "exists.mcap").write_bytes(b"keep")
    result = subprocess.run([PYTHON, "-m", *bridge_args(0, [], "--record", str(tmp_path / where))],
                            capture_output=True, text=True, timeout=scaled(60), check=False, cwd=REPO)
    errors = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    errors = [e for e in errors if e["level"] == "error"]
    assert result.returncode == 1 and len(errors) == 1 and said_ in errors[0]["event"], result.stderr
    assert (tmp_path / "exists.mcap").read_bytes() == b"keep"


def test_a_busy_port_is_said_once_and_served_when_free(tmp_path: Path) -> None:
    import socket

    zenoh_port = free_port()
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    with publisher(zenoh_port) as pub, processes(tmp_path) as start:
        bridge = start("bridge", *bridge_args(port, [zenoh_port]))
        try:
            wait_said(bridge, f"port {port} on 127.0.0.1 is in use")
            for index in range(20):  # relaying goes on meanwhile
                pub.put("rt/model/boxes2d", detect_payload(index), DETECT)
            wait_said(bridge, "rt/model/boxes2d: advertised as /model/boxes2d")
            assert bridge.popen.poll() is None
        finally:
            taken.close()
        wait_said(bridge, f"serving Foxglove on ws://127.0.0.1:{port}")
        client = FoxgloveClient(f"ws://127.0.0.1:{port}")
        try:
            client.pump(lambda: "/model/boxes2d" in client.topics(), scaled(10), "the advertisement")
        finally:
            client.close()
        assert said(bridge, "is in use") == 1


def test_unknown_and_malformed_messages_are_said_once_and_the_bridge_runs_on(tmp_path: Path) -> None:
    zenoh_port, port = free_port(), free_port()
    with publisher(zenoh_port) as pub, processes(tmp_path) as start:
        bridge = start("bridge", *bridge_args(port, [zenoh_port], "--stats-interval", "0.5"))
        wait_said(bridge, "serving Foxglove")
        client = FoxgloveClient(f"ws://127.0.0.1:{port}")
        try:
            index = 0

            def flood() -> bool:
                nonlocal index
                index += 1
                pub.put("acme/widget", b"\x00\x01\x00\x00abcd", "application/cdr;acme_msgs/msg/Widget")
                pub.put("acme/raw", b"raw bytes", "zenoh/bytes")
                pub.put("rt/model/boxes2d", detect_payload(index)[:-5], DETECT)  # cut short
                pub.put("rt/model/boxes2d", b"\x00\x07\x00\x00" + bytes(40), DETECT)  # CDR2: not plain CDR
                pub.put("rt/model/boxes2d", detect_payload(index), DETECT)
                try:
                    client.pump(lambda: len(client.messages["/model/boxes2d"]) >= 10, 0.05, "")
                except AssertionError:
                    return False
                return True

            wait_until(flood, 30, "10 good Detects through the bad ones")
            for received in client.messages["/model/boxes2d"]:
                assert received.payload[:2] == b"\x00\x01"
                assert client.decode("/model/boxes2d", received.payload).boxes[0].label.startswith("box")
            assert client.topics() == {"/model/boxes2d"}
            wait_until(lambda: any(line.get("malformed", 0) >= 10 and line.get("unknown", 0) >= 10
                                   for line in bridge.json_lines()), 20, "the counts in a stats line")
        finally:
            client.close()
        assert bridge.popen.poll() is None
        assert said(bridge, "acme/widget: unknown schema: no definition of acme_msgs/msg/Widget") == 1
        assert said(bridge, "acme/raw: encoding 'zenoh/bytes' names no ROS 2 type") == 1
        assert said(bridge, "rt/model/boxes2d: malformed edgefirst_msgs/msg/Detect") == 1
        assert bridge.stop() == 0


def test_a_client_gone_mid_message_leaves_the_bridge_serving_others(tmp_path: Path) -> None:
    zenoh_port, port = free_port(), free_port()
    image = m.encode(m.CompressedImage(m.Header(m.Time(1_800_000_000, 1)), "jpeg", b"\xff\xd8" + os.urandom(1 << 20)))
    with publisher(zenoh_port) as pub, processes(tmp_path) as start:
        bridge = start("bridge", *bridge_args(port, [zenoh_port]))
        wait_said(bridge, "serving Foxglove")
        wait_until(lambda: pub.put("rt/camera/jpeg", image, "application/cdr;sensor_msgs/msg/CompressedImage")
                   or said(bridge, "advertised as /camera/jpeg") > 0, 20, "the image channel")
        import threading

        stop = threading.Event()

        def keep_publishing() -> None:
            while not stop.wait(0.05):
                pub.put("rt/camera/jpeg", image, "application/cdr;sensor_msgs/msg/CompressedImage")

        thread = threading.Thread(target=keep_publishing, daemon=True)
        thread.start()
        try:
            size = abrupt_subscriber("127.0.0.1", port, "/camera/jpeg", 4096, scaled(20))
            assert size > 1 << 20  # it left in the middle of a frame of more than 1 MiB
            wait_said(bridge, "has no subscriptions left")
            client = FoxgloveClient(f"ws://127.0.0.1:{port}")
            try:
                client.pump(lambda: len(client.messages["/camera/jpeg"]) >= 3, scaled(30), "3 images")
            finally:
                client.close()
        finally:
            stop.set()
            thread.join()
        assert bridge.popen.poll() is None and bridge.stop() == 0


def test_kill_9_leaves_every_complete_chunk_readable(tmp_path: Path) -> None:
    zenoh_port, port = free_port(), free_port()
    record = tmp_path / "killed.mcap"
    with publisher(zenoh_port) as pub, processes(tmp_path) as start:
        bridge = start("bridge", *bridge_args(port, [zenoh_port], "--record", str(record), "--chunk-seconds", "0.2"))
        wait_said(bridge, "serving Foxglove")
        sent: dict[int, bytes] = {}
        header_size = record.stat().st_size

        def publish() -> bool:
            index = len(sent)
            sent[index] = detect_payload(index)
            pub.put("rt/model/boxes2d", sent[index], DETECT)
            time.sleep(0.01)  # a publisher's pace, not a wait for an event
            return record.stat().st_size > header_size + 5000  # several chunks on disk
        wait_until(publish, 30, "chunks in the recording")
        bridge.popen.kill()
        bridge.popen.wait()
    found, ended = read_complete_chunks(record)
    assert ended.startswith("EndOfFile")  # no summary: the file was never finished
    assert len(found) >= 10
    payloads = set(sent.values())
    assert all(r.payload in payloads and r.decoded.boxes[0].label.startswith("box") for r in found)


LIMITED = ("import resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, ({size}, {size})); "
           "from edgenode.foxglove.cli import main; sys.exit(main(sys.argv[1:]))")


@contextlib.contextmanager
def small_disk(folder: Path, size: int) -> Iterator[tuple[Path, list[str], str]]:
    """A filesystem of ``size`` bytes (a tmpfs, when this user may mount one), else a file-size limit on the
    bridge (RLIMIT_FSIZE): (the folder, how to start the bridge, the error its writes will meet)."""
    mount = folder / "small"
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
                             check=False, capture_output=True).returncode == 0
    try:
        if mounted:
            yield mount, [PYTHON, "-m", "edgenode.foxglove"], "No space left on device"
        else:
            yield mount, [PYTHON, "-c", LIMITED.format(size=size)], "File too large"
    finally:
        if mounted:
            subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_stops_recording_with_one_line_and_relaying_goes_on(tmp_path: Path) -> None:
    zenoh_port, port = free_port(), free_port()
    with small_disk(tmp_path, 2 << 20) as (disk, command, error), publisher(zenoh_port) as pub:
        record = disk / "run.mcap"
        log = tmp_path / "bridge.log"
        with log.open("wb") as out:
            bridge = subprocess.Popen([*command, *bridge_args(port, [zenoh_port], "--record", str(record),
                                                              "--chunk-size", "64K", "--compression", "none")[1:]],
                                      stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        process = Process("bridge", bridge, log)
        try:
            wait_said(process, "serving Foxglove")
            client = FoxgloveClient(f"ws://127.0.0.1:{port}")
            try:
                big = m.encode(m.CompressedImage(m.Header(m.Time(1_800_000_000, 1)), "jpeg", os.urandom(100_000)))

                def publish() -> bool:
                    pub.put("rt/camera/jpeg", big, "application/cdr;sensor_msgs/msg/CompressedImage")
                    time.sleep(0.01)  # a publisher's pace
                    return said(process, "recording stopped") > 0
                wait_until(publish, 60, "the disk to fill")
                client.pump(lambda: "/camera/jpeg" in client.topics(), scaled(10), "the advertisement")
                before = len(client.messages["/camera/jpeg"])

                def relayed_after() -> bool:
                    pub.put("rt/camera/jpeg", big, "application/cdr;sensor_msgs/msg/CompressedImage")
                    with contextlib.suppress(AssertionError):
                        client.pump(lambda: len(client.messages["/camera/jpeg"]) >= before + 5, 0.05, "")
                    return len(client.messages["/camera/jpeg"]) >= before + 5
                wait_until(relayed_after, 30, "images relayed after the disk filled")
            finally:
                client.close()
            assert bridge.poll() is None
            assert said(process, "recording stopped") == 1 and said(process, error) == 1
            assert process.stop() == 0
        finally:
            process.stop()
        found, _ = read_complete_chunks(record)
        assert found and all(bytes(r.decoded.data) == bytes(m.decode(m.CompressedImage, big).data) for r in found)


@pytest.mark.parametrize("split", [["--split-size", "48K"], ["--split-duration", "0.5"]], ids=["size", "duration"])
def test_recordings_split_and_every_part_is_finished(tmp_path: Path, split: list[str]) -> None:
    zenoh_port, port = free_port(), free_port()
    record = tmp_path / "run.mcap"
    with publisher(zenoh_port) as pub, processes(tmp_path) as start:
        bridge = start("bridge", *bridge_args(port, [zenoh_port], "--record", str(record), "--chunk-size", "8K",
                                              *split))
        wait_said(bridge, "serving Foxglove")
        sent: list[bytes] = []

        def publish() -> bool:  # incompressible images of 4 KiB, so the parts fill at a known pace
            sent.append(m.encode(m.CompressedImage(m.Header(m.Time(1_800_000_000, len(sent) + 1)), "jpeg",
                                                   os.urandom(4096))))
            pub.put("rt/camera/jpeg", sent[-1], "application/cdr;sensor_msgs/msg/CompressedImage")
            return len(list(tmp_path.glob("run_*.mcap"))) >= 4
        wait_until(publish, 60, "four parts")
        assert bridge.stop() == 0
    parts = sorted(tmp_path.glob("run_*.mcap"))
    assert [p.name for p in parts] == [f"run_{i:04d}.mcap" for i in range(len(parts))]
    recorded = []
    for part in parts:
        _, summary, messages = read_finished(part)
        assert summary.statistics.message_count == len(messages) > 0
        recorded += [r.payload for r in messages]
    assert set(recorded) <= set(sent) and len(recorded) == len(set(recorded))
    assert said(bridge, "recorded ") == len(parts)


def test_a_bridge_off_the_board_shows_namespaced_nodes_through_a_router(tmp_path: Path) -> None:
    """The bridge as a zenoh client of a router it waits for, relaying a namespaced node beside a plain one."""
    router_port, port = free_port(), free_port()
    with processes(tmp_path) as start:
        bridge = start("bridge", *bridge_args(port, [router_port], "--mode", "client"))
        wait_said(bridge, "no zenoh router answers")  # started first: it waits for the router
        router = start_router(router_port)
        sessions = []
        try:
            for namespace in ("cam1", None):
                config = zenoh.Config()
                config.insert_json5("mode", '"client"')
                config.insert_json5("connect/endpoints", json.dumps([endpoint(router_port)]))
                if namespace:
                    config.insert_json5("namespace", json.dumps(namespace))
                sessions.append(zenoh.open(config))
            wait_said(bridge, "serving Foxglove")
            client = FoxgloveClient(f"ws://127.0.0.1:{port}")
            try:
                def both() -> bool:
                    for session in sessions:
                        session.put("rt/model/boxes2d", detect_payload(1), encoding=zenoh.Encoding(DETECT))
                        session.put("rt/camera/dma", m.encode(m.DmaBuffer()),
                                    encoding=zenoh.Encoding("application/cdr;edgefirst_msgs/msg/DmaBuffer"))
                    with contextlib.suppress(AssertionError):
                        client.pump(lambda: all(client.messages[t] for t in ("/cam1/model/boxes2d", "/model/boxes2d")),
                                    0.1, "")
                    return all(client.messages[t] for t in ("/cam1/model/boxes2d", "/model/boxes2d"))
                wait_until(both, 30, "the namespaced and the plain node's Detect")
                assert not any("dma" in topic for topic in client.topics())
                assert said(bridge, "cam1/rt/camera/dma: excluded") == 1
            finally:
                client.close()
        finally:
            for session in sessions:
                session.close()
            router.send_signal(signal.SIGTERM)
            router.wait()
        assert bridge.stop() == 0


# -- the demo -----------------------------------------------------------------------------------

def test_demo_foxglove_serves_the_camera_with_its_detections(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        demo = subprocess.Popen([PYTHON, "-m", "edgenode.tools.demo", "--foxglove", "--foxglove-port", str(port),
                                 "--size", "640x360", "--fps", "10"], stdout=out, stderr=subprocess.STDOUT,
                                cwd=REPO, start_new_session=True,
                                env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")})
    try:
        address = f"Foxglove Studio: open ws://127.0.0.1:{port}"
        wait_until(lambda: address in log.read_text() or demo.poll() is not None, 60, "the address line")
        assert address in log.read_text(), log.read_text()
        client = None
        deadline = time.monotonic() + scaled(60)
        while client is None:  # the bridge starts after the demo prints its address
            try:
                client = FoxgloveClient(f"ws://127.0.0.1:{port}")
            except OSError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        try:
            def running() -> bool:  # the model's Detects, not the heartbeat's while it loads
                detects = client.messages["/model/boxes2d"]
                return (all(client.messages[t] for t in LIVE_TOPICS[:3])
                        and client.decode("/model/boxes2d", detects[-1].payload).model_time.nanosec > 0)
            client.pump(running, scaled(120), "image, Detect and annotations from the running model")
            image = client.decode("/camera/jpeg", client.messages["/camera/jpeg"][-1].payload)
            assert bytes(image.data)[:2] == b"\xff\xd8"
            detect = client.decode("/model/boxes2d", client.messages["/model/boxes2d"][-1].payload)
            assert detect.model_time.nanosec > 0
            annotations = client.decode("/model/visualization", client.messages["/model/visualization"][-1].payload)
            assert annotations.texts and annotations.texts[0].text.endswith(".tflite")
        finally:
            client.close()
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=scaled(30)) == 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(demo.pid, signal.SIGKILL)  # the group this test started, should anything be left
