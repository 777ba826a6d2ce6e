"""``edgenode-demo``: the camera simulator, the node and a console view of its detections, in one command.

Needs no camera and no downloaded model: the node runs the project's own demo detector
(built on first use into the cache directory) on the simulator's synthetic scene, tracking the
objects, and the view prints each frame's boxes with their labels, scores and track ids. The
three processes talk over Zenoh on loopback ports of their own (no multicast).

The camera and the node (and the Foxglove bridge) die with the demo, whatever ends it (SIGTERM,
SIGHUP and Ctrl-C stop them cleanly; on SIGKILL the kernel sends them SIGTERM, ``PR_SET_PDEATHSIG``).
When one exits on its own (a bad model, a camera failure), the demo ends at once, after its line.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from edgenode.cli import default_cache_dir
from edgenode.foxglove import LAYOUT
from edgenode.logs import configure_logging
from edgenode.tools.camera.cli import parse_size
from edgenode.tools.camera.scene import PALETTE
from edgenode.tools.viewer import frame_count, watch

DEMO_MODEL_FILE = "edgenode-shapes-demo.tflite"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


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


# Runs first in each child: ask the kernel for SIGTERM when the demo dies (PR_SET_PDEATHSIG, 1), however it
# dies, then become the real command (the request survives exec). A demo already gone: exit at once.
_TIED_TO_PARENT = ("import ctypes, os, signal, sys; ctypes.CDLL(None).prctl(1, signal.SIGTERM, 0, 0, 0); "
                   "os.getppid() == int(sys.argv[1]) or os._exit(1); "
                   "os.execv(sys.executable, [sys.executable, '-m', *sys.argv[2:]])")


def spawn(args: list[str]) -> subprocess.Popen[bytes]:
    """``python -m <args>``, tied to this process's life."""
    return subprocess.Popen([sys.executable, "-c", _TIED_TO_PARENT, str(os.getpid()), *args])


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
    """edgenode-foxglove on ``port`` for the camera's and the node's topics, tied to this process's life."""
    return spawn(["edgenode.foxglove", "--port", str(port), "--connect", f"tcp/127.0.0.1:{camera_port}",
                  "--connect", f"tcp/127.0.0.1:{node_port}", *quiet])


async def exited(process: subprocess.Popen[bytes]) -> int:
    """Wait (on the event loop, through a pidfd) until ``process`` exits; its exit code."""
    loop = asyncio.get_running_loop()
    try:
        pidfd = os.pidfd_open(process.pid)
    except (AttributeError, OSError):  # pragma: no cover - Linux before 5.3: poll
        while process.poll() is None:
            await asyncio.sleep(0.1)
        return int(process.returncode)
    done: asyncio.Future[None] = loop.create_future()

    def settle() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(pidfd, settle)
    try:
        await done
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
    return process.wait()


