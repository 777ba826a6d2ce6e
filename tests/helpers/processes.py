"""Helpers for end-to-end tests: real processes (camera simulator, node, zenoh router) and a listener."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zenoh

from tests.helpers.timing import scaled, wait_until

PYTHON = sys.executable


def _ephemeral_floor() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_GIVEN: set[int] = set()


def free_port() -> int:
    """A loopback port free now, below the kernel's ephemeral range and never given before in this process.

    Not ``bind(0)``: that port comes from the ephemeral range, which outgoing connections draw from too, so a
    process connecting before the one meant to listen there has started could take it as its local port
    (CI saw "Address already in use" that way)."""
    floor = _ephemeral_floor()
    first = max(1024, floor - 12000)
    for _ in range(1000):
        port = random.randrange(first, floor)
        if port in _GIVEN:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _GIVEN.add(port)
        return port
    raise RuntimeError(f"no free loopback port in {first}..{floor - 1}")


def endpoint(port: int) -> str:
    return f"tcp/127.0.0.1:{port}"


def start_router(port: int) -> subprocess.Popen[bytes]:
    """A zenoh router in its own process (``edgenode.tools.router``), listening on ``port``; returns once it is up."""
    router = subprocess.Popen([PYTHON, "-m", "edgenode.tools.router", endpoint(port)], stdout=subprocess.PIPE)
    assert router.stdout is not None and router.stdout.readline().startswith(b"router up")
    return router


@dataclass
class Process:
    """A child process whose stdout and stderr go to ``log``."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def json_lines(self) -> list[dict[str, Any]]:
        """The JSON log lines it printed so far (a line cut short by a running writer is skipped)."""
        found = []
        for line in self.text().splitlines():
            if line.startswith("{"):
                try:
                    found.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return found

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM and wait (``timeout`` scaled); SIGKILL (and fail later on the code) if it does not exit in time."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(scaled(timeout))
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return int(self.popen.returncode)


@contextmanager
def processes(folder: Path) -> Iterator[Callable[..., Process]]:
    """``start(name, *args, env=...)`` runs ``python -m <args>``; every process is stopped at the end."""
    started: list[Process] = []

    def start(name: str, *args: str, env: dict[str, str] | None = None) -> Process:
        log = folder / f"{name}.log"
        handle = log.open("wb")
        popen = subprocess.Popen([PYTHON, "-m", *args], stdout=handle, stderr=subprocess.STDOUT,
                                 env={**os.environ, **(env or {})})
        handle.close()
        process = Process(name, popen, log)
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in reversed(started):
            process.stop()


def running(node: Process, seconds: float = 120) -> Process:
    """``node`` once it runs its model (its JSON log says so): a subscriber started after this gets none of
    the heartbeat's loading messages (a slow machine sends many while the model loads)."""
    wait_until(lambda: '"event": "running ' in node.text(), seconds, f"the {node.name} to load its model")
    return node


def camera_args(listen: int, *extra: str) -> list[str]:
    return ["edgenode.tools.camera", "--listen", endpoint(listen), "--no-multicast-scouting", *extra]


def node_args(model: Path, connect: int, listen: int, *extra: str) -> list[str]:
    return ["edgenode", "--model", str(model), "--connect", endpoint(connect), "--listen", endpoint(listen),
            "--no-multicast-scouting", "--log-format", "json", "--threads", "1", *extra]


class Listener:
    """A zenoh session recording every sample on the given topics: ``samples[topic]`` = [(payload, encoding)]."""

    def __init__(self, topics: Sequence[str], connect: Sequence[int], mode: str = "peer") -> None:
        config = zenoh.Config()
        config.insert_json5("mode", f'"{mode}"')
        config.insert_json5("connect/endpoints", str([endpoint(port) for port in connect]).replace("'", '"'))
        config.insert_json5("scouting/multicast/enabled", "false")
        self.session = zenoh.open(config)
        self.samples: dict[str, list[tuple[bytes, str]]] = defaultdict(list)
        self._lock = threading.Lock()
        self._subscribers = [self.session.declare_subscriber(topic, self._recorder(topic)) for topic in topics]

    def _recorder(self, topic: str) -> Callable[[zenoh.Sample], None]:
        def record(sample: zenoh.Sample) -> None:
            with self._lock:
                self.samples[topic].append((sample.payload.to_bytes(), str(sample.encoding)))
        return record

    def count(self, topic: str) -> int:
        with self._lock:
            return len(self.samples[topic])

    def received(self, topic: str) -> list[tuple[bytes, str]]:
        with self._lock:
            return list(self.samples[topic])

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        """Until ``condition()`` holds (``timeout`` scaled by the machine's factor)."""
        wait_until(condition, timeout, what)

    def close(self) -> None:
        for subscriber in self._subscribers:
            subscriber.undeclare()
        self.session.close()
