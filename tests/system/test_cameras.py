"""Several cameras through one node, in real processes: camera simulators with different scenes -> one edgenode
(the demo detector, --track) -> a subscriber decoding with edgefirst-schemas. Each stream's boxes match its own
camera's ground truth on its own topics with its own tracks; a killed camera leaves the others' rate as it was;
a model of two frames an invoke serves two cameras at once."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from edgenode.tools.demo.shapes_model import build_shapes_model
from tests.helpers.processes import Listener, Process, camera_args, endpoint, free_port, processes
from tests.helpers.timing import scaled
from tests.system.test_end_to_end import corners, iou

ef = pytest.importorskip("edgefirst.schemas")
from edgefirst.schemas import edgefirst_msgs as em  # noqa: E402

pytestmark = pytest.mark.slow


@dataclass
class Rig:
    """Cameras ``cam0..`` (each its own scene and ground truth), one node reading them all, a listener."""

    cameras: list[Process]
    node: Process
    listener: Listener
    truth: list[Path]

    def detects(self, index: int) -> list[em.Detect]:
        return [em.Detect.from_cdr(payload) for payload, _ in self.listener.received(f"rt/model/cam{index}/boxes2d")]

    def wait(self, condition: Callable[[], bool], seconds: float, what: str) -> None:
        self.listener.wait_for(condition, scaled(seconds), what)


@pytest.fixture
def rig(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Rig]:
    count, batch = request.param
    model = tmp_path / "shapes.tflite"
    model.write_bytes(build_shapes_model(batch=batch))
    ports = [free_port() for _ in range(count)]
    node_port = free_port()
    truth = [tmp_path / f"truth{index}.jsonl" for index in range(count)]
    with processes(tmp_path) as start:
        cameras = [start(f"camera{index}", *camera_args(
            port, "--topic", f"rt/cam{index}/dma", "--info-topic", f"rt/cam{index}/info", "--jpeg-fps", "0",
            "--size", "480x270", "--fps", "10", "--seed", str(index + 1), "--ground-truth", str(truth[index])))
            for index, port in enumerate(ports)]
        connect = [argument for port in ports for argument in ("--connect", endpoint(port))]
        node = start("node", "edgenode", "--model", str(model), *connect, "--listen", endpoint(node_port),
                     "--no-multicast-scouting", "--log-format", "json", "--threads", "1", "--track",
                     "--stats-interval", "1", *(argument for index in range(count)
                                                for argument in ("--camera-topic", f"rt/cam{index}/dma")))
        listener = Listener([f"rt/model/cam{index}/boxes2d" for index in range(count)], [node_port])
        try:
            yield Rig(cameras, node, listener, truth)
        finally:
            listener.close()


def with_boxes(detects: list[em.Detect]) -> list[em.Detect]:
    return [detect for detect in detects if detect.boxes]


def frame_rate(detects: list[em.Detect]) -> float:
    """Frames a second served, by the camera stamps of the first and last of ``detects``."""
    stamps = [detect.stamp.to_nanos() for detect in detects]
    return (len(stamps) - 1) / ((stamps[-1] - stamps[0]) / 1e9)


def check_own_scene(rig: Rig, index: int) -> set[str]:
    """Stream ``index``'s boxes are its camera's objects (by the frame's stamp in its ground truth); its track ids."""
    truth = {record["stamp_ns"]: record for record in map(json.loads, rig.truth[index].read_text().splitlines())}
    tracks, matched, total = set(), 0, 0
    for detect in with_boxes(rig.detects(index)):
        record = truth[detect.stamp.to_nanos()]  # a frame of this camera, no other
        expected = {obj["label"]: obj["box"] for obj in record["objects"]}
        for box in detect.boxes:
            assert box.label in expected, (index, box.label)
            matched += iou(corners(box), expected[box.label]) > 0.8  # (small frames: a pixel is 0.4 %)
            total += 1
            if box.track_id:
                tracks.add(box.track_id)
    assert total and matched >= 0.85 * total, (index, matched, total)
    return tracks


@pytest.mark.parametrize("rig", [(4, 1)], indirect=True)
def test_four_cameras_each_get_their_own_boxes_and_tracks_and_a_killed_one_slows_none(rig: Rig) -> None:
    enough = 12
    rig.wait(lambda: all(len(with_boxes(rig.detects(i))) >= enough for i in range(4)), 60,
             f"{enough} frames with boxes on each of four streams")
    tracks = [check_own_scene(rig, index) for index in range(4)]
    assert all(tracks) and len(set().union(*tracks)) == sum(map(len, tracks))  # no track shared by two streams

    before = [len(rig.detects(index)) for index in range(3)]
    rig.wait(lambda: all(len(rig.detects(i)) >= before[i] + enough for i in range(3)), 30,
             f"{enough} more frames on each of the streams that stay")
    rates_before = [frame_rate(rig.detects(index)[before[index]:]) for index in range(3)]
    rig.cameras[3].popen.send_signal(signal.SIGKILL)
    rig.cameras[3].popen.wait()
    killed = len(rig.detects(3))
    after = [len(rig.detects(index)) for index in range(3)]
    rig.wait(lambda: all(len(rig.detects(i)) >= after[i] + 2 * enough for i in range(3)), 30,
             f"{2 * enough} frames on each stream after camera 3 died")
    rates_after = [frame_rate(rig.detects(index)[after[index] + enough:]) for index in range(3)]  # once it is gone
    assert len(rig.detects(3)) <= killed + 1  # a frame in hand at most
    for index in range(3):
        assert rates_after[index] >= 0.8 * rates_before[index], (index, rates_before, rates_after)
    assert rig.node.stop() == 0
    stats = [line for line in rig.node.json_lines() if line.get("event") == "stats"]
    assert {line["stream"] for line in stats} == {"cam0", "cam1", "cam2", "cam3"}
    lines = [json.loads(text) for text in rig.node.text().splitlines() if text.startswith('{"')]
    running = next(line for line in lines if line["event"] == "running edgenode-shapes-demo")
    assert running["streams"] == ["cam0", "cam1", "cam2", "cam3"]


@pytest.mark.parametrize("rig", [(2, 2)], indirect=True)
def test_a_model_of_two_frames_serves_two_cameras_an_invoke(rig: Rig) -> None:
    rig.wait(lambda: all(len(with_boxes(rig.detects(i))) >= 10 for i in range(2)), 60,
             "10 frames with boxes on each of two streams")
    tracks = [check_own_scene(rig, index) for index in range(2)]
    assert all(tracks) and not tracks[0] & tracks[1]
    assert rig.node.stop() == 0
    lines = rig.node.json_lines()
    assert any(line["event"] == "batch: the model takes 2 frames an invoke" for line in lines)
    assert next(line for line in lines if line["event"].startswith("running"))["batch"] == 2
