"""Fault injection: the world around the node fails, the node keeps running (or exits with one clear line).

Real processes where the fault is about processes (camera death, router loss, hostile publishers,
cache directories, SIGTERM), in-process fakes where that is the honest way (a model that raises
during invoke). Each test reads what was dropped or skipped from the node's ``stats`` log line
and checks the node's open fds where something could leak.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zenoh

from edgenode.core.pixels import YUYV
from edgenode.messages import CameraFrame, DmaBuffer, Header, Tensor, TensorPlane, Time, encode
from edgenode.tools.demo.shapes_model import build_shapes_model
from tests.helpers.native import source
from tests.helpers.processes import (
    PYTHON,
    Listener,
    Process,
    camera_args,
    endpoint,
    free_port,
    node_args,
    processes,
    running,
    start_router,
)
from tests.helpers.timing import scaled, wait_until

ef = pytest.importorskip("edgefirst.schemas")
from edgefirst.schemas import edgefirst_msgs as em  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.faults]
DETECT = "rt/model/boxes2d"
CAMERA = "rt/camera/dma"


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "shapes.tflite"
    path.write_bytes(build_shapes_model())
    return path


# -- helpers -----------------------------------------------------------------------------------


def last_stats(process: Process) -> dict[str, Any]:
    stats = [entry for entry in process.json_lines() if entry.get("event") == "stats"]
    return stats[-1] if stats else {"skipped": {}, "received": 0, "dropped": 0}


def fd_census(pid: int) -> tuple[int, int]:
    """(fds that outlive a frame, sockets) of ``pid``; a frame's imported buffer and pidfd are not counted."""
    others = sockets = 0
    for entry in os.scandir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(entry.path)
        except OSError:
            continue
        if target.startswith("socket:"):
            sockets += 1
        elif not target.startswith(("/memfd:", "/dmabuf:", "anon_inode:dmabuf", "anon_inode:[pidfd]")):
            others += 1
    return others, sockets


def steady_fds(pid: int, samples: int = 5) -> tuple[int, int]:
    """The :func:`fd_census` once it holds still for ``samples`` readings in a row, 0.1 s apart (else,
    after a scaled 10 s, the most common reading: a link may be mid-reconnect in one).

    Take it once frames flow: zenoh peers also meet by gossip, adding a socket or two in the first
    second, and sockets come and go with the peers (compare them with :func:`no_leak`)."""
    counts = [fd_census(pid)]
    deadline = time.monotonic() + scaled(10)
    while len(counts) < samples or len(set(counts[-samples:])) > 1:
        if time.monotonic() > deadline:
            return max(set(counts), key=counts.count)
        time.sleep(0.1)
        counts.append(fd_census(pid))
    return counts[-1]


def gap_lines(node: Process) -> int:
    """How many times the node said its camera frames stopped."""
    return sum(1 for e in node.json_lines() if str(e.get("event", "")).startswith("no camera frames on"))


def no_leak(before: tuple[int, int], after: tuple[int, int]) -> bool:
    """No more fds of either kind than before: what the fault took must be back, and nothing added. (A
    peer that left takes its zenoh link and shared-memory segment files with it, so fewer is fine.)"""
    return after[0] <= before[0] and after[1] <= before[1]


def detects_after(listener: Listener, stamp_ns: int) -> int:
    return sum(1 for payload, _ in listener.received(DETECT) if em.Detect.from_cdr(payload).stamp.to_nanos() > stamp_ns)


class Publisher:
    """A zenoh session that publishes raw payloads on the camera topic, connected to the node."""

    def __init__(self, port: int, topic: str = CAMERA) -> None:
        config = zenoh.Config()
        config.insert_json5("mode", '"peer"')
        config.insert_json5("connect/endpoints", json.dumps([endpoint(port)]))
        config.insert_json5("scouting/multicast/enabled", "false")
        self.session = zenoh.open(config)
        # BLOCK, not zenoh's default DROP: a test that sends one message waits for the node to count it, and a
        # loaded machine's full transmit queue dropped a 1 MiB one (CI, load average 10).
        self.publisher = self.session.declare_publisher(topic, congestion_control=zenoh.CongestionControl.BLOCK)
        wait_until(lambda: self.publisher.matching_status.matching, 20, "the node's camera subscription")

    def put(self, payload: bytes, encoding: str = "") -> None:
        if encoding:
            self.publisher.put(payload, encoding=zenoh.Encoding(encoding))
        else:
            self.publisher.put(payload)

    def close(self) -> None:
        self.publisher.undeclare()
        self.session.close()


