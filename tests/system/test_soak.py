"""Soak: a long run in real processes, checking that nothing grows and nothing gets stuck.

The camera simulator publishes small frames fast, the node runs the project's demo detector
(about 5 ms an invoke) with tracking and annotations, and a subscriber decodes every message
with edgefirst-schemas. Every second the node's open fds (/proc/PID/fd) and resident memory
(/proc/PID/status) are sampled against the frames it has published so far. At the end:

- open fds exactly flat after warm-up (frame buffers in flight, at most one import and its
  pidfd, are told apart and bounded);
- resident memory growth per 10,000 frames below a bound (least-squares slope after warm-up);
- every message decodes; the stats line kept coming every interval with frames advancing (no
  stuck stage); SIGTERM stops the node, exit 0, within 5 s.

The default run is short (``EDGENODE_SOAK_FRAMES``, default 2000 frames, about 15 s); the long
run recorded in BENCHMARKS.md is ``EDGENODE_SOAK_FRAMES=30000 python -m pytest tests/system/test_soak.py -s``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from edgenode.tools.demo.shapes_model import build_shapes_model
from tests.helpers.processes import Listener, camera_args, free_port, node_args, processes, running
from tests.helpers.timing import scaled

ef = pytest.importorskip("edgefirst.schemas")
from edgefirst.schemas import edgefirst_msgs as em  # noqa: E402
from edgefirst.schemas import foxglove_msgs as fm  # noqa: E402

FRAMES = int(os.environ.get("EDGENODE_SOAK_FRAMES", "2000"))
WARMUP_FRAMES = min(max(300, FRAMES // 10), FRAMES // 3)
RSS_BOUND_MIB_PER_10K = 4.0  # least-squares growth after warm-up, per 10,000 frames
SHORT_RUN_RSS_BOUND_MIB = 6.0  # runs too short for a slope: total growth after warm-up
pytestmark = [pytest.mark.slow, pytest.mark.soak, pytest.mark.timeout(180 + FRAMES // 15)]
DECODERS = {"rt/model/boxes2d": em.Detect, "rt/model/info": em.ModelInfo,
            "rt/model/visualization": fm.ImageAnnotation}


class DecodingListener(Listener):
    """Decodes every message as it arrives and keeps only counts (a long run would hold too much)."""

    def __init__(self, connect: list[int]) -> None:
        self.counts = dict.fromkeys(DECODERS, 0)
        self.undecodable: list[str] = []
        self._count_lock = threading.Lock()
        super().__init__(list(DECODERS), connect)

    def _recorder(self, topic: str):  # type: ignore[no-untyped-def]
        decoder = DECODERS[topic]

        def record(sample) -> None:  # type: ignore[no-untyped-def]
            payload = sample.payload.to_bytes()
            try:
                decoder.from_cdr(payload)
                ok = True
            except Exception as exc:
                ok, error = False, f"{topic}: {exc}"
            with self._count_lock:
                if ok:
                    self.counts[topic] += 1
                else:
                    self.undecodable.append(error)
        return record

    def count(self, topic: str) -> int:
        with self._count_lock:
            return self.counts[topic]


def frame_buffer(target: str) -> bool:
    """An fd the node holds only while a frame is in flight: an imported camera buffer or its pidfd."""
    return target.startswith(("/memfd:", "/dmabuf:", "anon_inode:dmabuf", "anon_inode:[pidfd]"))


def sample(pid: int) -> tuple[list[str], int]:
    """The node's open fds (readlink targets) and resident memory in KiB."""
    targets = []
    for entry in os.scandir(f"/proc/{pid}/fd"):
        try:
            targets.append(os.readlink(entry.path))
        except OSError:
            continue  # closed while listing
    rss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
               if line.startswith("VmRSS:"))
    return targets, rss


