"""Status queries against a busy node: its frame rate with and without 1,000 queries a second.

``python bench/run.py fleet [--seconds=10] [--rounds=3] [--rate=1000] [--camera-fps=60] [--pin] [--router-config]``

Real processes, as on a board in a fleet: the camera simulator (320x240 YUYV at ``--camera-fps``,
faster than the node can go, so the node runs flat out and any CPU the queries take from it shows as
frames lost) and the node on the demo model (``--threads 1``) talk peer to peer; the node is also
connected to a real zenoh router (a session in router mode), through which a flooder, a client of
the router, sends ``--rate`` ``**/edgenode/status/**`` queries a second (what ``edgenode status``
sends). The node's frame rate comes from its own stats lines (``--stats-interval 1``), not through
the network. Windows of ``--seconds`` follow each other, ``--rounds`` times (each round starting with
the next kind, so a drift in the machine's load hits all three alike):

- quiet: no queries;
- control flood: the same rate on a key nobody answers, so the flooder and the router load the
  machine alike but the node gets no query (what the load of the flood alone does, here where the
  flooder cannot run on another machine);
- status flood: the queries reach the node.

The figures are the status-flood windows' median frame rate over the quiet ones' and over the
control ones', and the node's CPU time per processed frame in each (the work a frame costs, which
the share of the CPU other processes leave the node does not move), side by side in one run. With
``--pin`` the camera and node run on CPU 0 and the router and flooder on CPU 1. The router is a bare
one, so the queries reach the node and only the node's own bounds hold; with ``--router-config`` it
runs the repository's ``systemd/zenoh-router.json5``, whose rule drops status queries beyond 50 a
second before they leave the router.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import zenoh
from common import header, save, table
from endtoend.measure import Child, endpoint, free_port, process_cpu_seconds, start

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
KINDS = ("quiet", "control", "flooded")
def pinned(cpu: int | None, argv: list[str]) -> list[str]:
    """``argv`` run on CPU ``cpu`` only (all its threads), when asked and possible."""
    if cpu is not None and shutil.which("taskset") and cpu in os.sched_getaffinity(0):
        return ["taskset", "-c", str(cpu), *argv]
    return argv


def answered(router: str) -> int:
    """How many status queries the node has answered so far (asked once, through the router)."""
    config = zenoh.Config()
    config.insert_json5("mode", '"client"')
    config.insert_json5("connect/endpoints", json.dumps([router]))
    config.insert_json5("scouting/multicast/enabled", "false")
    session = zenoh.open(config)
    try:
        for _ in range(20):  # the node may refuse while its budget refills
            for reply in session.get("**/edgenode/status/node/*", timeout=2.0):
                if reply.ok is not None:
                    return int(json.loads(reply.ok.payload.to_bytes())["queries"]["answered"])
            time.sleep(0.1)
        return -1
    finally:
        session.close()


def node_rates(node: Child, start: float, end: float) -> tuple[float, float]:
    """Frames a second the node processed, and camera frames a second it received, between ``start`` and ``end``
    (unix seconds), from its stats lines (each covers the ``window_s`` seconds before its timestamp; lines wholly
    inside the window count)."""
    frames = seconds = 0.0
    received: list[float] = []
    for line in node.lines():
        if line.get("event") != "stats" or "window_s" not in line:
            continue
        stamp = datetime.fromisoformat(str(line["timestamp"]).replace("Z", "+00:00")).timestamp()
        window = float(line["window_s"])  # type: ignore[arg-type]
        if start <= stamp - window and stamp <= end:
            frames += float(line["frames"])  # type: ignore[arg-type]
            seconds += window
            received.append(float(line["received"]))  # type: ignore[arg-type]
    if not seconds or len(received) < 2:
        return frames / seconds if seconds else 0.0, 0.0
    return frames / seconds, (received[-1] - received[0]) / seconds * len(received) / (len(received) - 1)


def lscpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")),
                "unknown")


def main(argv: list[str]) -> str:
    parser = argparse.ArgumentParser(prog="bench/run.py fleet")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--camera-fps", type=float, default=60.0)
    parser.add_argument("--pin", action="store_true")
    parser.add_argument("--router-config", action="store_true")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE.parent))
    from edgenode.tools.demo.shapes_model import build_shapes_model

    board, network = (0, 1) if args.pin else (None, None)
    folder = Path(tempfile.mkdtemp(prefix="edgenode-bench-fleet-"))
    model = folder / "shapes.tflite"
    model.write_bytes(build_shapes_model())
    router, camera_port = endpoint(free_port()), free_port()
    load_before = os.getloadavg()
    children: list[Child] = []
    querier: subprocess.Popen[str] | None = None
    windows: list[dict[str, float | str]] = []
    try:
        router_argv = [PYTHON, "-m", "edgenode.tools.router", router]
        if args.router_config:
            router_argv.append(str(HERE.parent / "systemd" / "zenoh-router.json5"))
        router_process = subprocess.Popen(pinned(network, router_argv), stdout=subprocess.PIPE)
        assert router_process.stdout is not None and router_process.stdout.readline().startswith(b"router up")
        children.append(Child("router", router_process, folder / "router.log"))  # type: ignore[arg-type]
        children.append(start("camera", pinned(board, [
            PYTHON, "-m", "edgenode.tools.camera", "--listen", endpoint(camera_port), "--no-multicast-scouting",
            "--size", "320x240", "--fps", str(args.camera_fps), "--log-level", "warning"]), folder))
        node = start("node", pinned(board, [
            PYTHON, "-m", "edgenode", "--model", str(model), "--connect", endpoint(camera_port), "--connect", router,
            "--no-multicast-scouting", "--threads", "1", "--log-format", "json", "--stats-interval", "1"]), folder)
        children.append(node)
        deadline = time.monotonic() + 120
        while node_rates(node, time.time() - 3, time.time())[0] == 0:
            if time.monotonic() > deadline or node.popen.poll() is not None:
                raise RuntimeError(f"the node processed nothing: {node.log.read_text()[-2000:]}")
            time.sleep(0.5)
        time.sleep(args.seconds)  # warm up
        querier = subprocess.Popen(pinned(network, [PYTHON, str(HERE / "fleetload" / "querier.py"), router,
                                                    str(args.rate)]),
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert querier.stdin is not None and querier.stdout is not None
        assert querier.stdout.readline().strip() == "ready"
        for round_index in range(args.rounds):
            turn = round_index % len(KINDS)  # each round starts with the next kind, so drift hits all alike
            for kind in KINDS[turn:] + KINDS[:turn]:
                replies_before = answered(router) if kind == "flooded" else 0
                if kind != "quiet":
                    querier.stdin.write(("on" if kind == "flooded" else "control") + "\n")
                    querier.stdin.flush()
                cpu_before = {child.name: process_cpu_seconds(child.pid) for child in children}
                start_at = time.time()
                time.sleep(args.seconds)
                end_at = time.time()
                window: dict[str, float | str] = {"kind": kind}
                for child in children:
                    window[f"{child.name}_cpu"] = (process_cpu_seconds(child.pid) - cpu_before[child.name]) / (
                        end_at - start_at)
                if kind != "quiet":
                    querier.stdin.write("off\n")
                    querier.stdin.flush()
                    sent = json.loads(querier.stdout.readline())
                    window["queries_per_s"] = sent["sent"] / sent["seconds"]
                time.sleep(1.5)  # the stats line closing the window is out
                if kind == "flooded":
                    window["replies_per_s"] = (answered(router) - replies_before) / (end_at - start_at)
                window["fps"], window["camera_fps"] = node_rates(node, start_at, end_at)
                window["cpu_ms_per_frame"] = float(window["node_cpu"]) * 1e3 / max(float(window["fps"]), 1e-9)
                window["round"] = float(round_index + 1)
                windows.append(window)
                print(f"fleet bench: {window}", file=sys.stderr, flush=True)
    finally:
        if querier is not None:
            try:
                querier.communicate("quit\n", timeout=10)
            except subprocess.TimeoutExpired:
                querier.kill()
        for child in reversed(children):
            child.stop()
        shutil.rmtree(folder, ignore_errors=True)
    load_after = os.getloadavg()

    def median(kind: str, key: str) -> float:
        return statistics.median(float(w[key]) for w in windows if w["kind"] == kind)

    def cell(window: dict[str, float | str], key: str, digits: int = 2) -> str:
        value = window.get(key)
        return f"{float(value):.{digits}f}" if isinstance(value, float) else "-"

    quiet, control, flooded = (median(kind, "fps") for kind in KINDS)
    per_frame = {kind: median(kind, "cpu_ms_per_frame") for kind in KINDS}
    summary = table(["windows (median)", "node fps", "flooded / this", "node CPU ms per frame"], [
        ["quiet", f"{quiet:.2f}", f"{flooded / quiet:.3f}", f"{per_frame['quiet']:.1f}"],
        ["control flood", f"{control:.2f}", f"{flooded / control:.3f}", f"{per_frame['control']:.1f}"],
        ["status flood", f"{flooded:.2f}", "1.000", f"{per_frame['flooded']:.1f}"]])
    rows = [[int(float(window["round"])), window["kind"], cell(window, "fps"), cell(window, "camera_fps", 1),
             cell(window, "node_cpu"), cell(window, "cpu_ms_per_frame", 1), cell(window, "camera_cpu"),
             cell(window, "router_cpu"), cell(window, "queries_per_s", 0), cell(window, "replies_per_s", 0)]
            for index, window in enumerate(windows)]
    placement = ("camera and node pinned to CPU 0, router and flooder to CPU 1" if args.pin
                 else "no pinning: every process on either CPU")
    placement += ("; router with systemd/zenoh-router.json5 (status queries bounded there too)" if args.router_config
                  else "; a bare router (only the node bounds the queries)")
    markdown = (header("Status queries against a busy node") + f"- CPU (lscpu): {lscpu_model()}\n"
                f"- load average (1, 5, 15 min): before {', '.join(f'{v:.2f}' for v in load_before)}; after "
                f"{', '.join(f'{v:.2f}' for v in load_after)}\n"
                f"- windows of {args.seconds:g} s (quiet, control flood, status flood) x {args.rounds} rounds at "
                f"{args.rate:g} queries/s; camera 320x240 YUYV at {args.camera_fps:g} fps; {placement}\n\n"
                + summary + "\n" + table(["round", "window", "node fps", "camera fps at the node", "node CPU",
                                          "node CPU ms/frame", "camera CPU", "router CPU", "queries/s sent",
                                          "replies/s"], rows))
    save("fleet", markdown, {"windows": windows, "per_frame": per_frame,
                             "fps": {"quiet": quiet, "control": control, "flooded": flooded}})
    return markdown


if __name__ == "__main__":
    print(main(sys.argv[1:]))