async def supervise(view: argparse.Namespace, children: dict[str, subprocess.Popen[bytes]]) -> tuple[int, str]:
    """Run the view until it ends, a signal asks to stop, or a child exits; (exit code, the child that exited)."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stopping.set)
    watching = asyncio.ensure_future(watch(view))
    stopped = asyncio.ensure_future(stopping.wait())
    deaths = {asyncio.ensure_future(exited(process)): name for name, process in children.items()}
    try:
        done, _ = await asyncio.wait({watching, stopped, *deaths}, return_when=asyncio.FIRST_COMPLETED)
        if watching in done:
            return watching.result(), ""
        if stopped in done:
            return 0, ""
        name = next(deaths[task] for task in done if task in deaths)
        return 1, name
    finally:
        for task in (watching, stopped, *deaths):
            task.cancel()
        await asyncio.gather(watching, stopped, *deaths, return_exceptions=True)
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)


def frame_size(text: str) -> str:
    """``WIDTHxHEIGHT`` as the camera simulator takes it."""
    try:
        width, height = parse_size(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT between 16 and 16384 (even width), got {text!r}")\
            from None
    if width % 2:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT with an even width (YUYV), got {text!r}")
    return f"{width}x{height}"


def frame_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= 1000):
        raise argparse.ArgumentTypeError(f"must be a number of frames per second in (0, 1000], got {text!r}")
    return value


def object_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= len(PALETTE):
        raise argparse.ArgumentTypeError(f"must be 1..{len(PALETTE)} (the demo model knows 4 colours), got {text!r}")
    return value


def port_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number 0..65535, got {text!r}")
    return value


def model_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text}: no such file" if not path.exists() else f"{text} is not a file")
    return path


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line naming the flag, exit 2."""
        self.exit(2, f"{self.prog}: error: {message.removeprefix('argument ').replace('--model: ', '--model ')}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="edgenode-demo", description="The camera simulator, the node and a live view of its "
                                                       "detections, in one command (Ctrl-C stops all three).")
    add = parser.add_argument
    add("--model", type=model_file, metavar="FILE", help="model to run instead of the built-in demo detector")
    add("--frames", type=frame_count, default=0, metavar="N", help="stop after N frames (0 = until Ctrl-C)")
    add("--fps", type=frame_rate, default=15.0, help="camera frame rate [default 15]")
    add("--size", type=frame_size, default="1280x720", metavar="WxH", help="camera frame size [default 1280x720]")
    add("--objects", type=object_count, default=4, metavar="N",
        help=f"objects in the scene, 1..{len(PALETTE)} (the demo model knows 4 colours) [default 4]")
    add("--no-track", action="store_true", help="do not track objects")
    add("--json", action="store_true", help="JSON lines on stdout instead of text (everything else on stderr)")
    add("--log-level", default="warning", choices=("debug", "info", "warning", "error"),
        help="node and camera log level [default warning]")
    add("--foxglove", action="store_true",
        help="also run edgenode-foxglove and print the address to open in Foxglove Studio")
    add("--foxglove-port", type=port_number, default=8765, metavar="PORT",
        help="its port, 0 for a free one [default 8765]")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # SIGTERM and SIGHUP stop the demo as Ctrl-C does (until the event loop takes them over)
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.default_int_handler)
    try:
        return _main(argv)
    except KeyboardInterrupt:
        return 0


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.foxglove and not foxglove_installed():
        print("edgenode-demo: --foxglove needs the bridge's extra: pip install 'edgenode[foxglove]'", file=sys.stderr)
        return 2
    info = sys.stderr if args.json else sys.stdout  # JSON mode: only the frames on stdout
    configure_logging("error", "console", stream=sys.stderr)  # the view's own zenoh session: only failures
    model = args.model or demo_model(default_cache_dir(os.environ))
    camera_port, node_port = free_port(), free_port()
    quiet = ["--no-multicast-scouting", "--log-level", args.log_level]
    children: dict[str, subprocess.Popen[bytes]] = {}
    started = time.monotonic()
    code, died = 1, ""
    try:
        children["camera"] = spawn(["edgenode.tools.camera", "--size", args.size, "--fps", str(args.fps),
                                    "--objects", str(args.objects), "--jpeg-fps",
                                    str(args.fps) if args.foxglove else "0", "--listen",
                                    f"tcp/127.0.0.1:{camera_port}", *quiet])
        node_args = ["edgenode", "--model", str(model), "--connect", f"tcp/127.0.0.1:{camera_port}", "--listen",
                     f"tcp/127.0.0.1:{node_port}", "--log-format", "console", *quiet]
        if not args.no_track:
            node_args.append("--track")
        if args.foxglove:
            node_args.append("--visualization")
        children["node"] = spawn(node_args)
        if args.foxglove:
            port = args.foxglove_port or free_port()
            children["bridge"] = start_bridge(port, camera_port, node_port, quiet)
            print(f"edgenode-demo: Foxglove Studio: open ws://127.0.0.1:{port} (Open connection, Foxglove WebSocket); "
                  f"layout: {LAYOUT}", file=info, flush=True)
        print(f"edgenode-demo: camera {args.size} at {args.fps:g} fps -> edgenode ({model.name}) -> this view; "
              "Ctrl-C stops", file=info, flush=True)
        print(f"edgenode-demo: their status, from another terminal: {status_command(node_port)}", file=info,
              flush=True)
        view = argparse.Namespace(detect_topic="rt/model/boxes2d", info_topic="rt/model/info", frames=args.frames,
                                  timeout=60.0, json=args.json, mode=None, connect=[f"tcp/127.0.0.1:{node_port}"],
                                  listen=[], no_multicast_scouting=True)
        code, died = asyncio.run(supervise(view, children))
    finally:
        codes = {name: stop(process) for name, process in reversed(children.items())}  # camera last
    if died:
        print(f"edgenode-demo: the {died} exited with {codes[died]}", file=sys.stderr)
        return 1
    if code != 0 and codes.get("node") not in (0, -signal.SIGTERM):
        print(f"edgenode-demo: the node exited with {codes.get('node')}", file=sys.stderr)
    elif code == 0 and args.frames:
        print(f"edgenode-demo: {args.frames} frames in {time.monotonic() - started:.1f} s", file=info, flush=True)
    if code:
        return code
    return 0 if all(value in (0, -signal.SIGTERM) for value in codes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
