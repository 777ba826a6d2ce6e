"""``edgenode-demo``: the camera simulator, the node and a console view of its detections, in one command.

Needs no camera and no downloaded model: the node runs the project's own demo detector
(built on first use into the cache directory) on the simulator's synthetic scene, tracking the
objects, and the view prints each frame's boxes with their labels, scores and track ids. The
three processes talk over Zenoh on loopback ports of their own (no multicast).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from edgenode.cli import default_cache_dir
from edgenode.foxglove import LAYOUT
from edgenode.tools.viewer import watch

DEMO_MODEL_FILE = "edgenode-shapes-demo.tflite"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def demo_model(cache_dir: Path, scratch: Path | None = None) -> Path:
    """The demo detector in ``cache_dir``, built when missing (with either TFLite runtime, or none).

    When the cache directory cannot be written (read-only, full, a file in its place), the model
    is built into ``scratch`` instead (a fresh temporary directory by default), with one line saying so.
    """
    path = cache_dir / DEMO_MODEL_FILE
    if path.exists():
        return path
    from edgenode.tools.demo.shapes_model import build_shapes_model

    data = build_shapes_model()
    partial = path.with_suffix(".partial")
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(data)
        partial.replace(path)
        return path
    except OSError as exc:
        try:
            partial.unlink(missing_ok=True)
        except OSError:
            pass
        folder = scratch if scratch is not None else Path(tempfile.mkdtemp(prefix="edgenode-demo-"))
        print(f"edgenode-demo: cannot write the model to {cache_dir} ({exc.strerror or exc}); using {folder}",
              file=sys.stderr)
        fallback = folder / DEMO_MODEL_FILE
        fallback.write_bytes(data)
        return fallback


def status_command(node_port: int) -> str:
    """The ``edgenode status`` command that reaches the demo's processes (through the node's port)."""
    script = Path(sys.executable).parent / "edgenode"
    return f"{script if script.exists() else 'edgenode'} status --connect tcp/127.0.0.1:{node_port}"


def stop(process: subprocess.Popen[bytes], timeout: float = 5.0) -> int:
    """SIGTERM, then SIGKILL after ``timeout`` seconds; the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return int(process.returncode)


def foxglove_installed() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("foxglove", "mcap"))


def start_bridge(port: int, camera_port: int, node_port: int, quiet: list[str]) -> subprocess.Popen[bytes]:
    """edgenode-foxglove on ``port`` for the camera's and the node's topics; prints the address to open."""
    bridge = subprocess.Popen([sys.executable, "-m", "edgenode.foxglove", "--port", str(port),
                               "--connect", f"tcp/127.0.0.1:{camera_port}", "--connect", f"tcp/127.0.0.1:{node_port}",
                               *quiet])
    print(f"edgenode-demo: Foxglove Studio: open ws://127.0.0.1:{port} (Open connection, Foxglove WebSocket); "
          f"layout: {LAYOUT}", flush=True)
    return bridge


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edgenode-demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="model to run instead of the built-in demo detector")
    parser.add_argument("--frames", type=int, default=0, help="stop after this many frames (0 = until Ctrl-C)")
    parser.add_argument("--fps", type=float, default=15.0, help="camera frame rate [default 15]")
    parser.add_argument("--size", default="1280x720", help="camera frame size [default 1280x720]")
    parser.add_argument("--objects", type=int, default=4, help="objects in the scene, 1..4 for the demo model")
    parser.add_argument("--no-track", action="store_true", help="do not track objects")
    parser.add_argument("--json", action="store_true", help="print JSON lines instead of text")
    parser.add_argument("--log-level", default="warning", help="node and camera log level [default warning]")
    parser.add_argument("--foxglove", action="store_true",
                        help="also run edgenode-foxglove and print the address to open in Foxglove Studio")
    parser.add_argument("--foxglove-port", type=int, default=8765, help="its port, 0 for a free one [default 8765]")
    args = parser.parse_args(argv)
    if args.foxglove and not foxglove_installed():
        print("edgenode-demo: --foxglove needs the bridge's extra: pip install 'edgenode[foxglove]'", file=sys.stderr)
        return 2

    model = args.model or demo_model(default_cache_dir(os.environ))
    camera_port, node_port = free_port(), free_port()
    quiet = ["--no-multicast-scouting", "--log-level", args.log_level]
    camera = subprocess.Popen([sys.executable, "-m", "edgenode.tools.camera", "--size", args.size,
                               "--fps", str(args.fps), "--objects", str(args.objects),
                               "--jpeg-fps", str(args.fps) if args.foxglove else "0",
                               "--listen", f"tcp/127.0.0.1:{camera_port}", *quiet])
    node_args = [sys.executable, "-m", "edgenode", "--model", str(model), "--connect",
                 f"tcp/127.0.0.1:{camera_port}", "--listen", f"tcp/127.0.0.1:{node_port}", "--log-format", "console",
                 *quiet]
    if not args.no_track:
        node_args.append("--track")
    if args.foxglove:
        node_args.append("--visualization")
    node = subprocess.Popen(node_args)
    bridge = start_bridge(args.foxglove_port or free_port(), camera_port, node_port, quiet) if args.foxglove else None
    print(f"edgenode-demo: camera {args.size} at {args.fps:g} fps -> edgenode ({model.name}) -> this view; "
          "Ctrl-C stops", flush=True)
    print(f"edgenode-demo: their status, from another terminal: {status_command(node_port)}", flush=True)
    view = argparse.Namespace(detect_topic="rt/model/boxes2d", info_topic="rt/model/info", frames=args.frames,
                              timeout=60.0, json=args.json, mode=None, connect=[f"tcp/127.0.0.1:{node_port}"],
                              listen=[], no_multicast_scouting=True)
    code = 1
    started = time.monotonic()
    try:
        code = asyncio.run(watch(view))
    except KeyboardInterrupt:
        code = 0
    finally:
        node_code, camera_code = stop(node), stop(camera)
        if bridge is not None:
            stop(bridge)
    if code != 0 and node_code not in (0, -signal.SIGTERM):
        print(f"edgenode-demo: the node exited with {node_code}", file=sys.stderr)
    elif code == 0 and args.frames:
        print(f"edgenode-demo: {args.frames} frames in {time.monotonic() - started:.1f} s", flush=True)
    return code if code else (0 if node_code == 0 and camera_code in (0, -signal.SIGTERM) else 1)


if __name__ == "__main__":
    sys.exit(main())
