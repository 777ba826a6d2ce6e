"""A fleet in real processes behind a real zenoh router (a session in router mode): three cameras and three
nodes in three namespaces, clients of the router; ``edgenode status`` finds them, follows their counters,
lists a frozen node as not answering and loses a killed one; a node still loading says so; the demo
prints the command that reaches it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import zenoh

from edgenode.adapters.zenoh_bus import ZenohBus
from edgenode.config import ZenohSettings
from edgenode.fleet.command import survey
from edgenode.fleet.table import NOT_ANSWERING, Entry
from edgenode.tools.demo.shapes_model import build_shapes_model
from tests.helpers.models import slow_model
from tests.helpers.processes import PYTHON, Process, endpoint, free_port, processes, start_router
from tests.helpers.timing import scaled

pytestmark = pytest.mark.slow
NAMESPACES = ("cam1", "cam2", "cam3")
T = TypeVar("T")


@pytest.fixture(scope="module")
def router() -> Iterator[int]:
    """A zenoh router on a loopback port (its port)."""
    port = free_port()
    process = start_router(port)
    yield port
    process.terminate()
    process.wait(10)


def client(port: int, namespace: str) -> list[str]:
    return ["--mode", "client", "--connect", endpoint(port), "--no-multicast-scouting", "--cfg",
            f'namespace:"{namespace}"']


def camera(port: int, namespace: str) -> list[str]:  # small and slow: six processes share two cores
    return ["edgenode.tools.camera", *client(port, namespace), "--size", "160x120", "--fps", "5"]


def node(port: int, namespace: str, model: Path) -> list[str]:
    return ["edgenode", "--model", str(model), *client(port, namespace), "--log-format", "json", "--threads", "1",
            "--stats-interval", "1"]


def status_command(port: int, *extra: str) -> subprocess.CompletedProcess[str]:
    """``edgenode status`` through the router; a process that does not answer within 5 s (scaled) is listed as
    not answering (the command returns as soon as every one has answered)."""
    return subprocess.run([PYTHON, "-m", "edgenode", "status", "--mode", "client", "--connect", endpoint(port),
                           "--no-multicast-scouting", "--timeout", str(scaled(5.0)), *extra], capture_output=True,
                          text=True, timeout=scaled(60), check=False)


def until(check: Callable[[], T | None], seconds: float, what: str) -> T:
    """Poll ``check`` until it returns something; AssertionError after ``seconds`` (scaled)."""
    deadline = time.monotonic() + scaled(seconds)
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {scaled(seconds):g} s waiting for {what}")
        time.sleep(0.05)


def ready(process: Process, line: str) -> bool:
    return line in process.text()


def by_place(found: list[Entry]) -> dict[tuple[str, str], Entry]:
    return {(entry.key.namespace, entry.key.kind): entry for entry in found}


def frames(entry: Entry) -> int:
    assert entry.status is not None
    counters = entry.status["counters"]
    return int(counters["frames_published"] if entry.key.kind == "camera" else counters["frames_processed"])


@pytest.fixture(scope="module")
def asker(router: int) -> Iterator[ZenohBus]:
    bus = ZenohBus.open(ZenohSettings(mode="client", connect=(endpoint(router),), multicast_scouting=False))
    yield bus
    bus.close()


def test_six_processes_in_three_namespaces(router: int, asker: ZenohBus, tmp_path: Path) -> None:
    models = {}
    for namespace in NAMESPACES:  # one model each, under its own name
        models[namespace] = tmp_path / f"shapes-{namespace}.tflite"
        models[namespace].write_bytes(build_shapes_model())
    with processes(tmp_path) as start:
        started: dict[tuple[str, str], Process] = {}
        for namespace in NAMESPACES:
            started[(namespace, "camera")] = start(f"camera-{namespace}", *camera(router, namespace))
            started[(namespace, "node")] = start(f"node-{namespace}", *node(router, namespace, models[namespace]))
        for (namespace, kind), process in started.items():
            line = "publishing YUYV" if kind == "camera" else '"event": "running edgenode-shapes-demo"'
            until(lambda p=process, line=line: ready(p, line) or p.popen.poll() is not None, 120,
                  f"{kind} {namespace} up")
            assert process.popen.poll() is None, process.text()

        # Every process is up: edgenode status lists all six within 2 s, each with its model.
        def all_six() -> dict[tuple[str, str], Entry] | None:
            places = by_place(survey(asker, scaled(2.0)))  # returns as soon as every process has answered
            wanted = {(namespace, kind) for namespace in NAMESPACES for kind in ("camera", "node")}
            return places if set(places) == wanted and all(e.answered for e in places.values()) else None

        first = until(all_six, 2, "all six listed")
        for namespace in NAMESPACES:
            status = first[(namespace, "node")].status
            assert status is not None and status["identity"]["namespace"] == namespace
            assert (status["model"]["file"], status["model"]["name"]) == (str(models[namespace]),
                                                                          "edgenode-shapes-demo")
            assert status["identity"]["pid"] == started[(namespace, "node")].popen.pid
            assert status["cameras"][0]["topic"] == "rt/camera/dma"  # cam1/rt/camera/dma on the wire
            camera_status = first[(namespace, "camera")].status
            assert camera_status is not None and camera_status["state"] == "running"
            assert camera_status["cameras"][0]["size"] == [160, 120]

        # Frame counts rise, node by node and camera by camera.
        def risen() -> dict[tuple[str, str], Entry] | None:
            places = all_six()
            return places if places and all(frames(places[key]) > frames(first[key]) for key in first) else None

        later = until(risen, 20, "every frame counter rising")
        for namespace in NAMESPACES:
            status = later[(namespace, "node")].status
            assert status is not None and status["state"] in ("running", "no_camera_frames")
            assert status["counters"]["frames_received"] >= status["counters"]["frames_processed"] > 0

        # The command itself: a table of six rows, then JSON; exit 0.
        table = status_command(router)
        assert table.returncode == 0, table.stderr
        lines = table.stdout.splitlines()
        assert lines[0].split() == ["NAME", "KIND", "STATE", "MODEL", "FPS", "LATENCY", "DROPS", "UPTIME"]
        rows = [line.split() for line in lines[1:7]]
        assert [(row[0].split("/")[0], row[1]) for row in rows] == [
            (namespace, kind) for namespace in NAMESPACES for kind in ("camera", "node")], table.stdout
        assert all(row[3] == "edgenode-shapes-demo" for row in rows if row[1] == "node")
        assert lines[7] == "6 answered", table.stdout
        listed = json.loads(status_command(router, "--json").stdout)
        assert listed["answered"] == 6 and {e["namespace"] for e in listed["entries"]} == set(NAMESPACES)

        # A frozen node keeps its liveliness but cannot answer: listed as not answering.
        frozen = started[("cam3", "node")].popen
        frozen.send_signal(signal.SIGSTOP)
        try:
            silent = until(lambda: (e := by_place(survey(asker, scaled(1.0))).get(("cam3", "node")))
                           and e.problem == NOT_ANSWERING and e, 10, "the frozen node listed as not answering")
            assert silent.alive and silent.status is None
            shown = status_command(router)
            assert shown.returncode == 0 and "cam3/" in shown.stdout and NOT_ANSWERING in shown.stdout, shown.stdout
            assert shown.stdout.splitlines()[-1] == "5 answered, 1 not answering", shown.stdout
        finally:
            frozen.send_signal(signal.SIGCONT)

        # A node killed with SIGKILL disappears (token and queryable) within 5 s; its camera stays.
        killed = started[("cam2", "node")].popen
        killed.kill()
        killed.wait()
        gone = until(lambda: (p := by_place(survey(asker, scaled(1.0)))) and ("cam2", "node") not in p and p, 5,
                     "the killed node gone")
        assert ("cam2", "camera") in gone and gone[("cam2", "camera")].answered


def test_a_node_still_loading_reports_loading(router: int, asker: ZenohBus, tmp_path: Path) -> None:
    model = slow_model(tmp_path / "slow.tflite")
    appeared = threading.Event()
    watcher = asker.session.liveliness().declare_subscriber(
        "slow/edgenode/status/node/*", lambda sample: appeared.set() if sample.kind == zenoh.SampleKind.PUT else None)
    try:
        with processes(tmp_path) as start:
            loading = start("node-slow", *node(router, "slow", model))
            assert appeared.wait(scaled(60)), loading.text()
            entry = until(lambda: by_place(survey(asker, scaled(1.0))).get(("slow", "node")), 5, "the loading node")
            status = entry.status
            assert status is not None and status["state"] == "loading", status
            assert status["state_detail"] == f"loading {model}" and status["model"]["file"] == str(model)
            assert status["model"]["name"] is None and status["window"] is None
            assert status["cameras"][0]["received"] == 0
            assert loading.stop() == 0
    finally:
        watcher.undeclare()


def test_status_exit_codes_when_nothing_answers_and_on_bad_flags(tmp_path: Path) -> None:
    nobody = free_port()
    alone = subprocess.run([PYTHON, "-m", "edgenode", "status", "--connect", endpoint(nobody),
                            "--no-multicast-scouting", "--timeout", "0.3"], capture_output=True, text=True,
                           timeout=scaled(60), check=False)
    assert alone.returncode == 1 and "no edgenode node or camera found" in alone.stdout
    no_router = subprocess.run([PYTHON, "-m", "edgenode", "status", "--mode", "client", "--connect", endpoint(nobody),
                                "--no-multicast-scouting"], capture_output=True, text=True, timeout=scaled(60),
                               check=False)
    assert no_router.returncode == 1 and no_router.stderr.strip() == (
        f"edgenode status: no zenoh router answers at {endpoint(nobody)}")
    bad = subprocess.run([PYTHON, "-m", "edgenode", "status", "--watch", "0"], capture_output=True, text=True,
                         timeout=scaled(60), check=False)
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "edgenode status: error: --watch must be more than 0 and at most 86400 seconds, got 0 "
        "(see edgenode status --help)")


def test_status_watch_stops_on_ctrl_c() -> None:
    """The console script takes SIGINT early (issue 11's start-up handlers); ``status --watch`` still stops on it."""
    watch = subprocess.Popen([PYTHON, "-m", "edgenode", "status", "--connect", endpoint(free_port()),
                              "--no-multicast-scouting", "--timeout", "0.2", "--watch", "0.5", "--json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert watch.stdout is not None
        assert watch.stdout.readline().startswith("{")  # a first survey: its handlers are in place
        watch.send_signal(signal.SIGINT)
        _, err = watch.communicate(timeout=scaled(20))
        assert watch.returncode == 1 and "Traceback" not in err, err  # the last survey's code: nobody answered
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.communicate()


def test_the_demo_prints_the_status_command_that_reaches_it(tmp_path: Path) -> None:
    demo = subprocess.Popen([PYTHON, "-m", "edgenode.tools.demo", "--size", "320x240", "--fps", "5"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "XDG_CACHE_HOME": str(tmp_path)})
    hints: list[str] = []
    hinted = threading.Event()

    def read() -> None:  # drain the view's lines, keep the hint
        assert demo.stdout is not None
        for line in demo.stdout:
            if "edgenode status" in line and not hints:
                hints.append(line)
                hinted.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert hinted.wait(scaled(60)), "the demo printed no status command"
        command = hints[0].split("from another terminal: ", 1)[1].split()
        assert command[0].endswith("edgenode") and command[1:3] == ["status", "--connect"]

        def node_row() -> list[str] | None:
            shown = subprocess.run([*command, "--no-multicast-scouting"], capture_output=True, text=True,
                                   timeout=scaled(60), check=False)
            rows = [line.split() for line in shown.stdout.splitlines()]
            node = [row for row in rows if len(row) > 3 and row[1] == "node" and row[2] == "running"]
            camera = [row for row in rows if len(row) > 3 and row[1] == "camera"]
            return node[0] if node and camera and shown.returncode == 0 else None

        row = until(node_row, 90, "the demo node's row")
        assert row[3] == "edgenode-shapes-demo"
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(scaled(20))
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait()
        reader.join(scaled(5))