class MemfdFrames:
    """Frames held by this test process, as a camera would hold them: sealed memfds of YUYV pixels."""

    def __init__(self, width: int = 320, height: int = 240) -> None:
        from edgenode.adapters.dma_heap import SharedBuffer
        from edgenode.tools.camera.scene import SyntheticScene
        from edgenode.tools.camera.sources import SceneSource

        self.width, self.height = width, height
        self.buffer = SharedBuffer(width * height * 2, ())
        SceneSource(SyntheticScene(width, height, seed=1), YUYV).write(5, self.buffer.data.reshape(height, -1))

    def dma_buffer(self, stamp_ns: int, **changes: int) -> bytes:
        fields = {"pid": os.getpid(), "fd": self.buffer.fd, "width": self.width, "height": self.height,
                  "stride": self.width * 2, "fourcc": YUYV.fourcc, "length": self.width * self.height * 2}
        fields.update(changes)
        return encode(DmaBuffer(Header(Time.from_nanos(stamp_ns), "camera"), fields["pid"], fields["fd"],
                                fields["width"], fields["height"], fields["stride"], fields["fourcc"],
                                fields["length"]))

    def close(self) -> None:
        self.buffer.close()


@contextmanager
def lone_node(model: Path, folder: Path, *extra: str) -> Iterator[tuple[Process, Publisher, Listener]]:
    """A node with no camera: the test publishes on its camera topic and listens to what it publishes."""
    node_port = free_port()
    with processes(folder) as start:
        node = start("node", "edgenode", "--model", str(model), "--listen", endpoint(node_port),
                     "--no-multicast-scouting", "--log-format", "json", "--threads", "1", "--stats-interval", "0.2",
                     *extra)
        wait_until(lambda: any(e.get("event", "").startswith("running") for e in node.json_lines()), 60,
                   "the model to load")
        publisher = Publisher(node_port)
        listener = Listener([DETECT], [node_port])
        try:
            yield node, publisher, listener
        finally:
            listener.close()
            publisher.close()


def sent_and_counted(node: Process, publisher: Publisher, payload: bytes, reason: str, encoding: str = "") -> None:
    """Publish one message and wait for the node to count it as skipped for ``reason``."""
    before = last_stats(node)["skipped"].get(reason, 0)
    publisher.put(payload, encoding)
    wait_until(lambda: last_stats(node)["skipped"].get(reason, 0) > before, 10,
               f"the node to skip the message as {reason!r} (skipped so far: {last_stats(node)['skipped']})")


def still_works(node: Process, publisher: Publisher, listener: Listener, frames: MemfdFrames) -> None:
    """A good frame after the bad ones still comes back as a Detect with boxes."""
    stamp = time.time_ns()
    wait_until(lambda: (publisher.put(frames.dma_buffer(time.time_ns())), detects_after(listener, stamp) > 0)[1],
               20, "a Detect for a good frame")
    assert node.popen.poll() is None


# -- the camera dies and comes back -------------------------------------------------------------


def test_camera_restart_with_new_pid_and_fds(shapes: Path, tmp_path: Path) -> None:
    camera_port, node_port = free_port(), free_port()
    with processes(tmp_path) as start:
        first = start("camera-1", *camera_args(camera_port, "--size", "320x240", "--fps", "30"))
        node = running(start("node", *node_args(shapes, camera_port, node_port, "--stats-interval", "0.2")))
        listener = Listener([DETECT], [node_port])
        frames = Listener([CAMERA], [camera_port])
        try:
            listener.wait_for(lambda: listener.count(DETECT) >= 20, 60, "Detects from the first camera")
            fds_before = steady_fds(node.popen.pid)
            stale = frames.received(CAMERA)[-1]  # a frame of the camera about to die
            frames.close()
            gaps = gap_lines(node)
            first.popen.kill()
            first.popen.wait()
            died = time.time_ns()
            # A restart takes a while: the node notices the gap.
            wait_until(lambda: gap_lines(node) > gaps, 30, "the node to notice the camera is gone")
            publisher = Publisher(node_port)
            try:  # what a late or replayed message of the dead camera looks like to the node
                sent_and_counted(node, publisher, stale[0], "stale_pid", stale[1])
            finally:
                publisher.close()
            second = start("camera-2", *camera_args(camera_port, "--size", "320x240", "--fps", "30", "--seed", "4"))
            listener.wait_for(lambda: detects_after(listener, died) >= 20, 60, "Detects from the restarted camera")
            assert second.popen.pid != first.popen.pid and node.popen.poll() is None
            assert no_leak(fds_before, steady_fds(node.popen.pid))
        finally:
            listener.close()
        assert node.stop(timeout=5.0) == 0
    events = [entry["event"] for entry in node.json_lines()]
    assert any(f"camera process {first.popen.pid} is gone" in event for event in events)
    assert any(event.startswith("no camera frames on rt/camera/dma") for event in events)
    assert any(event.startswith("camera frames resumed") for event in events)
    stats = last_stats(node)  # a frame in flight when the camera died may add one more
    assert stats["skipped"].get("stale_pid", 0) >= 1 and set(stats["skipped"]) <= {"stale_pid", "closed_fd"}
    assert stats["prepare_failed"] == stats["invoke_failed"] == 0


