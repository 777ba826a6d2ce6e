"""Several cameras: one edgenode serving N cameras, against N edgenode processes serving one each.

``python bench/run.py cameras [--seconds=S] [--warmup=S] [--rounds=N] [--counts=1,2,4] [--models=DIR]
[--fps=F] [--model=int8|f32]``

For each N in ``--counts``, N camera simulators publish 1920x1080 YUYV frames at 30 fps (``bus.jpg`` and
``zidane.jpg`` in turn, each camera starting at another point, so the model finds people and the trackers
have work) on ``rt/cam<k>/dma``, and two contenders serve them in turn, beside the same running cameras:

- **one node**: one ``edgenode --track`` with ``--camera-topic rt/cam<k>/dma`` for every camera (its
  outputs on ``rt/model/cam<k>/...``), default flags otherwise (every core, the ``auto`` schedule and batch);
- **N processes**: one ``edgenode --track`` per camera, each with its outputs on the same keys (with N = 1
  the two are the same process, measured once).

A subscriber per stream stamps each Detect as it arrives: frames per second per stream over the window
(intervals between its first and last Detect in the window, over their span; their total; the spread
max/min), camera-to-publish latency (arrival minus the Detect's stamp, the
camera's capture time: one machine, one clock), p50 and p99 per stream. Resident memory is the sum of the
contender's processes' VmRSS at the end of the window (``/proc``); CPU is every thread of its processes
over the window (``/proc/<pid>/stat``), and frames per CPU second its cost per frame: on a machine shared with
other work, N processes of N model threads each take a larger share of the cores than one process does, so
total throughput alone favours them there.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from common import cpu_model, header, load_average, save, table
from endtoend.measure import Child, Recorder, cpu_window, endpoint, free_port, percentile, start

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
SHARED = Path(os.environ.get("EDGENODE_TEST_MODELS", HERE.parent.parent / "shared" / "models"))
ONE_NODE, SEPARATE = "one node", "processes"


@dataclass
class Contender:
    """One contender's window: per stream, frames and latencies (ms); resident memory (MiB)."""

    name: str
    count: int
    seconds: float = 0.0
    frames: list[int] = field(default_factory=list)
    spans: list[float] = field(default_factory=list)  # seconds from each stream's first Detect to its last
    latencies: list[list[float]] = field(default_factory=list)
    rss_mib: float = 0.0
    processes: int = 0
    served: int = 0  # Detects in the windows, every stream
    cpu_seconds: float = 0.0  # the contender's processes, every thread, over the windows
    machine_seconds: float = 0.0  # every core of the machine busy, over the windows

    rounds: list[float] = field(default_factory=list)  # the total frames a second of each round

    def rates(self) -> list[float]:
        """Frames a second of each stream: intervals between its Detects over their span, pooled over the rounds
        (at a frame or two a second, counting frames in a window would be off by up to one frame in where the
        window cuts the turns)."""
        return [intervals / span if span > 0 else 0.0 for intervals, span in zip(self.frames, self.spans,
                                                                                  strict=True)]

    def add(self, other: Contender) -> None:
        """Pool ``other`` (a round of the same contender) into this one."""
        if not self.frames:
            self.frames, self.spans = [0] * len(other.frames), [0.0] * len(other.spans)
            self.latencies = [[] for _ in other.latencies]
        for index in range(len(other.frames)):
            self.frames[index] += other.frames[index]
            self.spans[index] += other.spans[index]
            self.latencies[index] += other.latencies[index]
        self.seconds += other.seconds
        self.served += other.served
        self.cpu_seconds += other.cpu_seconds
        self.machine_seconds += other.machine_seconds
        self.rss_mib = max(self.rss_mib, other.rss_mib)
        self.processes = other.processes
        self.rounds.append(other.total)

    @property
    def total(self) -> float:
        return sum(self.rates())

    @property
    def spread(self) -> float:
        rates = self.rates()
        return max(rates) / min(rates) if min(rates) > 0 else float("inf")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def camera_argv(index: int, port: int, models: Path, fps: float, nice: int = 0) -> list[str]:
    images = [str(models / name) for name in ("bus.jpg", "zidane.jpg") if (models / name).exists()]
    images = images[index % 2:] + images[:index % 2]  # cameras start on different pictures
    source = ["--images", *images, "--hold", str(15 + 4 * index)] if images else ["--seed", str(index + 1)]
    return [*(["nice", "-n", str(nice)] if nice else []), PYTHON, "-m", "edgenode.tools.camera",
            "--size", "1920x1080", "--fourcc", "YUYV", "--fps", f"{fps:g}",
            "--topic", f"rt/cam{index}/dma", "--info-topic", f"rt/cam{index}/info", "--jpeg-fps", "0",
            "--listen", endpoint(port), "--no-multicast-scouting", "--log-level", "warning", *source]


