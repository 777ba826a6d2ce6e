"""End to end: camera simulator -> edgenode -> subscriber, against (a) the invoke loop and (b) the reference.

``python bench/run.py pipeline [--seconds=S] [--rounds=N] [--models=DIR] [--threads=N] [--only=int8,f32]
[--baseline=DIR] [--schedule=auto|serial|overlap]``

Real processes on this machine, for each of the real ``yolov8s-fall`` models (int8 and float32):

- the camera simulator publishes 1920x1080 YUYV frames at 30 fps (``bus.jpg`` and ``zidane.jpg``
  in turn, half a second each, so the model finds people and the tracker has work);
- **edgenode** runs the model with ``--track``, default flags otherwise (stretch, every core, the
  ``auto`` schedule), and again with ``--schedule overlap`` to show what the schedule changes;
- **(a)** the model's own invoke loop (same runtime, same threads), the physical limit: with the
  camera off, and beside the running camera;
- **(b)** a sequential pipeline of the reference's own components (``edgefirst_hal`` preprocess and
  decode, the same TFLite runtime and threads, ``edgefirst-tracker``, ``edgefirst-schemas``), fed the
  same camera the same way (``bench/endtoend/reference.py``);
- with ``--baseline=DIR``, edgenode again from another source tree (e.g. ``git worktree add
  /tmp/base main``), same flags, so a change is measured side by side with what it changes.
  ``--schedule`` sets the schedule of both (default ``auto``).

A subscriber measures throughput (Detects per second) and camera-to-publish latency (arrival
time minus the Detect's header stamp, the camera's CLOCK_REALTIME capture time: one machine,
one clock). Per-stage times come from the node's ``--tracy`` per-frame log lines and the
reference's own per-frame lines, for the frames published inside the measuring window. CPU
time comes from /proc (each process with all its threads). Each contender runs alone beside
the camera for the same window; every round runs all of them in turn, and the figures pool
all rounds (frames over seconds, percentiles over all frames), so machine noise hits all alike.
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
from typing import Any

from common import RESULTS, cpu_model, header, save, table
from endtoend.measure import Child, CpuSample, Recorder, cpu_window, endpoint, free_port, mean, percentile, start

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("EDGENODE_TEST_MODELS", HERE.parents[1] / "shared" / "models"))
PYTHON = sys.executable
STAGES = ("preprocess", "invoke", "decode", "track", "publish")
LOOP = "(a) invoke loop, camera off"
LOOP_CAMERA = "(a) invoke loop, camera on"
NODE = "edgenode"
NODE_OVERLAP = "edgenode --schedule overlap"
NODE_BASELINE = "edgenode, baseline tree"
REFERENCE = "(b) reference components"


@dataclass
class Run:
    """What one contender did in one window (rounds are pooled by adding these up)."""

    seconds: float = 0.0
    frames: int = 0
    camera_frames: int = 0
    latencies: list[float] = field(default_factory=list)
    stages: list[dict[str, float]] = field(default_factory=list)
    boxes: list[int] = field(default_factory=list)
    cpu: float = 0.0
    camera_cpu: float = 0.0
    other_cpu: float = 0.0
    undecodable: int = 0
    pipeline: bool = True

    def add(self, other: Run) -> None:
        self.seconds += other.seconds
        self.frames += other.frames
        self.camera_frames += other.camera_frames
        self.latencies += other.latencies
        self.stages += other.stages
        self.boxes += other.boxes
        self.cpu += other.cpu
        self.camera_cpu += other.camera_cpu
        self.other_cpu += other.other_cpu
        self.undecodable += other.undecodable
        self.pipeline = other.pipeline

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    def stage_means(self) -> dict[str, float]:
        return {name: mean([frame[name] for frame in self.stages if name in frame]) for name in STAGES
                if any(name in frame for frame in self.stages)}

    @property
    def invoke_share(self) -> float:
        """Share of the wall-clock time the model was running: mean invoke time x frames per second.

        Robust to the machine changing speed between windows (this VM's invoke times switch between
        two levels about 10% apart now and then): it compares each contender with itself."""
        return self.stage_means().get("invoke", 0.0) / 1e3 * self.fps

    @property
    def non_invoke(self) -> float:
        return sum(value for name, value in self.stage_means().items() if name != "invoke")

    @property
    def post(self) -> float:
        """Decode + track + publish per frame (ms): the CPU work after invoke that no accelerator takes."""
        return sum(value for name, value in self.stage_means().items() if name in ("decode", "track", "publish"))


def _apply_cpu(run: Run, sample: CpuSample) -> None:
    run.cpu = sample.processes.get("contender", 0.0)
    run.camera_cpu = sample.processes.get("camera", 0.0)
    run.other_cpu = max(0.0, sample.machine - sum(sample.processes.values()))


def camera_argv(port: int, models: Path, fps: float) -> list[str]:
    images = [str(models / name) for name in ("bus.jpg", "zidane.jpg") if (models / name).exists()]
    source = ["--images", *images, "--hold", "15"] if images else []
    return [PYTHON, "-m", "edgenode.tools.camera", "--size", "1920x1080", "--fourcc", "YUYV", "--fps", f"{fps:g}",
            "--listen", endpoint(port), "--no-multicast-scouting", "--log-level", "warning", *source]


def invoke_loop(model: Path, *, seconds: float, threads: int, folder: Path, tag: str, watch: dict[str, int]) -> Run:
    child = start(f"loop-{tag}", [PYTHON, str(HERE / "endtoend" / "invoke_loop.py"), "--model", str(model),
                                   "--seconds", f"{seconds:g}", "--threads", str(threads)], folder)
    deadline = time.monotonic() + 120  # it loads the model and warms up, then prints "timing"
    while child.popen.poll() is None and time.monotonic() < deadline and "timing" not in child.log.read_text():
        time.sleep(0.02)
    with cpu_window({**watch, "contender": child.pid}) as cpu:
        child.popen.wait(seconds + 120)
    found = [line for line in child.lines() if line.get("event") == "invoke_loop"]
    if not found:
        raise RuntimeError(f"invoke loop failed: {child.log.read_text()[-2000:]}")
    times: list[int] = found[0]["invoke_us"]  # type: ignore[assignment]
    run = Run(seconds=float(found[0]["seconds"]), frames=len(times),  # type: ignore[arg-type]
              stages=[{"invoke": t / 1000} for t in times], pipeline=False)
    sample = cpu()
    sample.processes["contender"] = float(found[0]["cpu_seconds"])  # type: ignore[arg-type]  # it has exited
    _apply_cpu(run, sample)
    return run


def node_stages(line: dict[str, Any]) -> dict[str, float]:
    us = {k: float(line[k]) / 1000 for k in ("preprocess_us", "invoke_us", "output_us", "decode_us", "track_us",
                                              "publish_us")}
    return {"preprocess": us["preprocess_us"], "invoke": us["invoke_us"],
            "decode": us["output_us"] + us["decode_us"], "track": us["track_us"], "publish": us["publish_us"]}


def reference_stages(line: dict[str, Any]) -> dict[str, float]:
    us = {k: float(v) / 1000 for k, v in line.items() if k.endswith("_us")}
    return {"preprocess": us["import_us"] + us["convert_us"] + us["input_us"], "invoke": us["invoke_us"],
            "decode": us["output_us"] + us["decode_us"], "track": us["track_us"], "publish": us["publish_us"]}


def pipeline(kind: str, model: Path, *, camera_port: int, seconds: float, warmup: float, threads: int,
             folder: Path, tag: str, watch: dict[str, int], schedule: str = "auto", baseline: Path | None = None
             ) -> Run:
    port = free_port()
    if kind == REFERENCE:
        argv = [PYTHON, str(HERE / "endtoend" / "reference.py"), "--model", str(model), "--connect",
                endpoint(camera_port), "--listen", endpoint(port), "--threads", str(threads)]
    else:
        argv = [PYTHON, "-m", "edgenode", "--model", str(model), "--track", "--tracy", "--log-level", "debug",
                "--log-format", "json", "--connect", endpoint(camera_port), "--listen", endpoint(port),
                "--no-multicast-scouting", "--threads", str(threads), "--stats-interval", "5"]
        if kind == NODE_OVERLAP:
            argv += ["--schedule", "overlap"]
        elif schedule != "auto":
            argv += ["--schedule", schedule]
    name = {NODE: "node", NODE_BASELINE: "node-baseline", NODE_OVERLAP: "node-overlap", REFERENCE: "reference"}[kind]
    tree: dict[str, Any] = {}
    if kind == NODE_BASELINE:  # python -m imports from its working directory first
        assert baseline is not None
        tree = {"env": {"PYTHONPATH": str(baseline)}, "cwd": baseline}
    child: Child = start(f"{name}-{tag}", argv, folder, **tree)
    recorder = Recorder([endpoint(camera_port), endpoint(port)])
    try:
        if not recorder.wait_for_detects(3, 180):
            raise RuntimeError(f"{kind}: no Detect within 180 s: {child.log.read_text()[-2000:]}")
        time.sleep(warmup)
        begin = time.time_ns()
        with cpu_window({**watch, "contender": child.pid}) as cpu:
            time.sleep(seconds)
        end = time.time_ns()
        time.sleep(1.0)  # the last frames' log lines
    finally:
        code = child.stop()
        recorder.close()
    if code != 0:
        raise RuntimeError(f"{kind} exited with {code}: {child.log.read_text()[-2000:]}")
    arrivals, camera_frames = recorder.between(begin, end)
    stamps = {a.stamp_ns for a in arrivals}
    parse = reference_stages if kind == REFERENCE else node_stages
    stages = [parse(line) for line in child.lines() if line.get("event") == "frame" and line.get("stamp_ns") in stamps]
    run = Run(seconds=(end - begin) / 1e9, frames=len(arrivals), camera_frames=camera_frames,
              latencies=[(a.received_ns - a.stamp_ns) / 1e6 for a in arrivals], stages=stages,
              boxes=[a.boxes for a in arrivals], undecodable=recorder.undecodable)
    _apply_cpu(run, cpu())
    return run


def measure_round(model: Path, args: argparse.Namespace, folder: Path, tag: str) -> dict[str, Run]:
    common = {"seconds": args.seconds, "threads": args.threads, "folder": folder}
    runs = {LOOP: invoke_loop(model, tag=f"{tag}-alone", watch={}, **common)}
    camera_port = free_port()
    camera = start(f"camera-{tag}", camera_argv(camera_port, args.models, args.fps), folder)
    watch = {"camera": camera.pid}
    try:
        time.sleep(2.0)
        runs[LOOP_CAMERA] = invoke_loop(model, tag=f"{tag}-camera", watch=watch, **common)
        for kind in (NODE, *([NODE_BASELINE] if args.baseline else []), NODE_OVERLAP, REFERENCE):
            runs[kind] = pipeline(kind, model, camera_port=camera_port, warmup=args.warmup, tag=tag, watch=watch,
                                  schedule=args.schedule, baseline=args.baseline, **common)
    finally:
        camera.stop()
    return runs


def fmt(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def model_table(runs: dict[str, Run]) -> str:
    limit = runs[LOOP].fps
    rows = []
    for name, run in runs.items():
        stages = run.stage_means()
        rows.append([
            name, fmt(run.fps, 2), f"{run.fps / limit:.1%}",
            fmt(percentile(run.latencies, 50)) if run.pipeline else "—",
            fmt(percentile(run.latencies, 99)) if run.pipeline else "—",
            *(fmt(stages[s], 2) if s in stages else "—" for s in STAGES),
            f"{run.invoke_share:.1%}", fmt(run.non_invoke, 2) if run.pipeline else "—",
            fmt(run.cpu / max(run.frames, 1) * 1e3),
            f"{run.camera_frames - run.frames}/{run.camera_frames}" if run.pipeline else "—"])
    return table(["contender", "frames/s", "of (a)", "latency p50 ms", "p99 ms", "preprocess ms", "invoke ms",
                  "decode ms", "track ms", "publish ms", "time in invoke", "non-invoke ms/frame", "CPU ms/frame",
                  "camera frames not processed"], rows)


def goals(label: str, runs: dict[str, Run], rounds: list[dict[str, Run]]) -> list[str]:
    node, loop, camera_loop, reference = runs[NODE], runs[LOOP], runs[LOOP_CAMERA], runs[REFERENCE]
    ratio = node.fps / loop.fps
    lines = [f"- **{label}, throughput**: {node.fps:.2f} frames/s = **{ratio:.1%} of (a)** {loop.fps:.2f} "
             f"(goal ≥ 95%: {'met' if ratio >= 0.95 else 'NOT met'}); {node.fps / camera_loop.fps:.1%} of the "
             f"invoke loop beside the running camera ({camera_loop.fps:.2f}); (b) {reference.fps:.2f} frames/s = "
             f"{reference.fps / loop.fps:.1%} of (a). Time in invoke (mean invoke x frames/s, immune to the "
             f"machine's speed changing between windows): edgenode {node.invoke_share:.1%}, (b) "
             f"{reference.invoke_share:.1%}, (a) {loop.invoke_share:.1%}."]
    ours, theirs = node.non_invoke, reference.non_invoke
    lines.append(f"- **{label}, non-invoke time per frame**: **{ours:.2f} ms vs (b) {theirs:.2f} ms** "
                 f"(goal ≤ (b): {'met' if ours <= theirs else 'NOT met'}); camera-to-publish latency p50/p99 "
                 f"{percentile(node.latencies, 50):.0f}/{percentile(node.latencies, 99):.0f} ms vs (b) "
                 f"{percentile(reference.latencies, 50):.0f}/{percentile(reference.latencies, 99):.0f} ms.")
    below = sum(r[NODE].non_invoke < r[REFERENCE].non_invoke for r in rounds)
    lines.append(f"- **{label}, non-invoke time below (b)'s in every round**: {below} of {len(rounds)} rounds "
                 f"({', '.join(f'{r[NODE].non_invoke:.2f} vs {r[REFERENCE].non_invoke:.2f}' for r in rounds)} ms; "
                 f"goal: all: {'met' if below == len(rounds) else 'NOT met'})")
    ours_pre, theirs_pre = (run.stage_means().get("preprocess", 0.0) for run in (node, reference))
    lines.append(f"- **{label}, decode + track + publish per frame**: **{node.post:.2f} ms vs (b) {reference.post:.2f} "
                 f"ms** (goal ≤ (b): {'met' if node.post <= reference.post else 'NOT met'}); preprocess "
                 f"{ours_pre:.2f} vs {theirs_pre:.2f} ms.")
    if NODE_BASELINE in runs:
        base = runs[NODE_BASELINE]
        stages, base_stages = node.stage_means(), base.stage_means()
        lines.append(f"- **{label}, against the baseline tree**: {node.fps:.2f} vs {base.fps:.2f} frames/s "
                     f"(**{node.fps / base.fps:.1%}**); time in invoke {node.invoke_share:.1%} vs "
                     f"{base.invoke_share:.1%}; preprocess {stages.get('preprocess', 0):.2f} vs "
                     f"{base_stages.get('preprocess', 0):.2f} ms; non-invoke {node.non_invoke:.2f} vs "
                     f"{base.non_invoke:.2f} ms per frame; latency p50 {percentile(node.latencies, 50):.0f} vs "
                     f"{percentile(base.latencies, 50):.0f} ms.")
    return lines


def plot(all_runs: dict[str, dict[str, Run]], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    colours = {"preprocess": "#4e79a7", "invoke": "#bab0ac", "decode": "#f28e2b", "track": "#59a14f",
               "publish": "#e15759"}
    names = [name for name in (NODE, NODE_BASELINE, NODE_OVERLAP, REFERENCE, LOOP) if name in next(iter(
        all_runs.values()))]
    figure, axes = plt.subplots(len(all_runs), 2, figsize=(11, 2.2 * len(all_runs) + 0.7), squeeze=False)
    for row, (label, runs) in enumerate(all_runs.items()):
        for col, stages in enumerate((STAGES, tuple(s for s in STAGES if s != "invoke"))):
            axis = axes[row][col]
            shown = names if col == 0 else names[:-1]  # the invoke loop has nothing but invoke
            for y, name in enumerate(shown):
                means = runs[name].stage_means()
                left = 0.0
                for stage in stages:
                    value = means.get(stage, 0.0)
                    axis.barh(y, value, left=left, color=colours[stage], label=stage if y == 0 else None)
                    left += value
                axis.text(left, y, f" {left:.1f}", va="center", fontsize=7)
            axis.set_yticks(range(len(shown)), shown, fontsize=7)
            axis.invert_yaxis()
            axis.set_xlabel("ms per frame (mean)", fontsize=7)
            axis.set_title(f"{label}: {'every stage' if col == 0 else 'without invoke'}", fontsize=8)
            axis.tick_params(labelsize=7)
            axis.margins(x=0.18)
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=len(STAGES), fontsize=7)
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=72)
    plt.close(figure)
    return path


def replot(saved: Path, path: Path) -> Path | None:
    """Draw the plot again from a saved ``bench/results/pipeline.json``."""
    import json

    rounds = json.loads(saved.read_text())
    pooled = {}
    for kind, runs in rounds.items():
        pooled[f"{kind} yolov8s-fall"] = {name: Run() for name in runs[0]}
        for data in runs:
            for name, fields in data.items():
                pooled[f"{kind} yolov8s-fall"][name].add(Run(**fields))
    return plot(pooled, path)


def main(argv: list[str]) -> str:
    parser = argparse.ArgumentParser(prog="bench/pipeline.py")
    parser.add_argument("--seconds", type=float, default=20.0, help="measuring window per contender and round")
    parser.add_argument("--warmup", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--models", type=Path, default=SHARED)
    parser.add_argument("--threads", type=int, default=0, help="TFLite threads for every contender (0: all cores)")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--only", default="int8,f32", help="which yolov8s-fall models (int8, f32)")
    parser.add_argument("--plot", type=Path, default=RESULTS / "stage_times.png")
    parser.add_argument("--replot", type=Path, metavar="JSON", help="only redraw the plot from a saved run")
    parser.add_argument("--baseline", type=Path, metavar="DIR",
                        help="also run edgenode from this source tree (e.g. a git worktree of main), same flags")
    parser.add_argument("--schedule", choices=("auto", "serial", "overlap"), default="auto",
                        help="the schedule of the edgenode contender (and of the baseline's)")
    args = parser.parse_args(argv)
    if args.replot is not None:
        return f"plot: {replot(args.replot, args.plot)}\n"
    kinds = [k.strip() for k in args.only.split(",") if k.strip()]
    models = {kind: args.models / f"yolov8s-fall-{kind}.tflite" for kind in kinds}
    missing = [str(p) for p in models.values() if not p.exists()]
    if missing:
        return f"pipeline: models not found ({', '.join(missing)}); set EDGENODE_TEST_MODELS or --models\n"
    folder = Path(tempfile.mkdtemp(prefix="edgenode-bench-"))
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    rounds: dict[str, list[dict[str, Run]]] = {kind: [] for kind in kinds}
    started = time.monotonic()
    for index in range(args.rounds):
        for kind, path in models.items():
            rounds[kind].append(measure_round(path, args, folder, f"{kind}-{index}"))
    pooled: dict[str, dict[str, Run]] = {}
    for kind in kinds:
        pooled[kind] = {name: Run() for name in rounds[kind][0]}
        for runs in rounds[kind]:
            for name, run in runs.items():
                pooled[kind][name].add(run)
    plotted = plot({f"{kind} yolov8s-fall": runs for kind, runs in pooled.items()}, args.plot)
    shown = ["python", "bench/run.py", "pipeline", *argv]
    sections = [header("End to end: camera 1920x1080 YUYV 30 fps -> edgenode --track -> subscriber", shown)]
    load_after = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    sections.append(f"- CPU: {cpu_model()}; load average before: {' '.join(load_before)}, after: {load_after}; "
                    f"the run took {time.monotonic() - started:.0f} s: "
                    f"{args.rounds} round(s) x {args.seconds:g} s per contender (after {args.warmup:g} s warm-up), "
                    f"pooled; TFLite threads: {args.threads or 'all cores'} ({os.cpu_count()}); schedule of edgenode: "
                    f"{args.schedule}" + (f"; baseline tree: {args.baseline}" if args.baseline else "") + "\n")
    summary = []
    for kind, runs in pooled.items():
        label = f"{kind} yolov8s-fall"
        summary += goals(label, runs, rounds[kind])
        seconds = runs[NODE].seconds
        other = max(run.other_cpu / run.seconds for run in runs.values() if run.seconds)
        sections.append(f"#### {label}\n\n" + model_table(runs) +
                        f"\nCamera simulator: {runs[NODE].camera_cpu / seconds:.2f} cores. Other work on the machine "
                        f"during the windows: up to {other:.2f} cores. Boxes per frame: edgenode "
                        f"{mean(runs[NODE].boxes):.1f}, (b) {mean(runs[REFERENCE].boxes):.1f}. Undecodable Detects: "
                        f"{sum(run.undecodable for run in runs.values())}.\n")
        names = list(rounds[kind][0])
        rows = [[i + 1, *(f"{r[name].fps:.2f}" for name in names), f"{r[NODE].fps / r[LOOP].fps:.1%}",
                 f"{r[NODE].non_invoke:.2f}", f"{r[REFERENCE].non_invoke:.2f}"] for i, r in enumerate(rounds[kind])]
        sections.append("Each round (frames/s):\n\n" + table(
            ["round", *names, "edgenode / (a)", "edgenode non-invoke ms", "(b) non-invoke ms"], rows))
    sections.insert(1, "**Goals**\n\n" + "\n".join(summary) + "\n")
    if plotted is not None:
        shown_path = plotted.relative_to(HERE.parent) if plotted.is_relative_to(HERE.parent) else plotted
        sections.append(f"Per-stage time plot: `{shown_path}`.\n")
    markdown = "\n".join(sections)
    save("pipeline", markdown, {kind: [{name: vars(run) for name, run in r.items()} for r in rs]
                                for kind, rs in rounds.items()})
    if os.environ.get("EDGENODE_BENCH_KEEP_LOGS") == "1":
        sections.append(f"Logs kept in {folder}.\n")
    else:
        shutil.rmtree(folder, ignore_errors=True)
    return markdown


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    print(main(sys.argv[1:]))