# -- hostile frame references --------------------------------------------------------------------


def test_frames_with_a_wrong_size_stride_fourcc_pid_or_fd_are_skipped_and_counted(shapes: Path,
                                                                                  tmp_path: Path) -> None:
    frames = MemfdFrames()
    small = MemfdFrames(64, 48)
    gone = subprocess.Popen([PYTHON, "-c", "pass"])
    gone.wait()  # a pid that no longer exists
    read_end, write_end = os.pipe()
    listening = socket.socket()
    null = os.open("/dev/null", os.O_RDONLY)
    try:
        with lone_node(shapes, tmp_path) as (node, publisher, listener):
            still_works(node, publisher, listener, frames)
            fds_before = steady_fds(node.popen.pid)
            now = time.time_ns
            cases = [
                (frames.dma_buffer(now(), width=1920, height=1080, stride=3840, length=1920 * 1080 * 2), "size"),
                (small.dma_buffer(now(), width=320, height=240, stride=640, length=320 * 240 * 2), "size"),
                (frames.dma_buffer(now(), stride=100), "layout"),  # shorter than a row
                (frames.dma_buffer(now(), fourcc=0x31323334), "layout"),  # an unknown fourcc
                (frames.dma_buffer(now(), width=0), "layout"),
                (frames.dma_buffer(now(), length=10), "layout"),  # shorter than the frame
                (frames.dma_buffer(now(), pid=0), "pid"),
                (frames.dma_buffer(now(), pid=2**31 - 1), "pid"),
                (frames.dma_buffer(now(), pid=gone.pid), "stale_pid"),
                (frames.dma_buffer(now(), fd=987), "closed_fd"),
                (frames.dma_buffer(now(), fd=2**31 - 1), "closed_fd"),
                (frames.dma_buffer(now(), fd=read_end), "fd_type"),  # a pipe of ours
                (frames.dma_buffer(now(), fd=listening.fileno()), "fd_type"),  # a socket of ours
                (frames.dma_buffer(now(), fd=null), "fd_type"),  # a character device of ours
            ]
            for payload, reason in cases:
                sent_and_counted(node, publisher, payload, reason)
            tensor = Tensor(storage_kind=Tensor.STORAGE_SHM, pid=os.getpid(), shape=[240, 320, 2], format="YUYV",
                            planes=[TensorPlane(handle=frames.buffer.fd, stride=320 * 2, size=1000, used=1000)])
            sent_and_counted(node, publisher, encode(CameraFrame(Header(), 1, tensor)), "layout")
            inline = replace_planes(tensor, handle=-1)
            sent_and_counted(node, publisher, encode(CameraFrame(Header(), 2, inline)), "storage")
            still_works(node, publisher, listener, frames)
            assert no_leak(fds_before, steady_fds(node.popen.pid))
            stats = last_stats(node)
        assert node.popen.returncode == 0
    finally:
        for closable in (frames, small):
            closable.close()
        for fd in (read_end, write_end, null):
            os.close(fd)
        listening.close()
    expected = {"size": 2, "layout": 5, "pid": 2, "stale_pid": 1, "closed_fd": 2, "fd_type": 3, "storage": 1}
    assert stats["skipped"] == expected
    assert stats["prepare_failed"] == stats["invoke_failed"] == stats["post_failed"] == 0