def node_argv(model: Path, cameras: list[int], streams: list[int], port: int, schedule: str = "auto") -> list[str]:
    argv = [PYTHON, "-m", "edgenode", "--model", str(model), "--track", "--log-format", "json",
            "--listen", endpoint(port), "--no-multicast-scouting", "--stats-interval", "5", "--schedule", schedule]
    for camera in cameras:
        argv += ["--connect", endpoint(camera)]
    for index in streams:
        argv += ["--camera-topic", f"cam{index}=rt/cam{index}/dma"]
    if len(streams) == 1:  # one stream keeps the single-camera keys: put it where the multi-camera node would
        index = streams[0]
        argv += ["--detect-topic", f"rt/model/cam{index}/boxes2d", "--info-topic", f"rt/model/cam{index}/info"]
    return argv


def measure(name: str, model: Path, count: int, camera_ports: list[int], *, args: argparse.Namespace,
            folder: Path) -> Contender:
    groups = [list(range(count))] if name == ONE_NODE else [[index] for index in range(count)]
    ports = [free_port() for _ in groups]
    schedule = args.schedule if name == ONE_NODE else "auto"
    children: list[Child] = [start(f"{name.replace(' ', '-')}-{count}-{i}",
                                   node_argv(model, camera_ports, group, port, schedule), folder)
                             for i, (group, port) in enumerate(zip(groups, ports, strict=True))]
    connect = [endpoint(port) for port in ports]
    recorders = [Recorder(connect, detect_topic=f"rt/model/cam{index}/boxes2d", camera_topic=f"rt/cam{index}/dma")
                 for index in range(count)]
    try:
        deadline = time.monotonic() + 240
        while sum(1 for child in children for line in child.lines()  # each stream's first frame of the model
                  if str(line.get("event", "")).startswith("first frame decoded")) < count:
            if time.monotonic() > deadline or any(child.popen.poll() is not None for child in children):
                logs = "\n".join(child.log.read_text()[-1500:] for child in children)
                raise RuntimeError(f"{name}, {count} cameras: not every stream decoded a frame in 240 s:\n{logs}")
            time.sleep(0.2)
        time.sleep(args.warmup)
        begin = time.time_ns()
        with cpu_window({f"{i}": child.pid for i, child in enumerate(children)}) as cpu:
            time.sleep(args.seconds)
        end = time.time_ns()
        rss = sum(rss_mib(child.pid) for child in children)
    finally:
        codes = [child.stop() for child in children]
        for recorder in recorders:
            recorder.close()
    if any(codes):
        raise RuntimeError(f"{name}: exit codes {codes}: {children[0].log.read_text()[-2000:]}")
    sample = cpu()
    run = Contender(name, count, (end - begin) / 1e9, rss_mib=rss, processes=len(children),
                    cpu_seconds=sum(sample.processes.values()), machine_seconds=sample.machine)
    for recorder in recorders:
        arrivals, _ = recorder.between(begin, end)
        run.frames.append(max(len(arrivals) - 1, 0))  # intervals
        run.served += len(arrivals)
        run.spans.append((arrivals[-1].received_ns - arrivals[0].received_ns) / 1e9 if arrivals else 0.0)
        run.latencies.append([(a.received_ns - a.stamp_ns) / 1e6 for a in arrivals])
    for child in children:
        lines = child.lines()
        batch = [line["event"] for line in lines if str(line.get("event", "")).startswith("batch")]
        if batch:
            print(f"{child.name}: {batch[0]}", file=sys.stderr)
    return run


def run_count(model: Path, count: int, args: argparse.Namespace, folder: Path) -> dict[str, Contender]:
    ports = [free_port() for _ in range(count)]
    cameras = [start(f"camera{index}-{count}", camera_argv(index, port, args.models, args.fps, args.nice_cameras),
                     folder)
               for index, port in enumerate(ports)]
    names = [ONE_NODE, SEPARATE] if count > 1 else [ONE_NODE]
    runs = {name: Contender(name, count) for name in names}
    try:
        time.sleep(2.0)
        for index in range(args.rounds):  # each round in the other order: a drift of the load hits both alike
            for name in names if index % 2 == 0 else names[::-1]:
                runs[name].add(measure(name, model, count, ports, args=args, folder=folder))
    finally:
        for camera in cameras:
            camera.stop()
    return runs


