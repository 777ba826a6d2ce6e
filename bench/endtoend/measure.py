"""Measuring real processes: a Detect subscriber, process and machine CPU time, percentiles.

The subscriber stamps each Detect when it arrives (``time.time_ns``, CLOCK_REALTIME) and keeps
its header stamp, the camera's CLOCK_REALTIME capture time: the difference is camera-to-publish
latency (plus one local Zenoh hop). Every Detect is decoded with ``edgefirst-schemas``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import zenoh

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def endpoint(port: int) -> str:
    return f"tcp/127.0.0.1:{port}"


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))])


def mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else 0.0


@dataclass
class Arrival:
    received_ns: int
    stamp_ns: int
    boxes: int


@dataclass
class Recorder:
    """Detects (and camera frames) seen by a zenoh session connected to the given endpoints."""

    connect: list[str]
    detect_topic: str = "rt/model/boxes2d"
    camera_topic: str = "rt/camera/dma"
    detects: list[Arrival] = field(default_factory=list)
    camera: list[int] = field(default_factory=list)
    undecodable: int = 0

    def __post_init__(self) -> None:
        from edgefirst.schemas import edgefirst_msgs as em

        self._detect_cls = em.Detect
        self._lock = threading.Lock()
        config = zenoh.Config()
        config.insert_json5("mode", '"peer"')
        config.insert_json5("connect/endpoints", json.dumps(self.connect))
        config.insert_json5("scouting/multicast/enabled", "false")
        self.session = zenoh.open(config)
        self._subs = [self.session.declare_subscriber(self.detect_topic, self._on_detect),
                      self.session.declare_subscriber(self.camera_topic, self._on_camera)]

    def _on_detect(self, sample: zenoh.Sample) -> None:
        now = time.time_ns()
        try:
            detect = self._detect_cls.from_cdr(sample.payload.to_bytes())
            arrival = Arrival(now, int(detect.stamp.to_nanos() or 0), len(detect.boxes))
        except Exception:
            with self._lock:
                self.undecodable += 1
            return
        with self._lock:
            self.detects.append(arrival)

    def _on_camera(self, sample: zenoh.Sample) -> None:
        now = time.time_ns()
        with self._lock:
            self.camera.append(now)

    def between(self, start_ns: int, end_ns: int) -> tuple[list[Arrival], int]:
        """Detects that arrived in [start, end) and how many camera frames were published meanwhile."""
        with self._lock:
            detects = [a for a in self.detects if start_ns <= a.received_ns < end_ns and a.stamp_ns]
            camera = sum(1 for t in self.camera if start_ns <= t < end_ns)
        return detects, camera

    def count(self) -> int:
        with self._lock:
            return len(self.detects)

    def wait_for_detects(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.count() < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def close(self) -> None:
        for sub in self._subs:
            sub.undeclare()
        self.session.close()


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its threads so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (not idle or iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / CLOCK_TICKS


@dataclass
class CpuSample:
    """CPU seconds used over a window by each watched process and by the whole machine."""

    processes: dict[str, float]
    machine: float
    seconds: float


@contextmanager
def cpu_window(pids: dict[str, int]) -> Iterator[Callable[[], CpuSample]]:
    """Measure CPU time over the ``with`` block; call the yielded function afterwards for the result."""
    start_proc = {name: process_cpu_seconds(pid) for name, pid in pids.items()}
    start_machine, start_wall = machine_busy_seconds(), time.monotonic()
    result: list[CpuSample] = []
    try:
        yield lambda: result[0]
    finally:
        result.append(CpuSample({name: process_cpu_seconds(pid) - start_proc[name] for name, pid in pids.items()},
                                machine_busy_seconds() - start_machine, time.monotonic() - start_wall))


@dataclass
class Child:
    """A child process whose stdout (and stderr) go to ``log``."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def lines(self) -> list[dict[str, object]]:
        """The JSON lines it printed."""
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    found.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return found

    def stop(self, timeout: float = 10.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return int(self.popen.returncode)


def start(name: str, argv: list[str], folder: Path, env: dict[str, str] | None = None,
          cwd: Path | None = None) -> Child:
    log = folder / f"{name}.log"
    with log.open("wb") as handle:
        popen = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                                 cwd=cwd)
    return Child(name, popen, log)