def test_frames_over_the_cap_are_skipped_before_their_fd_is_taken_and_files_keep_their_offset(
        shapes: Path, tmp_path: Path) -> None:
    """Issue 11: a 1 GiB unsealed memfd announced as a 16384x16384 RGBA frame was copied whole, every frame;
    a frame naming its producer's log file moved that file's offset to 0 (the producer then overwrote it)."""
    from edgenode.core.pixels import RGBA

    frames = MemfdFrames()  # 320x240 YUYV: 153,600 bytes, the cap below
    large = MemfdFrames(640, 480)  # 614,400 bytes: over it, though under the default
    huge = os.memfd_create("huge", os.MFD_CLOEXEC)
    os.ftruncate(huge, 1 << 30)  # sparse: costs nothing until someone copies it
    log = os.open(tmp_path / "owner.log", os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(log, b"x" * 8000)
    try:
        with lone_node(shapes, tmp_path, "--max-frame-bytes", str(320 * 240 * 2)) as (node, publisher, listener):
            still_works(node, publisher, listener, frames)
            now = time.time_ns
            sent_and_counted(node, publisher, large.dma_buffer(now()), "too_large")
            sent_and_counted(node, publisher, frames.dma_buffer(now(), fd=huge, width=16384, height=16384,
                                                                stride=16384 * 4, fourcc=RGBA.fourcc,
                                                                length=1 << 30), "too_large")
            sent_and_counted(node, publisher, frames.dma_buffer(now(), fd=log, width=64, height=48, stride=128,
                                                                length=64 * 48 * 2), "mmap")  # write-only: unreadable
            assert os.lseek(log, 0, os.SEEK_CUR) == 8000
            still_works(node, publisher, listener, frames)
            stats = last_stats(node)
            status = (Path(f"/proc/{node.popen.pid}/status")).read_text()
            resident_kib = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")))
        assert node.popen.returncode == 0
    finally:
        for closable in (frames, large):
            closable.close()
        os.close(huge)
        os.close(log)
    assert stats["skipped"] == {"too_large": 2, "mmap": 1}
    assert resident_kib < 512 * 1024, f"the node's peak resident memory reached {resident_kib} KiB"


def replace_planes(tensor: Tensor, **changes: int) -> Tensor:
    planes = [TensorPlane(**{**vars(plane), **changes}) for plane in tensor.planes]
    return Tensor(storage_kind=tensor.storage_kind, pid=tensor.pid, dtype=tensor.dtype, shape=list(tensor.shape),
                  format=tensor.format, planes=planes)


def test_a_producer_that_truncates_its_buffer_cannot_crash_the_node(shapes: Path, tmp_path: Path) -> None:
    """An unsealed memfd shrunk while the node reads it would kill a mapping reader with SIGBUS."""
    size = 320 * 240 * 2
    fd = os.memfd_create("hostile", os.MFD_CLOEXEC)
    frames = MemfdFrames()
    try:
        with lone_node(shapes, tmp_path) as (node, publisher, listener):
            deadline = time.monotonic() + 4.0
            while time.monotonic() < deadline:  # grow, publish, shrink: races every step of the import
                os.ftruncate(fd, size)
                publisher.put(frames.dma_buffer(time.time_ns(), fd=fd))
                time.sleep(0.001)
                os.ftruncate(fd, 0)
                time.sleep(0.002)
            still_works(node, publisher, listener, frames)
            stats = last_stats(node)
        assert node.popen.returncode == 0, node.text()[-2000:]
    finally:
        os.close(fd)
        frames.close()
    assert stats["prepare_failed"] == stats["invoke_failed"] == 0
    assert set(stats["skipped"]) <= {"size"}


# -- malformed and hostile CDR -------------------------------------------------------------------


def test_malformed_and_hostile_cdr_is_skipped_and_counted(shapes: Path, tmp_path: Path) -> None:
    frames = MemfdFrames()
    good = frames.dma_buffer(time.time_ns())
    rng = np.random.default_rng(7)
    huge_string = bytearray(good)
    huge_string[12:16] = (2**31 - 1).to_bytes(4, "little")  # the frame_id length field
    cases = [
        (b"", "decode"),
        (b"\x00\x01", "decode"),  # shorter than the CDR header
        (good[: len(good) // 2], "decode"),  # truncated
        (b"\x00\x07\x00\x00" + good[4:], "decode"),  # an XCDR2 header
        (b"\x7f\x7f\x00\x00" + good[4:], "decode"),  # not a CDR header at all
        (bytes(huge_string), "decode"),  # a string length far past the end
        (rng.integers(0, 256, 300, dtype=np.uint8).tobytes(), "decode"),
        (rng.integers(0, 256, 4000, dtype=np.uint8).tobytes(), "decode"),
        (b"\x00\x01\x00\x00" + b"\xff" * 60, "decode"),  # every length 0xffffffff
        (bytes(1 << 20), "oversize"),  # 1 MiB: never copied out of zenoh
    ]
    try:
        with lone_node(shapes, tmp_path) as (node, publisher, listener):
            still_works(node, publisher, listener, frames)
            # A payload over 3 KiB crosses zenoh by shared memory (from the sender's second one on,
            # once its pool is up): the node's session opens the sender's two segment files once and
            # keeps them for that peer, so the baseline comes after.
            for _ in range(2):
                sent_and_counted(node, publisher, bytes(1 << 20), "oversize")
            fds_before = steady_fds(node.popen.pid)
            for payload, reason in cases:
                sent_and_counted(node, publisher, payload, reason)
            for schema in ("edgefirst_msgs/msg/CameraFrame", "edgefirst_msgs/msg/DmaBuffer"):
                sent_and_counted(node, publisher, good[:30], "decode", f"application/cdr;{schema}")
            still_works(node, publisher, listener, frames)
            assert no_leak(fds_before, steady_fds(node.popen.pid))
            stats = last_stats(node)
    finally:
        frames.close()
    assert stats["skipped"] == {"decode": 11, "oversize": 3}
    assert stats["prepare_failed"] == stats["invoke_failed"] == 0


# -- the zenoh router goes away and comes back ---------------------------------------------------



def test_router_goes_away_and_comes_back(shapes: Path, tmp_path: Path) -> None:
    """zenoh 1.x clients reconnect to their router by themselves (retrying every 1 to 4 s) and
    re-declare their publishers and subscribers; the node only has to ride out the gap. A node
    started before its router waits for it (a client cannot open without one)."""
    router_port = free_port()
    client = ["--mode", "client", "--connect", endpoint(router_port), "--no-multicast-scouting"]
    routers: list[subprocess.Popen[bytes]] = []
    try:
        with processes(tmp_path) as start:
            node = start("node", "edgenode", "--model", str(shapes), "--log-format", "json", "--threads", "1",
                         "--stats-interval", "0.5", *client)
            camera = start("camera", "edgenode.tools.camera", "--size", "320x240", "--fps", "30", *client)
            wait_until(lambda: all("no zenoh router answers" in p.text() for p in (node, camera)), 60,
                       "the node and the camera to wait for their router")  # start-up order does not matter
            assert node.popen.poll() is None and camera.popen.poll() is None
            routers.append(start_router(router_port))
            listener = Listener([DETECT], [router_port], mode="client")
            try:
                listener.wait_for(lambda: listener.count(DETECT) >= 10, 60, "Detects through the router")
                fds_before = steady_fds(node.popen.pid)
                gaps = gap_lines(node)
                routers[0].kill()  # the router dies without a goodbye
                routers[0].wait()
                gone = time.time_ns()
                wait_until(lambda: gap_lines(node) > gaps, 30, "the node to notice its frames stopped")
                assert node.popen.poll() is None and camera.popen.poll() is None
                routers.append(start_router(router_port))
                listener.wait_for(lambda: detects_after(listener, gone) >= 10, 60, "Detects after the router is back")
                assert no_leak(fds_before, steady_fds(node.popen.pid))
            finally:
                listener.close()
            assert node.stop(timeout=5.0) == 0
            assert camera.stop(timeout=5.0) == 0
    finally:
        for router in routers:
            if router.poll() is None:
                router.terminate()
                router.wait(scaled(10))
    events = [entry["event"] for entry in node.json_lines()]
    waiting = [e for e in events if e.startswith(f"no zenoh router answers at {endpoint(router_port)}")]
    assert len(waiting) == 1, events
    assert any(e.startswith("no camera frames on rt/camera/dma") for e in events)
    assert any(e.startswith("camera frames resumed") for e in events)


def test_sigterm_while_waiting_for_the_router_exits_0(shapes: Path, tmp_path: Path) -> None:
    result_port = free_port()
    with processes(tmp_path) as start:
        node = start("node", "edgenode", "--model", str(shapes), "--log-format", "json", "--mode", "client",
                     "--connect", endpoint(result_port), "--no-multicast-scouting")
        wait_until(lambda: "no zenoh router answers" in node.text(), 30, "the node to wait for its router")
        began = time.monotonic()
        assert node.stop(timeout=5.0) == 0
        assert time.monotonic() - began < scaled(5.0)
    assert "stopped while waiting for the zenoh router" in node.text()


# -- the model raises during invoke (in process) --------------------------------------------------


def run_node_in_process(model: Path, tmp_path: Path, fail: Callable[[int], bool],
                        until: Callable[[Any], bool], timeout: float = 60.0) -> tuple[int, Any, list[dict[str, Any]]]:
    """Run ``Node`` in this process with a real camera, its model raising on the invokes ``fail(n)`` picks."""
    from structlog.testing import capture_logs

    from edgenode.adapters.systemd import SystemdNotifier
    from edgenode.cli import parse_config
    from edgenode.node import compose
    from edgenode.node.lifecycle import Node

    camera_port = free_port()
    config = parse_config(["--model", str(model), "--connect", endpoint(camera_port), "--no-multicast-scouting",
                           "--threads", "1", "--stats-interval", "0.2"], {})
    real_load = compose.load_model

    def load(settings: Any, decode: Any, *rest: Any) -> Any:
        loaded = real_load(settings, decode, *rest)
        runtime, calls = loaded.runtime, {"n": 0}
        real_invoke = runtime.invoke

        def invoke() -> None:
            calls["n"] += 1
            if fail(calls["n"]):
                raise RuntimeError(f"injected failure of invoke {calls['n']}")
            real_invoke()

        runtime.invoke = invoke  # type: ignore[method-assign]
        return loaded

    compose.load_model = load  # type: ignore[assignment]
    node = Node(compose.NodeParts(config), SystemdNotifier({}))

    async def main() -> int:
        running = asyncio.create_task(node.run())
        deadline = time.monotonic() + scaled(timeout)
        while not running.done() and time.monotonic() < deadline and not until(node):
            await asyncio.sleep(0.05)
        node.stop.set()
        return await running

    def targets() -> list[str]:
        found = []
        for entry in os.scandir("/proc/self/fd"):
            try:
                found.append(os.readlink(entry.path))
            except OSError:
                pass
        return found

    fds_before = targets()
    try:
        with processes(tmp_path) as start, capture_logs() as logs:
            start("camera", *camera_args(camera_port, "--size", "320x240", "--fps", "30"))
            code = asyncio.run(main())
    finally:
        compose.load_model = real_load
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # The loaded model and zenoh's runtime stay with this process; frame buffers and pidfds must not.
    left = [t for t in targets() if t.startswith(("/memfd:edgenode-camera", "anon_inode:[pidfd]"))]
    assert left == [] and not [t for t in fds_before if t.startswith("/memfd:edgenode-camera")]
    return code, node, logs


def test_isolated_invoke_failures_are_skipped_and_counted(shapes: Path, tmp_path: Path) -> None:
    def sixty_posted(node: Any) -> bool:
        return node.running is not None and node.running.pipeline.counters.posted >= 60

    code, node, logs = run_node_in_process(shapes, tmp_path, fail=lambda n: n > 1 and n % 7 == 0, until=sixty_posted)
    counters = node.running.pipeline.counters
    assert code == 0 and counters.posted >= 60
    assert counters.invoke_failed >= 60 // 7 - 1 and counters.invoke_failed == sum(
        1 for entry in logs if entry["event"] == "frame skipped: model invoke failed")
    stats = [entry for entry in logs if entry["event"] == "stats"]
    assert stats and stats[-1]["invoke_failed"] > 0


def test_a_model_that_keeps_failing_exits_1_with_one_clear_line(shapes: Path, tmp_path: Path) -> None:
    code, node, logs = run_node_in_process(shapes, tmp_path, fail=lambda n: n > 20, until=lambda n: False)
    assert code == 1
    assert node.running.pipeline.counters.invoke_failed == node.running.pipeline.max_invoke_failures == 10
    fatal = [entry["event"] for entry in logs if entry["log_level"] == "error" and "in a row" in entry["event"]]
    assert fatal == ["the model failed 10 frames in a row: injected failure of invoke 30"]


# -- the cache directory is read-only or full ----------------------------------------------------

FAKE_DELEGATE = source("fake_delegate.c").read_text()


@pytest.fixture(scope="module")
def fake_delegate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A descriptor for a fake NPU delegate with a graph cache (the delegate takes no op: XNNPACK runs)."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is needed to build the fake delegate")
    folder = tmp_path_factory.mktemp("delegate")
    (folder / "fake.c").write_text(FAKE_DELEGATE)
    subprocess.run([gcc, "-shared", "-fPIC", "-o", str(folder / "libfake.so"), str(folder / "fake.c")], check=True)
    descriptor = folder / "fake.yaml"
    descriptor.write_text(f"name: fake\nlibrary: {folder / 'libfake.so'}\noptions: {{}}\nenvironment: {{}}\n"
                          "cache:\n  environment: {FAKE_CACHE_DIR: \"{dir}\"}\n")
    return descriptor


@contextmanager
def mounted_tmpfs(where: Path, options: str) -> Iterator[bool]:
    """A small tmpfs at ``where`` when this process may mount (root); False (nothing mounted) otherwise."""
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        yield False
        return
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True,
                            check=False)
    if result.returncode != 0:
        yield False
        return
    try:
        yield True
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def read_only_dir(where: Path) -> Iterator[Path | None]:
    with mounted_tmpfs(where, "size=64k,ro") as mounted:
        if mounted:
            yield where
        elif os.geteuid() != 0:
            where.chmod(0o555)  # root ignores modes: only a read-only mount stops it
            yield where
        else:
            yield None