def row(count: int, run: Contender) -> list[object]:
    rates = run.rates()
    p50 = [percentile(latencies, 50) for latencies in run.latencies]
    p99 = [percentile(latencies, 99) for latencies in run.latencies]
    return [count, run.name if count > 1 else "one node (= one process)", run.processes,
            f"{run.total:.2f} ({', '.join(f'{total:.2f}' for total in run.rounds)})",
            " / ".join(f"{rate:.2f}" for rate in rates), f"{run.spread:.2f}",
            " / ".join(f"{value:.0f}" for value in p50), " / ".join(f"{value:.0f}" for value in p99),
            f"{run.rss_mib:.0f}", f"{run.cpu_seconds / run.seconds:.2f}",
            f"{run.served / run.cpu_seconds:.2f}" if run.cpu_seconds else "-",
            f"{run.machine_seconds / run.seconds:.2f}"]


def goals(results: dict[int, dict[str, Contender]]) -> list[str]:
    lines = []
    for count, runs in results.items():
        one = runs[ONE_NODE]
        spread = f"per-stream spread {one.spread:.2f} (goal <= 1.10): {'met' if one.spread <= 1.10 else 'not met'}"
        if count == 1 or SEPARATE not in runs:
            lines.append(f"- {count} camera: {one.total:.2f} frames/s, {one.rss_mib:.0f} MiB; {spread}")
            continue
        separate = runs[SEPARATE]
        ratio = one.total / separate.total if separate.total else float("inf")
        memory = one.rss_mib / separate.rss_mib if separate.rss_mib else 0.0
        lines.append(f"- {count} cameras: total {one.total:.2f} frames/s against {separate.total:.2f} for {count} "
                     f"processes, {ratio:.2f}x (goal >= 1.00): {'met' if ratio >= 1.0 else 'not met'}; {spread}; "
                     f"memory {one.rss_mib:.0f} MiB against {separate.rss_mib:.0f} MiB, {memory:.0%} (goal: well "
                     f"below): {'met' if memory <= 0.75 else 'not met'}")
    return lines


def main(argv: list[str]) -> str:
    parser = argparse.ArgumentParser(prog="bench/cameras.py")
    parser.add_argument("--seconds", type=float, default=20.0, help="measuring window per contender")
    parser.add_argument("--warmup", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=2, help="rounds per number of cameras, alternating the order")
    parser.add_argument("--counts", default="1,2,4", help="numbers of cameras")
    parser.add_argument("--models", type=Path, default=SHARED)
    parser.add_argument("--model", choices=("int8", "f32"), default="int8")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--schedule", choices=("auto", "serial", "overlap"), default="auto",
                        help="--schedule of the one node (the processes keep auto)")
    parser.add_argument("--nice-cameras", type=int, default=0, metavar="N",
                        help="run the camera simulators at this niceness, so the contenders' share of the cores "
                             "does not depend on how many threads they set against the cameras'")
    args = parser.parse_args(argv)
    model = args.models / f"yolov8s-fall-{args.model}.tflite"
    if not model.exists():
        return f"cameras: {model} not found; set EDGENODE_TEST_MODELS or --models\n"
    folder = Path(tempfile.mkdtemp(prefix="edgenode-bench-cameras-"))
    load_before = load_average()
    started = time.monotonic()
    results = {count: run_count(model, count, args, folder) for count in (int(c) for c in args.counts.split(","))}
    shown = ["python", "bench/run.py", "cameras", *argv]
    rows = [row(count, run) for count, runs in results.items() for run in runs.values()]
    markdown = "\n".join([
        header(f"Several cameras: 1920x1080 YUYV {args.fps:g} fps each, {args.model} yolov8s-fall, --track", shown),
        f"- CPU: {cpu_model()}; load average before: {load_before}, after: {load_average()}; the run took "
        f"{time.monotonic() - started:.0f} s: {args.rounds} round(s) of {args.seconds:g} s per contender (after "
        f"{args.warmup:g} s of warm-up), in turn beside the same cameras, pooled\n",
        "**Goals**\n\n" + "\n".join(goals(results)) + "\n",
        table(["cameras", "contender", "processes", "frames/s total (each round)", "frames/s per stream",
               "spread max/min", "latency p50 ms per stream", "latency p99 ms per stream", "RSS MiB (sum)",
               "CPU cores used", "frames per CPU second", "machine busy (cores)"], rows),
    ])
    save("cameras", markdown, {count: {name: vars(run) for name, run in runs.items()}
                               for count, runs in results.items()})
    if os.environ.get("EDGENODE_BENCH_KEEP_LOGS") == "1":
        markdown += f"\nLogs kept in {folder}.\n"
    else:
        shutil.rmtree(folder, ignore_errors=True)
    return markdown


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    print(main(sys.argv[1:]))