def slope(points: list[tuple[int, int]]) -> float:
    """Least-squares slope of y over x."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / var if var else 0.0


def test_soak_fds_and_memory_stay_flat_and_every_message_decodes(tmp_path: Path) -> None:
    model = tmp_path / "shapes.tflite"
    model.write_bytes(build_shapes_model())
    camera_port, node_port = free_port(), free_port()
    samples: list[tuple[float, int, list[str], int]] = []
    with processes(tmp_path) as start:
        start("camera", *camera_args(camera_port, "--size", "320x240", "--fps", "200", "--log-level", "warning"))
        node = running(start("node", *node_args(model, camera_port, node_port, "--track", "--visualization",
                                                "--stats-interval", "1")))
        listener = DecodingListener([node_port])
        started = time.monotonic()
        try:
            listener.wait_for(lambda: listener.count("rt/model/boxes2d") >= 1, 60, "the first Detect")
            while (done := listener.count("rt/model/boxes2d")) < FRAMES:
                assert node.popen.poll() is None, node.text()[-3000:]
                targets, rss = sample(node.popen.pid)
                samples.append((time.monotonic() - started, done, targets, rss))
                time.sleep(1.0)
            targets, rss = sample(node.popen.pid)
            samples.append((time.monotonic() - started, listener.count("rt/model/boxes2d"), targets, rss))
            began = time.monotonic()
            code = node.stop(timeout=5.0)
            stop_seconds = time.monotonic() - began
        finally:
            listener.close()
        duration = time.monotonic() - started
    log = [json.loads(line) for line in node.text().splitlines() if line.startswith("{")]

    # every message decodes, and the node stopped cleanly
    assert listener.undecodable == []
    assert code == 0 and stop_seconds < scaled(5.0), node.text()[-2000:]
    assert any(entry["event"] == "stopped" for entry in log)

    # no stuck stage: a stats line every interval, frames advancing in each after warm-up
    stats = [entry for entry in log if entry["event"] == "stats"]
    assert len(stats) >= 0.8 * (duration - 10), len(stats)
    assert all(entry["frames"] > 0 for entry in stats[3:-1]), [entry["frames"] for entry in stats]
    assert stats[-1]["skipped"] == {} and stats[-1]["prepare_failed"] == stats[-1]["invoke_failed"] == 0

    # open fds: exactly flat after warm-up, apart from at most one frame in flight
    steady = [s for s in samples if s[1] >= WARMUP_FRAMES]
    assert len(steady) >= 3, f"too few samples after warm-up: {len(samples)}"
    persistent = [sorted(t for t in targets if not frame_buffer(t)) for _, _, targets, _ in steady]
    in_flight = [sum(frame_buffer(t) for t in targets) for _, _, targets, _ in steady]
    assert all(fds == persistent[0] for fds in persistent), {len(fds) for fds in persistent}
    assert max(in_flight) <= 2, [sorted(t for t in targets if frame_buffer(t)) for _, _, targets, _ in steady]

    # resident memory: growth per 10k frames after warm-up
    points = [(frames, rss) for _, frames, _, rss in steady]
    growth_per_10k_mib = slope(points) * 10_000 / 1024
    total_growth_mib = (points[-1][1] - points[0][1]) / 1024
    frames_measured = points[-1][0] - points[0][0]
    summary = {"frames": samples[-1][1], "seconds": round(duration, 1), "fps": round(samples[-1][1] / duration, 1),
               "open_fds": len(persistent[0]), "rss_start_mib": round(points[0][1] / 1024, 1),
               "rss_end_mib": round(points[-1][1] / 1024, 1), "rss_growth_per_10k_frames_mib":
               round(growth_per_10k_mib, 2), "messages": listener.counts, "stats_lines": len(stats),
               "camera_frames_received": stats[-1]["received"], "dropped": stats[-1]["dropped"],
               "skipped": stats[-1]["skipped"], "max_frame_fds_in_flight": max(in_flight),
               "sigterm_to_exit_s": round(stop_seconds, 2)}
    print("soak:", json.dumps(summary))
    if frames_measured >= 10_000:
        assert growth_per_10k_mib < RSS_BOUND_MIB_PER_10K, summary
    else:
        assert total_growth_mib < SHORT_RUN_RSS_BOUND_MIB, summary