def full_dir(where: Path) -> Iterator[Path | None]:
    with mounted_tmpfs(where, "size=16k") as mounted:
        if not mounted:
            yield None
            return
        filler = os.open(where / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(filler, bytes(4096)):
                pass
        except OSError:
            pass  # full
        finally:
            os.close(filler)
        yield where


@pytest.mark.parametrize("kind", ["a file where the directory should be", "a read-only file system",
                                  "a full file system"])
def test_an_unusable_cache_directory_is_logged_and_the_node_runs_without_it(kind: str, shapes: Path,
                                                                            fake_delegate: Path,
                                                                            tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    if kind.startswith("a file"):
        cache.write_text("not a directory")
        places: Iterator[Path | None] = iter([cache])
    elif kind.startswith("a read-only"):
        places = read_only_dir(cache)
    else:
        places = full_dir(cache)
    where = next(places)
    try:
        if where is None:
            pytest.skip(f"cannot make {kind} here (needs root and tmpfs mounts)")
        camera_port, node_port = free_port(), free_port()
        with processes(tmp_path) as start:
            start("camera", *camera_args(camera_port, "--size", "320x240", "--fps", "30"))
            node = running(start("node", *node_args(shapes, camera_port, node_port, "--delegate",
                                                    str(fake_delegate), "--cache-dir", str(where))))
            listener = Listener([DETECT], [node_port])
            try:
                listener.wait_for(lambda: listener.count(DETECT) >= 5, 60, "Detects without the cache")
            finally:
                listener.close()
            assert node.stop(timeout=5.0) == 0
    finally:
        for _ in places:  # unmount
            pass
    warnings = [e["event"] for e in node.json_lines() if e["level"] == "warning" and "cache" in e["event"]]
    assert len(warnings) == 1 and "is not writable" in warnings[0]
    assert "runs without its compiled-graph cache" in warnings[0]


# -- SIGTERM mid-frame ---------------------------------------------------------------------------


def test_sigterm_mid_frame_exits_0_within_5_seconds(tmp_path: Path) -> None:
    from tests.helpers.models import slow_model

    model = slow_model(tmp_path / "slow.tflite")
    camera_port, node_port = free_port(), free_port()
    with processes(tmp_path) as start:
        start("camera", *camera_args(camera_port, "--size", "640x480", "--fps", "10"))
        node = start("node", *node_args(model, camera_port, node_port, "--stats-interval", "0.2"))
        wait_until(lambda: '"event": "running slow-model"' in node.text(), 180, "the slow model to load")
        # The first frame arrived: its invoke (seconds long) is under way.
        wait_until(lambda: last_stats(node)["received"] > 0, 30, "the first camera frame")
        assert '"event": "first frame decoded' not in node.text()
        began = time.monotonic()
        code = node.stop(timeout=5.0)
        took = time.monotonic() - began
    assert code == 0 and took < scaled(5.0), (code, took, node.text()[-2000:])
    events = [entry["event"] for entry in node.json_lines()]
    assert "SIGTERM: shutting down" in events and "stopped" in events
